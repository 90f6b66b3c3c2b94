"""Linear Gaussian Thompson sampling with one model shared by all arms.

The model scores phi(x, a)' theta, where phi crosses every context coordinate
x_i with every attribute f_j of the arm (destination country, type, and an
identity feature per arm), hashed into ``joint_dim`` buckets. A new arm
starts from what similar arms taught the shared weights (cold start): a new
beach destination in France inherits "x_i x country=FR" and "x_i x
type=beach" on its first request; the identity feature then learns what is
particular to it.

State of record: A = lam*I + sum phi phi', b = sum r phi. One posterior draw
theta = mu + v R^-1 z (A = R'R, R = L' upper triangular) per request ranks all
candidates, so their scores are correlated exactly as the model says.

R and mu are caches. Without forgetting, an event adds phi phi' to A, a
rank-one change: the next decision folds the events since the last one into
R by rank-one updates (O(joint_dim^2) each) and solves for the mean against R
(O(joint_dim^2)), instead of refactoring A (O(joint_dim^3)). R is refactored
from A (exactly, by LAPACK) when more than ``joint_dim / 8`` events wait for
it (their updates would cost about as much), every ``refresh_every`` events
and on load, so rounding in the updates cannot accumulate.

With forgetting (``decay`` < 1) an event sets A <- lam*I + decay*(A - lam*I)
+ phi phi'. The restored prior (1 - decay)*lam*I moves every eigenvalue of A,
which no rank-one update of R reproduces, and a factor that deferred it (or
scaled the prior away with the data) would serve a posterior other than the
closed form. So with forgetting, R is refactored from A by the first decision
after a batch of events: exact, at O(joint_dim^3) per batch (about 0.7 ms at
256) instead of O(joint_dim^2).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from bandit_engine import kernels
from bandit_engine._exceptions import InvalidArgument
from bandit_engine.features import ArmFeatures
from bandit_engine.policies.base import (
    DEFAULT_HALF_LIFE_S,
    FloatArray,
    IntArray,
    Policy,
    check_positive,
)
from bandit_engine.policies.tables import normal_table

__all__ = ["DEFAULT_JOINT_DIM", "LinTSShared", "default_joint_dim"]

#: ``joint_dim`` of a model created without one (see ``LinTSShared``).
DEFAULT_JOINT_DIM = 256

#: More than ``joint_dim // _PENDING_DIV`` events waiting for the factor: refactor
#: A instead of as many rank-one updates (O(jd^2) each against O(jd^3 / 3)).
_PENDING_DIV = 8


def default_joint_dim(dim: int) -> int:
    """The ``joint_dim`` of a shared model of context dimension ``dim`` created
    without one."""
    return DEFAULT_JOINT_DIM


#: Score cells (draws x arms) per GEMM in ``first_slot_counts``: 2 MiB.
_GEMM_CELLS = 1 << 18


def _window(table: FloatArray, pos: int, n: int) -> FloatArray:
    """``n`` consecutive entries of ``table`` from ``pos``, wrapping around."""
    if pos + n <= table.shape[0]:
        return table[pos : pos + n]
    return np.take(table, np.arange(pos, pos + n) % table.shape[0])


class LinTSShared(Policy):
    """Thompson sampling over one linear model of hashed context x arm crosses.

    Parameters (API names):

    - ``dim``: context dimension.
    - ``joint_dim`` (default 256, ``DEFAULT_JOINT_DIM``, whatever ``dim``):
      buckets of the hashed crosses phi(x, a), the size of the model (A is
      joint_dim x joint_dim). Crosses that share a bucket share a weight,
      with random signs, so a collision adds noise rather than a bias. A
      rank right after an update costs O(joint_dim^2): about 40 us at 256
      and 100 us at 512 (dim 16, 100 candidates); first-slot propensities
      cost O(draws * joint_dim * candidates). A larger joint_dim collides
      less but has more weights to learn (at 100 arms, 512 and 1024 learned
      less in 10,000 rounds than 256); with few arms and contexts of many
      more than 16 dimensions it can pay to raise it.
    - ``prior_precision`` (lam, default 1.0): the ridge prior A = lam*I.
    - ``noise_scale`` (v, default 0.25): draws are theta ~ N(mu, v^2 A^-1).
    - ``decay`` (default 1.0, none): every event first shrinks the evidence,
      A <- lam*I + decay*(A - lam*I), b <- decay*b.
    - ``refresh_every`` (default 1000): the factor is rebuilt from A at least
      this often (in events).

    A model loaded from a state whose A has another size than the default
    keeps the state's size (when ``joint_dim`` was not given).
    """

    kind = "lin_ts_shared"
    evidence_keys = ("A", "b")
    evidence_per_arm = False

    def __init__(
        self,
        dim: int,
        *,
        joint_dim: int | None = None,
        prior_precision: float = 1.0,
        noise_scale: float = 0.25,
        decay: float = 1.0,
        half_life_s: float = DEFAULT_HALF_LIFE_S,
        refresh_every: int = 1000,
    ) -> None:
        super().__init__(dim, decay=decay, half_life_s=half_life_s, refresh_every=refresh_every)
        jd = default_joint_dim(self.dim) if joint_dim is None else joint_dim
        if not isinstance(jd, int) or jd < 1:
            raise InvalidArgument(f"joint_dim={joint_dim!r} must be a positive integer")
        self.joint_dim = jd
        self._jd_given = joint_dim is not None
        self.prior_precision = check_positive("prior_precision", prior_precision)
        self.noise_scale = check_positive("noise_scale", noise_scale)
        self._A = self.prior_precision * np.eye(jd)
        self._b = np.zeros(jd)
        self._feat_ids: list[IntArray] = []
        self._feat_vals: list[FloatArray] = []
        self._ptr = np.zeros(1, dtype=np.int64)
        self._ids = np.zeros(0, dtype=np.int64)
        self._vals = np.zeros(0)
        self._alloc_caches()

    def _alloc_caches(self) -> None:
        jd = self.joint_dim
        self._r = np.zeros((jd, jd))  # upper factor R, A = R'R, valid if _r_ok
        self._r_ok = False
        self._y: FloatArray | None = None  # R'^-1 b: mu = R^-1 y
        self._mu: FloatArray | None = None
        self._pending = np.zeros((max(1, jd // _PENDING_DIV), jd))  # phi rows not in R yet
        self._n_pending = 0
        self._since_rebuild = 0  # events folded into R since it was built from A

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
    def _factor(self) -> tuple[FloatArray, FloatArray]:
        """R (A = R'R) and y = R'^-1 b (so mu = R^-1 y), current with the state
        of record."""
        if not self._r_ok:
            try:
                lo = np.linalg.cholesky(self._A)  # LAPACK's blocked potrf
            except np.linalg.LinAlgError:
                raise ValueError("shared precision matrix is not positive definite") from None
            self._r[:] = lo.T
            self._r_ok = True
            self._n_pending = 0
            self._since_rebuild = 0
            self._y = None
        elif self._n_pending:
            kernels.chol_update_upper(self._r, self._pending, self._n_pending)
            self._since_rebuild += self._n_pending
            self._n_pending = 0
        if self._y is None:
            self._y = kernels.solve_upper_t(self._r, self._b)
            self._mu = None
        return self._r, self._y

    def _factors(self) -> tuple[FloatArray, FloatArray]:
        """R and mu = A^-1 b."""
        r, y = self._factor()
        if self._mu is None:
            self._mu = kernels.solve_upper(r, y)
        return r, self._mu

    def refresh(self) -> None:
        self._r_ok = False
        self._factors()

    def cholesky_factor(self) -> FloatArray:
        """A copy of the lower Cholesky factor L of the precision (A = L L'),
        as the next decision uses it."""
        r, _ = self._factors()
        return np.ascontiguousarray(r.T)

    def posterior_mean(self) -> FloatArray:
        """A copy of mu = A^-1 b, the posterior mean of the shared weights."""
        _, mu = self._factors()
        return mu.copy()

    # ------------------------------------------------------------- decisions
    def sample_scores(
        self, arms: IntArray, x: FloatArray | None, rng: np.random.Generator
    ) -> FloatArray:
        assert x is not None
        r, y = self._factor()
        z = rng.standard_normal(self.joint_dim)
        return kernels.shared_draw_scores(
            x, arms, self._ptr, self._ids, self._vals, r, y, z, self.noise_scale
        )

    def slot_counts(
        self,
        arms: IntArray,
        x: FloatArray | None,
        order: IntArray,
        draws: int,
        rng: np.random.Generator,
    ) -> tuple[IntArray, IntArray]:
        assert x is not None
        k = order.shape[0]
        slot = np.zeros(k, dtype=np.int64)
        prefix = np.zeros(k, dtype=np.int64)
        shown = np.ascontiguousarray(order, dtype=np.int64)
        for scores in self._draw_blocks(arms, x, draws, rng):
            kernels.topk_match_counts(scores, shown, slot, prefix)
        return slot, prefix

    def _draw_blocks(
        self, arms: IntArray, x: FloatArray, draws: int, rng: np.random.Generator
    ) -> Iterator[FloatArray]:
        """``draws`` posterior draws of the arms' scores, in (draws, arms) blocks."""
        r, mu = self._factors()
        phi = self.joint(arms, x)
        w = kernels.solve_upper_t_rows(r, phi)  # (joint_dim, arms)
        w *= self.noise_scale
        base = phi @ mu
        table = normal_table()
        pos = int(rng.integers(table.shape[0]))
        dim = self.joint_dim
        step = max(1, _GEMM_CELLS // max(arms.shape[0], dim))
        for start in range(0, draws, step):
            m = min(step, draws - start)
            z = _window(table, pos, m * dim).reshape(m, dim)
            pos = (pos + m * dim) % table.shape[0]
            scores = z @ w
            scores += base
            yield scores

    def first_slot_counts(
        self, arms: IntArray, x: FloatArray | None, draws: int, rng: np.random.Generator
    ) -> IntArray:
        assert x is not None
        r, mu = self._factors()
        phi = self.joint(arms, x)
        # A draw theta = mu + s R^-1 z scores arm a as phi_a.mu + s (R'^-1 phi_a).z:
        # one triangular solve per request, then the draws are a GEMM (BLAS)
        # over standard normals read from the seeded table at an offset drawn
        # from ``rng``, row by row as a loop over draws would read them.
        w = kernels.solve_upper_t_rows(r, phi)  # (joint_dim, arms)
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
    def _event_phis(self, arms: IntArray, xs: FloatArray | None) -> FloatArray:
        """phi(x, a) of each event, one row per event; checked finite."""
        assert xs is not None
        phis = np.empty((arms.shape[0], self.joint_dim))
        for i in range(arms.shape[0]):
            phis[i] = self.joint(arms[i : i + 1], xs[i])[0]
        if not np.all(np.isfinite(phis)):
            raise InvalidArgument("joint features are not finite")
        return phis

    def _apply(
        self, arms: IntArray, xs: FloatArray | None, rewards: FloatArray, weights: FloatArray
    ) -> None:
        phis = self._event_phis(arms, xs)
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
            weights,
        )
        if not np.all(weights == 1.0):
            phis *= np.sqrt(weights)[:, None]  # A += w phi phi': a rank-one update by sqrt(w) phi
        self._y = None
        self._mu = None
        n = arms.shape[0]
        total = self._n_pending + n
        if (
            self.decay != 1.0
            or not self._r_ok
            or total > self._pending.shape[0]
            or self._since_rebuild + total >= self.refresh_every
        ):
            self._r_ok = False  # refactored from A by the next decision
            self._n_pending = 0
        else:
            self._pending[self._n_pending : total] = phis
            self._n_pending = total

    def _evidence_sums(
        self, arms: IntArray, xs: FloatArray | None, rewards: FloatArray, weights: FloatArray
    ) -> dict[str, np.ndarray]:
        phis = self._event_phis(arms, xs)
        wp = phis * weights[:, None]
        m = wp.T @ phis
        return {"A": 0.5 * (m + m.T), "b": wp.T @ rewards}

    def _decay_arms(self, arms: IntArray, factors: FloatArray) -> None:
        # one model for all arms: its evidence decays with any arm's
        g = float(factors[0])
        lam = self.prior_precision
        self._A *= g
        self._A[np.diag_indices_from(self._A)] += (1.0 - g) * lam
        self._b *= g
        self._y = None
        self._mu = None
        self._r_ok = False  # refactored from A by the next decision
        self._n_pending = 0

    def posterior(self, arm: int, x: FloatArray | None = None) -> tuple[float, float]:
        arm, x = self._summary_point(arm, x)
        r, mu = self._factors()
        phi = self.joint(np.array([arm], dtype=np.int64), x)[0]
        w = kernels.factor_solve(r, phi)
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
        a_mat = np.array(state["A"], dtype=np.float64)
        b = np.array(state["b"], dtype=np.float64)
        jd = b.shape[0] if b.ndim == 1 else -1
        if a_mat.shape != (jd, jd):
            raise InvalidArgument(f"shared state: A of shape {a_mat.shape} and b of {b.shape}")
        if jd != self.joint_dim:
            if self._jd_given:
                raise InvalidArgument(
                    f"shared state has joint_dim={jd}; this model has joint_dim={self.joint_dim}"
                )
            self.joint_dim = jd  # a state of another size, and no joint_dim given: its size
        self._A = a_mat
        self._b = b
        self._alloc_caches()
        ptr = np.asarray(state["feat_ptr"], dtype=np.int64)
        ids = np.asarray(state["feat_ids"], dtype=np.int64)
        vals = np.asarray(state["feat_vals"], dtype=np.float64)
        self._feat_ids = [ids[ptr[i] : ptr[i + 1]].copy() for i in range(n)]
        self._feat_vals = [vals[ptr[i] : ptr[i + 1]].copy() for i in range(n)]
        self._rebuild_csr()
