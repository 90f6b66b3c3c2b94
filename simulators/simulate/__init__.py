"""The simulation runner: policies on a world's stream, over seeds, with regret.

A *contender* is a named way to choose arms: an engine policy (the very
classes the server runs, built through ``ExperimentConfig.make_policy``), a
baseline (``simulators.baselines``), a peer library (``simulators.peers``),
a live server (``simulators.live``) or the Numba fast path ``beta_ts_fast``.
Contenders are given as strings, ``kind`` or ``kind:key=value:key=value``
(values are parsed as JSON, else taken as strings), e.g. ``beta_ts``,
``epsilon_greedy:epsilon=0.05``, ``lin_ts_shared:joint_dim=256``.

For each seed the runner builds the world once from
``numpy.random.default_rng(seed)`` and runs every contender on its stream:
same contexts, same eligible arms, same reward draw per (round, arm), so
differences between contenders are paired. A contender's own randomness
comes from ``default_rng([seed, feature_hash(label)])``: the same seed gives
the same result, whatever other contenders run alongside.

Per round the runner records the sampled reward (summed over the ``k``
slots) and the expected regret of the shown list against the best list
(``Round.regret``); it reports cumulative reward and regret, CTR (reward per
shown slot) and their 95% confidence intervals across seeds (Student t),
and, on the Bernoulli world with ``k = 1``, the Lai-Robbins lower bound.

The parts: ``agents`` (the ``Agent`` contract and ``run_agent``),
``contenders`` (specs and how each kind runs), ``results`` (summaries,
intervals, the table), ``progress`` and ``runner`` (``simulate``).
"""

from __future__ import annotations

from simulators.simulate.agents import Agent, PolicyAgent, PolicyLike, Trace, run_agent
from simulators.simulate.contenders import (
    AgentContender,
    Contender,
    ContenderSpec,
    FastBetaTS,
    contender_kinds,
    engine_config,
    engine_policy,
    make_contender,
    parse_value,
)
from simulators.simulate.progress import Progress
from simulators.simulate.results import ContenderResult, SimulationResult, mean_ci, render_table
from simulators.simulate.runner import simulate

__all__ = [
    "Agent",
    "AgentContender",
    "Contender",
    "ContenderResult",
    "ContenderSpec",
    "FastBetaTS",
    "PolicyAgent",
    "PolicyLike",
    "Progress",
    "SimulationResult",
    "Trace",
    "contender_kinds",
    "engine_config",
    "engine_policy",
    "make_contender",
    "mean_ci",
    "parse_value",
    "render_table",
    "run_agent",
    "simulate",
]
