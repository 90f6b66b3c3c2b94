"""Simulation speed figures for ``make bench``.

``run(quick)`` returns

- ``sim_beta_ts_rounds_per_s``: rounds per second of Beta-TS on a K=10
  Bernoulli world inside one Numba loop (``beta_ts_fast``: posterior draws,
  argmax, reward and update per round; one core). Target >= 1,000,000.
- ``sim_beta_ts_generic_rounds_per_s``: the same world and algorithm through
  the generic runner (``run_agent`` driving the engine's ``BetaTS`` one
  round at a time, argument checks included): what any policy pays per
  round in Python.

Each figure is the median of several timed runs (the machine is shared; the
median resists another process's burst), after a warm-up run that also
loads or compiles the kernels.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from simulators.simulate import ContenderSpec, FastBetaTS, make_contender
from simulators.worlds import BernoulliWorld

__all__ = ["DESCRIPTIONS", "run"]

K = 10

DESCRIPTIONS = {
    "sim_beta_ts_rounds_per_s": f"Beta-TS rounds/s on a K={K} Bernoulli world, whole run in one "
    "Numba loop (simulators beta_ts_fast), one core, median of timed runs",
    "sim_beta_ts_generic_rounds_per_s": f"Beta-TS rounds/s on the same K={K} world through the "
    "generic runner (engine BetaTS.rank/update_batch per round), median of timed runs",
}


def _world(seed: int) -> BernoulliWorld:
    return BernoulliWorld(np.random.default_rng(seed), probs=np.linspace(0.1, 0.5, K).tolist())


def run(quick: bool = False) -> dict[str, float]:
    """Measure both figures; ``quick`` takes about a second, the full run about ten."""
    fast_rounds, fast_reps = (300_000, 3) if quick else (2_000_000, 5)
    gen_rounds, gen_reps = (3_000, 3) if quick else (20_000, 3)

    fast = FastBetaTS(ContenderSpec("beta_ts_fast"))
    fast.run(_world(0), 1_000, 1, 0)  # warm-up: load or compile the kernel
    rates = []
    for rep in range(fast_reps):
        tr = fast.run(_world(rep), fast_rounds, 1, rep)
        rates.append(fast_rounds / tr.seconds)
    out = {"sim_beta_ts_rounds_per_s": statistics.median(rates)}

    generic = make_contender("beta_ts")
    generic.run(_world(0), 500, 1, 0)  # warm-up
    rates = []
    for rep in range(gen_reps):
        t0 = time.perf_counter()
        generic.run(_world(rep), gen_rounds, 1, rep)
        rates.append(gen_rounds / (time.perf_counter() - t0))
    out["sim_beta_ts_generic_rounds_per_s"] = statistics.median(rates)
    return out


if __name__ == "__main__":
    for key, value in run(quick=False).items():
        print(f"{key:36} {value:14,.0f}  {DESCRIPTIONS[key]}")
