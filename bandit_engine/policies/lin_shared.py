"""Linear Gaussian Thompson sampling with one model shared by all arms.

The model scores phi(x, a)' theta, where phi crosses every context coordinate
x_i with every attribute f_j of the arm (destination country, type, and an
identity feature per arm), hashed into ``joint_dim`` buckets. A new arm
starts from what similar arms taught the shared weights (cold start): a new
beach destination in France inherits "x_i x country=FR" and "x_i x
type=beach" on its first request; the identity feature then learns what is
particular to it.

State of record: A = lam*I + sum phi phi', b = sum r phi. One posterior draw
theta = mu + v L'^-1 z (A = L L') per request ranks all candidates, so their
scores are correlated exactly as the model says. L and mu are caches
recomputed when the statistics change.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bandit_engine import kernels
from bandit_engine._exceptions import InvalidArgument
from bandit_engine.features import ArmFeatures
from bandit_engine.policies.base import (
    FloatArray,
    IntArray,
    Policy,
    check_positive,
    normal_table,
)

__all__ = ["LinTSShared"]


#: Score cells (draws x arms) per GEMM in ``first_slot_counts``: 2 MiB.
_GEMM_CELLS = 1 << 18


def _window(table: FloatArray, pos: int, n: int) -> FloatArray:
    """``n`` consecutive entries of ``table`` from ``pos``, wrapping around."""
    if pos + n <= table.shape[0]:
        return table[pos : pos + n]
    return np.take(table, np.arange(pos, pos + n) % table.shape[0])


class LinTSShared(Policy):
    kind = "lin_ts_shared"

    def __init__(
        self,
        dim: int,
        *,
        joint_dim: int | None = None,
        prior_precision: float = 1.0,
        noise_scale: float = 0.25,
        decay: float = 1.0,
        refresh_every: int = 1000,
    ) -> None:
        super().__init__(dim, decay=decay, refresh_every=refresh_every)
        jd = 4 * self.dim if joint_dim is None else joint_dim
        if not isinstance(jd, int) or jd < 1:
            raise InvalidArgument(f"joint_dim={joint_dim!r} must be a positive integer")
        self.joint_dim = jd
        self.prior_precision = check_positive("prior_precision", prior_precision)
        self.noise_scale = check_positive("noise_scale", noise_scale)
        self._A = self.prior_precision * np.eye(jd)
        self._b = np.zeros(jd)
        self._feat_ids: list[IntArray] = []
        self._feat_vals: list[FloatArray] = []
        self._ptr = np.zeros(1, dtype=np.int64)
        self._ids = np.zeros(0, dtype=np.int64)
        self._vals = np.zeros(0)
        self._chol: FloatArray | None = None
        self._mu: FloatArray | None = None

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "joint_dim": self.joint_dim,
            "prior_precision": self.prior_precision,
            "noise_scale": self.noise_scale,
        }

    # ------------------------------------------------------------------ arms
    def _grow_arrays(self, capacity: int) -> None:
        pass

    def _init_arm(self, idx: int, features: ArmFeatures | None) -> None:
        if features is None:
            features = ArmFeatures.build(str(idx))
        self._feat_ids.append(np.asarray(features.ids, dtype=np.int64))
        self._feat_vals.append(np.asarray(features.values, dtype=np.float64))
        self._rebuild_csr()

    def _rebuild_csr(self) -> None:
        lens = [a.shape[0] for a in self._feat_ids]
        self._ptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        self._ids = np.concatenate(self._feat_ids) if lens else np.zeros(0, dtype=np.int64)
        self._vals = np.concatenate(self._feat_vals) if lens else np.zeros(0)

    def joint(self, arms: IntArray, x: FloatArray) -> FloatArray:
        """phi(x, a) for each arm, one row per arm."""
        return kernels.joint_matrix(x, arms, self._ptr, self._ids, self._vals, self.joint_dim)

    # ---------------------------------------------------------------- caches
    def _factors(self) -> tuple[FloatArray, FloatArray]:
        if self._chol is None or self._mu is None:
            lo, ok = kernels.cholesky_lower(self._A)
            if not ok:
                raise ValueError("shared precision matrix is not positive definite")
            self._chol = lo
            self._mu = kernels.spd_solve(lo, self._b)
        return self._chol, self._mu

    def refresh(self) -> None:
        self._chol = None
        self._mu = None
        self._factors()

    # ------------------------------------------------------------- decisions
    def sample_scores(
        self, arms: IntArray, x: FloatArray | None, rng: np.random.Generator
    ) -> FloatArray:
        assert x is not None
        lo, mu = self._factors()
        z = rng.standard_normal(self.joint_dim)
        return kernels.shared_scores(self.joint(arms, x), lo, mu, z, self.noise_scale)

    def first_slot_counts(
        self, arms: IntArray, x: FloatArray | None, draws: int, rng: np.random.Generator
    ) -> IntArray:
        assert x is not None
        lo, mu = self._factors()
        phi = self.joint(arms, x)
        # A draw theta = mu + s L'^-1 z scores arm a as phi_a.mu + s (L^-1 phi_a).z:
        # one triangular solve per request, then the draws are a GEMM (BLAS)
        # over standard normals read from the seeded table at an offset drawn
        # from ``rng``, row by row as a loop over draws would read them.
        w = kernels.solve_lower_rows(lo, phi)  # (joint_dim, arms)
        w *= self.noise_scale
        base = phi @ mu
        table = normal_table()
        pos = int(rng.integers(table.shape[0]))
        dim = self.joint_dim
        counts = np.zeros(arms.shape[0], dtype=np.int64)
        step = max(1, _GEMM_CELLS // max(arms.shape[0], dim))  # draws per GEMM: bounded memory
        for start in range(0, draws, step):
            m = min(step, draws - start)
            z = _window(table, pos, m * dim).reshape(m, dim)
            pos = (pos + m * dim) % table.shape[0]
            scores = z @ w
            scores += base
            kernels.argmax_counts(scores, counts)
        return counts

    # --------------------------------------------------------------- learning
    def _apply(self, arms: IntArray, xs: FloatArray | None, rewards: FloatArray) -> None:
        assert xs is not None
        phis = np.empty((arms.shape[0], self.joint_dim))
        for i in range(arms.shape[0]):
            phis[i] = self.joint(arms[i : i + 1], xs[i])[0]
        if not np.all(np.isfinite(phis)):
            raise InvalidArgument("joint features are not finite")
        kernels.shared_update_batch(
            self._A,
            self._b,
            self._pulls,
            self._rsum,
            arms,
            phis,
            rewards,
            self.prior_precision,
            self.decay,
        )
        self._chol = None
        self._mu = None

    def posterior(self, arm: int, x: FloatArray | None = None) -> tuple[float, float]:
        arm, x = self._summary_point(arm, x)
        lo, mu = self._factors()
        phi = self.joint(np.array([arm], dtype=np.int64), x)[0]
        w = kernels.spd_solve(lo, phi)
        return float(phi @ mu), float(self.noise_scale * np.sqrt(max(phi @ w, 0.0)))

    # ------------------------------------------------------------------ state
    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {
            "A": self._A.copy(),
            "b": self._b.copy(),
            "feat_ptr": self._ptr.copy(),
            "feat_ids": self._ids.copy(),
            "feat_vals": self._vals.copy(),
        }

    def _load_arrays(self, state: dict[str, np.ndarray], n: int) -> None:
        self._A = np.array(state["A"], dtype=np.float64)
        self._b = np.array(state["b"], dtype=np.float64)
        ptr = np.asarray(state["feat_ptr"], dtype=np.int64)
        ids = np.asarray(state["feat_ids"], dtype=np.int64)
        vals = np.asarray(state["feat_vals"], dtype=np.float64)
        self._feat_ids = [ids[ptr[i] : ptr[i + 1]].copy() for i in range(n)]
        self._feat_vals = [vals[ptr[i] : ptr[i + 1]].copy() for i in range(n)]
        self._rebuild_csr()
