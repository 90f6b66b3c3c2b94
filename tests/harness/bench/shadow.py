"""Bench section ``shadow``: what shadow ranking costs a Recommend.

One in-process engine (SQLite in a temporary directory, embedded mode),
experiments with a ``lin_ts_disjoint`` champion, ``DIM`` features and
``N_ARMS`` arms, every policy at ``propensity_draws`` 1000, alike but for
their challenger and ``shadow_rate`` (``EXPERIMENTS``): a ``lin_ts_disjoint``
challenger with another exploration (a changed setting: the common case) at
rates 0, 0.1 (the default) and 1, and a ``beta_ts`` challenger (whose
propensities cost the most) at 0.1 and 1. Each is trained on ``WARM``
rewarded decisions first. Then, in repeats that take the experiments in
turn, each repeat starting with the next one (so that drift and the order
hit each alike), a batch of ``BATCH`` Recommends
(every active arm a candidate, k = 1, a fresh context each) is timed, and
their Feedback given untimed; figures are medians over the repeats of us
per Recommend.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bandit_engine import Context, Engine, ExperimentConfig
from bandit_engine.store import SQLiteStore
from harness.bench._util import progress

__all__ = ["DESCRIPTIONS", "TARGETS", "run"]

DIM, N_ARMS = 16, 20
WARM, BATCH, REPEATS = 2_000, 500, 25
QUICK_WARM, QUICK_REPEATS = 300, 5
LIN = {"policy": "lin_ts_disjoint", "exploration": 1.0}
BETA = {"policy": "beta_ts"}
#: experiment -> (its challenger's settings, shadow_rate)
EXPERIMENTS: dict[str, tuple[dict[str, Any], float]] = {
    "rate0": (LIN, 0.0),
    "default": (LIN, 0.1),
    "rate1": (LIN, 1.0),
    "beta_default": (BETA, 0.1),
    "beta_rate1": (BETA, 1.0),
}

TARGETS: dict[str, tuple[str, float]] = {
    # a challenger of the champion's kind at the default rate: at most a quarter more
    "shadow_default_vs_rate0": ("<=", 1.25),
}
_SETTING = (
    f"lin_ts_disjoint champion, d={DIM}, {N_ARMS} arms, propensity_draws 1000, in process, "
    "embedded mode"
)
DESCRIPTIONS: dict[str, str] = {
    "shadow_recommend_us_rate0": f"median us per Recommend at shadow_rate 0 ({_SETTING}; one "
    "lin_ts_disjoint challenger)",
    "shadow_recommend_us_default": "the same at the default shadow_rate 0.1",
    "shadow_overhead_us": "us a Recommend costs more at the default rate than at rate 0, one "
    "lin_ts_disjoint challenger (same run)",
    "shadow_overhead_us_rate1": "the same at rate 1: one shadow ranking by that challenger",
    "shadow_overhead_us_beta": "us more at the default rate with one beta_ts challenger",
    "shadow_overhead_us_beta_rate1": "the same at rate 1: one shadow ranking by a beta_ts "
    "challenger (its 1,000-draw propensities)",
    "shadow_default_vs_rate0": "Recommend time at the default rate / at rate 0, one "
    "lin_ts_disjoint challenger",
}


def _setup(engine: Engine, rng: np.random.Generator, warm: int) -> None:
    arms = [(f"a{i}", None) for i in range(N_ARMS)]
    truth = rng.normal(size=(N_ARMS, DIM - 1)) / np.sqrt(DIM)
    for name, (settings, rate) in EXPERIMENTS.items():
        engine.create_experiment(
            ExperimentConfig(name, dim=DIM, dense_dim=DIM - 1, shadow_rate=rate)
        )
        engine.add_arms(name, arms)
        engine.challengers.add(name, "challenger", settings)
        _traffic(engine, name, rng, truth, warm, timed=False)


def _traffic(
    engine: Engine,
    exp: str,
    rng: np.random.Generator,
    truth: np.ndarray,
    n: int,
    *,
    timed: bool,
) -> float:
    """``n`` Recommends (timed: seconds they took), then their Feedback."""
    contexts = [Context(dense=list(rng.normal(size=DIM - 1))) for _ in range(n)]
    t0 = time.perf_counter()
    decisions = [engine.recommend(exp, c) for c in contexts]
    took = time.perf_counter() - t0
    for d, c in zip(decisions, contexts, strict=True):
        arm = int(d.arm_ids[0][1:])
        p = 1.0 / (1.0 + np.exp(-3.0 * float(truth[arm] @ np.asarray(c.dense))))
        engine.feedback(d.event_id, d.arm_ids[0], float(rng.random() < p))
    return took if timed else 0.0


def run(quick: bool) -> tuple[dict[str, float], dict[str, Any]]:
    warm, repeats = (QUICK_WARM, QUICK_REPEATS) if quick else (WARM, REPEATS)
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(N_ARMS, DIM - 1)) / np.sqrt(DIM)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(SQLiteStore(Path(tmp) / "state.db"), seed=0)
        try:
            _setup(engine, rng, warm)
            times: dict[str, list[float]] = {name: [] for name in EXPERIMENTS}
            names = list(EXPERIMENTS)
            for rep in range(repeats):
                # each repeat starts with another experiment: drift hits each alike
                for name in names[rep % len(names) :] + names[: rep % len(names)]:
                    took = _traffic(engine, name, rng, truth, BATCH, timed=True)
                    times[name].append(took / BATCH * 1e6)
                progress(f"shadow: repeat {rep + 1}/{repeats}")
            rows = {name: engine.challengers.report(name).estimates[1].n for name in EXPERIMENTS}
        finally:
            engine.close()
    med = {name: statistics.median(v) for name, v in times.items()}
    base = med["rate0"]
    figures = {
        "shadow_recommend_us_rate0": base,
        "shadow_recommend_us_default": med["default"],
        "shadow_overhead_us": med["default"] - base,
        "shadow_overhead_us_rate1": med["rate1"] - base,
        "shadow_overhead_us_beta": med["beta_default"] - base,
        "shadow_overhead_us_beta_rate1": med["beta_rate1"] - base,
        "shadow_default_vs_rate0": med["default"] / base,
    }
    info = {"us_per_recommend": times, "shadow_rows": rows, "warm": warm, "repeats": repeats}
    return figures, info
