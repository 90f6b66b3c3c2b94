"""``BanditLog``: logged decisions as arrays, one row per decision.

Every offline tool (replay, the off-policy estimators, the CLI) works on this
one structure; ``simulators.logs`` lists the sources that fill it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from bandit_engine import InvalidArgument
from bandit_engine.policies import FloatArray, IntArray

__all__ = ["SOURCES", "BanditLog"]

#: ``BanditLog.reward_source`` codes: index into this tuple.
SOURCES = ("", "feedback", "default")


@dataclass(frozen=True, eq=False)
class BanditLog:
    """Logged decisions, one row each; arms are indices into ``arm_ids``.

    ``shown[i]`` holds the ranked shown arms of row ``i`` padded with -1;
    ``propensity[i, j]`` is the logging policy's P(shown[i, j] is ranked first
    | x[i]) (``propensity_kind`` ``first_slot``) or P(shown[i, j] is ranked at
    slot j | x[i]) (``per_slot``; slot 0 is the same figure either way), and
    ``reward[i, j]`` its reward mapped to [0, 1] (NaN: none yet), which
    counted ``reward_weight[i, j]`` in the logging policy's learning (its
    click model's weight).
    The estimators use the first slot: ``action``, ``logged_propensity`` and
    ``logged_reward``.

    Candidate sets are CSR (``cand_ptr``, ``cand_idx``); a row with an empty
    range, or ``cand_ptr=None`` for all rows, means every arm.
    """

    arm_ids: tuple[str, ...]
    x: FloatArray
    shown: IntArray
    propensity: FloatArray
    reward: FloatArray
    event_id: tuple[str, ...]
    timestamp: FloatArray
    cand_ptr: IntArray | None = None
    cand_idx: IntArray | None = None
    scores: FloatArray | None = None
    reward_raw: FloatArray | None = None
    reward_source: npt.NDArray[np.int8] | None = None
    reward_ts: FloatArray | None = None
    reward_seq: IntArray | None = None
    model_version: IntArray | None = None
    deadline: FloatArray | None = None
    position: IntArray | None = None
    arm_features: tuple[dict[str, Any], ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    reward_weight: FloatArray | None = None
    propensity_kind: str = "first_slot"
    #: per_slot logs: P(the first j + 1 shown arms are ranked there | x[i])
    prefix_propensity: FloatArray | None = None

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        if self.x.ndim != 2:
            raise InvalidArgument(f"x has shape {self.x.shape}; expected (rows, dim)")
        k = self.shown.shape[1] if self.shown.ndim == 2 else -1
        for name in (
            "shown",
            "propensity",
            "reward",
            "scores",
            "reward_raw",
            "reward_source",
            "reward_ts",
            "reward_seq",
            "reward_weight",
            "prefix_propensity",
        ):
            arr = getattr(self, name)
            if arr is not None and arr.shape != (n, k):
                raise InvalidArgument(f"{name} has shape {arr.shape}; expected ({n}, {k})")
        for name in ("timestamp", "model_version", "deadline", "position"):
            arr = getattr(self, name)
            if arr is not None and arr.shape != (n,):
                raise InvalidArgument(f"{name} has shape {arr.shape}; expected ({n},)")
        if len(self.event_id) != n:
            raise InvalidArgument(f"{len(self.event_id)} event ids for {n} rows")
        if self.propensity_kind not in ("first_slot", "per_slot"):
            raise InvalidArgument(
                f"propensity_kind={self.propensity_kind!r} must be 'first_slot' or 'per_slot'"
            )
        if n and k < 1:
            raise InvalidArgument("every row needs at least one shown arm")
        if n and (self.shown[:, 0] < 0).any():
            raise InvalidArgument("every row needs a first shown arm")
        if n and self.shown.max() >= len(self.arm_ids):
            raise InvalidArgument(f"arm index {int(self.shown.max())} >= {len(self.arm_ids)} arms")
        if (self.cand_ptr is None) != (self.cand_idx is None):
            raise InvalidArgument("cand_ptr and cand_idx go together")
        if self.cand_ptr is not None and self.cand_ptr.shape != (n + 1,):
            raise InvalidArgument(f"cand_ptr has shape {self.cand_ptr.shape}; expected ({n + 1},)")
        if self.arm_features is not None and len(self.arm_features) != len(self.arm_ids):
            raise InvalidArgument(
                f"{len(self.arm_features)} arm feature sets for {len(self.arm_ids)} arms"
            )

    # ------------------------------------------------------------- shape
    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def __len__(self) -> int:
        return self.n

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_arms(self) -> int:
        return len(self.arm_ids)

    @property
    def action(self) -> IntArray:
        """First shown arm of each row (the arm the estimators evaluate)."""
        return self.shown[:, 0]

    @property
    def logged_propensity(self) -> FloatArray:
        return self.propensity[:, 0]

    @property
    def logged_reward(self) -> FloatArray:
        return self.reward[:, 0]

    def candidate_csr(self) -> tuple[IntArray, IntArray]:
        """Candidate sets with "every arm" rows expanded: (ptr, idx)."""
        k_all = self.n_arms
        if self.cand_ptr is None or self.cand_idx is None:
            ptr = np.arange(self.n + 1, dtype=np.int64) * k_all
            return ptr, np.tile(np.arange(k_all, dtype=np.int64), self.n)
        sizes = np.diff(self.cand_ptr)
        if (sizes > 0).all():
            return self.cand_ptr, self.cand_idx
        full = np.where(sizes == 0, k_all, sizes)
        ptr = np.concatenate([[0], np.cumsum(full)]).astype(np.int64)
        idx = np.empty(int(ptr[-1]), dtype=np.int64)
        every = np.arange(k_all, dtype=np.int64)
        for i in range(self.n):
            lo, hi = self.cand_ptr[i], self.cand_ptr[i + 1]
            idx[ptr[i] : ptr[i + 1]] = self.cand_idx[lo:hi] if hi > lo else every
        return ptr, idx

    def candidates(self, i: int) -> IntArray:
        """Candidate arm indices of row ``i``."""
        if self.cand_ptr is None or self.cand_idx is None:
            return np.arange(self.n_arms, dtype=np.int64)
        lo, hi = int(self.cand_ptr[i]), int(self.cand_ptr[i + 1])
        if hi == lo:
            return np.arange(self.n_arms, dtype=np.int64)
        return self.cand_idx[lo:hi]

    def n_candidates(self) -> IntArray:
        if self.cand_ptr is None:
            return np.full(self.n, self.n_arms, dtype=np.int64)
        sizes = np.diff(self.cand_ptr)
        return np.where(sizes == 0, self.n_arms, sizes).astype(np.int64)

    # ------------------------------------------------------------ subsets
    def select(self, rows: npt.ArrayLike) -> BanditLog:
        """The rows given by a boolean mask or an index array, in that order."""
        idx = np.asarray(rows)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)

        def take(a: np.ndarray | None) -> Any:
            return None if a is None else a[idx]

        cand_ptr = cand_idx = None
        if self.cand_ptr is not None and self.cand_idx is not None:
            sizes = np.diff(self.cand_ptr)[idx]
            cand_ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            parts = [self.cand_idx[self.cand_ptr[i] : self.cand_ptr[i + 1]] for i in idx]
            cand_idx = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return replace(
            self,
            x=self.x[idx],
            shown=self.shown[idx],
            propensity=self.propensity[idx],
            reward=self.reward[idx],
            event_id=tuple(self.event_id[i] for i in idx),
            timestamp=self.timestamp[idx],
            cand_ptr=cand_ptr,
            cand_idx=cand_idx,
            scores=take(self.scores),
            reward_raw=take(self.reward_raw),
            reward_source=take(self.reward_source),
            reward_ts=take(self.reward_ts),
            reward_seq=take(self.reward_seq),
            reward_weight=take(self.reward_weight),
            prefix_propensity=take(self.prefix_propensity),
            model_version=take(self.model_version),
            deadline=take(self.deadline),
            position=take(self.position),
            meta=dict(self.meta),
        )

    def complete(self) -> BanditLog:
        """Rows whose first shown arm has its reward (closed decisions)."""
        ok = ~np.isnan(self.logged_reward)
        return self if ok.all() else self.select(ok)

    def split(self, train_frac: float) -> tuple[BanditLog, BanditLog]:
        """(first ``train_frac`` of the rows, the rest), in log order."""
        if not 0.0 <= train_frac < 1.0:
            raise InvalidArgument(f"train_frac={train_frac!r} must be in [0, 1)")
        cut = round(train_frac * self.n)
        return self.select(np.arange(cut)), self.select(np.arange(cut, self.n))

    def is_uniform(self, rtol: float = 1e-6) -> bool:
        """Whether the first-slot propensities are 1 / (number of candidates)."""
        if self.n == 0:
            return True
        expect = 1.0 / self.n_candidates()
        return bool(np.allclose(self.logged_propensity, expect, rtol=rtol, atol=0.0))

    def training_events(self) -> tuple[IntArray, FloatArray, FloatArray]:
        """Every rewarded shown slot as (arm, x, reward): what the engine learned from."""
        rows, slots = np.nonzero((self.shown >= 0) & ~np.isnan(self.reward))
        return self.shown[rows, slots], self.x[rows], self.reward[rows, slots]

    def summary(self) -> dict[str, Any]:
        r = self.logged_reward
        known = ~np.isnan(r)
        return {
            "rows": self.n,
            "rows_rewarded": int(known.sum()),
            "arms": self.n_arms,
            "dim": self.dim,
            "slots": int(self.shown.shape[1]),
            "mean_reward": float(r[known].mean()) if known.any() else float("nan"),
            "uniform_logging": self.is_uniform(),
            "min_propensity": float(np.nanmin(self.logged_propensity)) if self.n else float("nan"),
        }
