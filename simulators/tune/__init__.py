"""Tuning from the engine's own logs: ``python -m simulators tune``.

Evaluates a grid of policy settings on an experiment's logged decisions
(off-policy estimates with the logged propensities; replay on uniformly
logged traffic) and recommends one, with confidence intervals. The parts:
``grid`` (the settings: ``--grid`` parsing, validation, default grids),
``runs`` (evaluation, ranking, the recommendation) and ``command`` (the
command line, its table and JSON). docs/research.md, "Tuning from the logs",
has a worked example.
"""

from __future__ import annotations

from simulators.tune.grid import DEFAULT_GRIDS, Setting, build_settings, parse_grid, tunable
from simulators.tune.runs import (
    Recommendation,
    SettingResult,
    TuneOptions,
    TuneResult,
    recommend,
    run_tune,
)

__all__ = [
    "DEFAULT_GRIDS",
    "Recommendation",
    "Setting",
    "SettingResult",
    "TuneOptions",
    "TuneResult",
    "build_settings",
    "parse_grid",
    "recommend",
    "run_tune",
    "tunable",
]
