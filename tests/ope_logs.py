"""Logs for the Parquet and streaming-evaluation tests: every field filled."""

from __future__ import annotations

import numpy as np

from simulators.logs import BanditLog

#: every array field of ``BanditLog`` a round trip must keep
FIELDS = (
    "x",
    "shown",
    "propensity",
    "reward",
    "timestamp",
    "cand_ptr",
    "cand_idx",
    "scores",
    "reward_raw",
    "reward_source",
    "reward_ts",
    "reward_seq",
    "model_version",
    "deadline",
    "position",
    "reward_weight",
    "prefix_propensity",
)


def rich_log(
    n: int = 60,
    *,
    k: int = 3,
    arms: int = 6,
    dim: int = 4,
    seed: int = 0,
    per_slot: bool = True,
    experiment: str = "exp/1",
    step_s: float = 3000.0,
) -> BanditLog:
    """Slates of 1..k arms, candidate lists on some rows, open rewards, click
    weights, per-slot and prefix propensities; rows ``step_s`` seconds apart."""
    rng = np.random.default_rng(seed)
    shown = np.full((n, k), -1, dtype=np.int64)
    ks = rng.integers(1, k + 1, n)
    for i in range(n):
        shown[i, : ks[i]] = rng.choice(arms, ks[i], replace=False)
    has = shown >= 0

    def slotted(lo: float, hi: float) -> np.ndarray:
        a = rng.uniform(lo, hi, (n, k))
        a[~has] = np.nan
        return a

    reward = slotted(0.0, 1.0)
    reward[rng.random((n, k)) < 0.2] = np.nan
    sizes = np.where(rng.random(n) < 0.5, 0, arms)
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    idx = np.tile(np.arange(arms, dtype=np.int64), int((sizes > 0).sum()))
    open_ = np.isnan(reward)
    return BanditLog(
        arm_ids=tuple(f"a{j}" for j in range(arms)),
        x=rng.normal(size=(n, dim)),
        shown=shown,
        propensity=slotted(0.01, 1.0),
        reward=reward,
        event_id=tuple(f"e{seed}-{i}" for i in range(n)),
        timestamp=1.7e9 + np.arange(n, dtype=np.float64) * step_s,
        cand_ptr=ptr,
        cand_idx=idx,
        scores=slotted(-1.0, 1.0),
        reward_raw=reward * 5,
        reward_source=np.where(open_, 0, rng.integers(1, 3, (n, k))).astype(np.int8),
        reward_ts=np.where(open_, np.nan, 1.7e9 + rng.uniform(0, 9, (n, k))),
        reward_seq=np.where(open_, -1, rng.integers(0, 1000, (n, k))),
        model_version=rng.integers(0, 9, n),
        deadline=1.7e9 + np.arange(n, dtype=np.float64) * step_s + 60.0,
        position=rng.integers(0, 3, n),
        arm_features=tuple(
            {"numeric": {"price": float(j)}, "categorical": [f"c={j % 2}"]} for j in range(arms)
        ),
        meta={"experiment_id": experiment, "source": "test", "active": (True,) * arms},
        reward_weight=np.where(open_, np.nan, rng.uniform(0, 1, (n, k))),
        propensity_kind="per_slot" if per_slot else "first_slot",
        prefix_propensity=slotted(0.001, 1.0) if per_slot else None,
    )


def assert_same(a: BanditLog, b: BanditLog) -> None:
    """Every field of two logs equal (NaN equal to NaN)."""
    assert a.arm_ids == b.arm_ids and a.event_id == b.event_id
    assert a.arm_features == b.arm_features
    assert a.propensity_kind == b.propensity_kind
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
