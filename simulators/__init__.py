"""Researcher toolkit: synthetic worlds, simulation runs and offline evaluation.

It drives the engine's own policy classes through the public
``bandit_engine`` API, and a live server through ``bandit_engine.client``.

Simulation: ``worlds`` (Bernoulli, destinations, supervised), ``simulate``
(the runner: engine policies, ``baselines``, ``peers``, a live server via
``live``), ``plots`` and ``bench``. The command line is
``python -m simulators simulate ...``; ``python -m simulators list`` shows
the worlds and contenders. The runner's entry point is
``simulators.simulate.simulate``; this package does not import that name,
so ``simulators.simulate`` stays the subpackage.

Offline evaluation: ``logs`` (``BanditLog`` and its sources), ``obd`` (the
Open Bandit Dataset), ``kafka_log`` (the engine's log read from Kafka),
``archive`` (Parquet partitions kept up to date from Kafka), ``replay``,
``estimators``, ``offline_cli`` (``python -m simulators
evaluate|replay|export-log|archive|obd-info``), ``offline_plots`` and
``offline_bench``.
"""

from __future__ import annotations

from simulators.baselines import BASELINES, UCB1, EpsilonGreedy, LinUCB, Uniform, make_baseline
from simulators.simulate import (
    Agent,
    ContenderSpec,
    PolicyAgent,
    SimulationResult,
    Trace,
    make_contender,
    render_table,
    run_agent,
)
from simulators.worlds import (
    WORLDS,
    BernoulliWorld,
    DestinationsWorld,
    Round,
    SupervisedWorld,
    World,
    WorldArm,
    lai_robbins_constant,
    make_labelled,
    make_world,
)

__all__ = [
    "BASELINES",
    "UCB1",
    "WORLDS",
    "Agent",
    "BernoulliWorld",
    "ContenderSpec",
    "DestinationsWorld",
    "EpsilonGreedy",
    "LinUCB",
    "PolicyAgent",
    "Round",
    "SimulationResult",
    "SupervisedWorld",
    "Trace",
    "Uniform",
    "World",
    "WorldArm",
    "lai_robbins_constant",
    "make_baseline",
    "make_contender",
    "make_labelled",
    "make_world",
    "render_table",
    "run_agent",
]
