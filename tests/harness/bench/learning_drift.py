"""Forgetting in the ``learning`` section: drifting Bernoulli worlds.

Two Bernoulli arms whose success rates change halfway through ``ROUNDS``
rounds (``simulators.worlds.SwitchingBernoulliWorld``), one decision every
``PACE`` seconds (20,000 decisions over two weeks, the change after one:
the time scale forgetting by time, ``half_life_s``, is set for): in ``improve`` the
arm that is not played improves (0.6/0.3 -> 0.6/0.8), so a policy sure of
its choice must explore again to notice; in ``swap`` the arms swap (0.6/0.3
-> 0.3/0.6). The figure of a contender is the better arm's share of the last
``LAST`` rounds (one arm shown per round), averaged over ``SEEDS``.
``drift_share_last`` is the worst such share of the engine's defaults
(``DEFAULTS``, with the default one-day half-life) over both worlds. The
same worlds compressed into ``FAST_PACE`` seconds a decision (5.5 hours in
all, a quarter of a half-life) are information: there the default
forgets too little to notice the change. The engine policies with ``decay`` and a
textbook discounted Thompson sampling (``simulators.baselines.DiscountedTS``,
Raj & Kalyani 2017: every arm's evidence discounted every round) are
information.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from harness.bench._util import progress
from simulators.simulate import make_contender
from simulators.worlds import CachedWorld, make_world

__all__ = ["CONTENDERS", "DESCRIPTIONS", "TARGETS", "WORLDS", "run"]

ROUNDS = 20_000
LAST = 2_000
PACE = 60.0
FAST_PACE = 1.0
SEEDS = (0, 1, 2, 3)

WORLDS: dict[str, dict[str, Any]] = {
    "improve": {"probs": (0.6, 0.3), "probs_after": (0.6, 0.8)},
    "swap": {"probs": (0.6, 0.3), "probs_after": (0.3, 0.6)},
}
#: name -> contender; the first two are the engine's defaults (``drift_share_last``)
CONTENDERS: dict[str, str] = {
    "beta_ts": "beta_ts",
    "lin_ts_disjoint": "lin_ts_disjoint",
    "beta_ts_decay0.999": "beta_ts:decay=0.999",
    "beta_ts_decay0.99": "beta_ts:decay=0.99",
    "lin_ts_disjoint_decay0.999": "lin_ts_disjoint:decay=0.999",
    "lin_ts_disjoint_decay0.99": "lin_ts_disjoint:decay=0.99",
    "discounted_ts_gamma0.999": "discounted_ts:gamma=0.999",
    "discounted_ts_gamma0.99": "discounted_ts:gamma=0.99",
}
DEFAULTS = ("beta_ts", "lin_ts_disjoint")

TARGETS: dict[str, tuple[str, float]] = {"drift_share_last": (">=", 0.9)}


def _descriptions() -> dict[str, str]:
    out = {
        "drift_share_last": (
            f"the better arm's share of the last {LAST:,} of {ROUNDS:,} rounds, {len(SEEDS)} "
            f"seeds: the worst of {' and '.join(DEFAULTS)} with their default forgetting over "
            "the two drift worlds (halfway, an unplayed arm improves 0.6/0.3 -> 0.6/0.8; the "
            "arms swap 0.6/0.3 -> 0.3/0.6)"
        )
    }
    for wname in WORLDS:
        for name in CONTENDERS:
            out[f"drift_share_last_{wname}_{name}"] = (
                f"the better arm's share of the last {LAST:,} rounds, world {wname}, {name}"
            )
        for name in DEFAULTS:
            out[f"drift_share_last_{wname}_fast_{name}"] = (
                f"the same, world {wname} at {FAST_PACE:g} s a decision, {name} (its defaults)"
            )
    return out


DESCRIPTIONS = _descriptions()


def run(quick: bool = False) -> tuple[dict[str, float], dict[str, Any]]:
    """(figures, details); ``quick``: 2,000 rounds (the last 200 counted), one seed."""
    n = 2_000 if quick else ROUNDS
    last = n * LAST // ROUNDS
    seeds = SEEDS[:1] if quick else SEEDS
    contenders = {name: make_contender(spec) for name, spec in CONTENDERS.items()}
    shares: dict[str, dict[str, list[float]]] = {w: {} for w in WORLDS}
    for wname, wparams in WORLDS.items():
        for seed in seeds:
            progress(
                f"learning: drift world {wname}, seed {seed}: {len(contenders)} contenders x "
                f"{n:,} rounds"
            )
            for pace, prefix, names in ((PACE, "", CONTENDERS), (FAST_PACE, "fast_", DEFAULTS)):
                rng = np.random.default_rng(seed)
                world = CachedWorld(
                    make_world(
                        "bernoulli_switch",
                        rng,
                        switch_at=n // 2,
                        seconds_per_round=pace,
                        **wparams,
                    ),
                    n,
                )
                for name in names:
                    tr = contenders[name].run(world, n, 1, seed)
                    # two arms of distinct rates: regret 0 exactly when the better arm was shown
                    shares[wname].setdefault(prefix + name, []).append(
                        float(np.mean(tr.regrets[-last:] == 0))
                    )
    figures = {
        f"drift_share_last_{w}_{name}": statistics.fmean(v)
        for w, by in shares.items()
        for name, v in by.items()
    }
    figures["drift_share_last"] = min(
        figures[f"drift_share_last_{w}_{d}"] for w in WORLDS for d in DEFAULTS
    )
    info = {
        "rounds": n, "last": last, "seeds": list(seeds), "worlds": WORLDS,
        "seconds_per_round": PACE, "fast_seconds_per_round": FAST_PACE,
        "contenders": CONTENDERS, "per_seed": shares,
    }  # fmt: skip
    return figures, info
