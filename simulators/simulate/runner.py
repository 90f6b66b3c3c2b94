"""``simulate``: every contender on one world's stream, over seeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bandit_engine import InvalidArgument
from bandit_engine.policies import FloatArray
from simulators.simulate.agents import check_k, check_rounds
from simulators.simulate.contenders import ContenderSpec, make_contender
from simulators.simulate.progress import Progress
from simulators.simulate.results import ContenderResult, SimulationResult
from simulators.worlds import make_world

__all__ = ["simulate"]


def simulate(
    world: str,
    contenders: Sequence[ContenderSpec | str],
    *,
    rounds: int,
    seeds: Sequence[int],
    k: int = 1,
    world_params: dict[str, Any] | None = None,
    update_every: int = 1,
    target: str | None = None,
    progress: bool | Progress = False,
) -> SimulationResult:
    """Run every contender on ``world`` for each seed; see the module docstring.

    >>> r = simulate("bernoulli", ["beta_ts", "uniform"], rounds=200, seeds=[0, 1],
    ...              world_params={"probs": [0.2, 0.5]})
    >>> [c["label"] for c in r.summary()["contenders"]]
    ['beta_ts', 'uniform']
    """
    check_rounds(rounds)
    seeds = list(seeds)
    if not seeds:
        raise InvalidArgument("no seeds given")
    for s in seeds:
        if not isinstance(s, int) or s < 0:
            raise InvalidArgument(f"seed {s!r} must be a non-negative integer")
    if not contenders:
        raise InvalidArgument("no contenders given")
    built = [make_contender(c, update_every=update_every, target=target) for c in contenders]
    labels = [c.spec.label for c in built]
    dup = next((lb for i, lb in enumerate(labels) if lb in labels[:i]), None)
    if dup is not None:
        raise InvalidArgument(f"contender {dup!r} given twice")
    params = dict(world_params or {})
    prog = (
        progress
        if isinstance(progress, Progress)
        else Progress(rounds * len(seeds) * len(built), enabled=bool(progress))
    )
    results = [ContenderResult(c.spec) for c in built]
    bounds: list[FloatArray] = []
    desc: dict[str, Any] | None = None
    t_axis = np.arange(1, rounds + 1, dtype=np.float64)
    try:
        for si, seed in enumerate(seeds):
            w = make_world(world, np.random.default_rng(seed), **params)
            check_k(w, k)
            if desc is None:
                desc = w.describe()
            b = w.regret_lower_bound(t_axis, k)
            if b is not None:
                bounds.append(b)
            for c, res in zip(built, results, strict=True):
                prog.label = f"{c.spec.label}, seed {seed} ({si + 1}/{len(seeds)})"
                res.traces.append(c.run(w, rounds, k, seed, prog))
    finally:
        prog.close()
    assert desc is not None
    bound = np.mean(bounds, axis=0) if len(bounds) == len(seeds) else None
    return SimulationResult(desc, rounds, k, seeds, update_every, results, bound)
