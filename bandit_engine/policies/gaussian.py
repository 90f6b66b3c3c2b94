"""The base of per-arm Gaussian-score policies (linear and logistic TS).

For one context x the sampled score of arm a is exactly univariate,
s_a ~ N(x'w_a, scale_a^2 x'C_a x), where C_a is the arm's posterior covariance
(the inverse of its precision, a cache), w_a the weights of its mean and
scale_a the arm's score scale: so ranking n arms costs O(n d^2) and no
d-dimensional draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bandit_engine import kernels
from bandit_engine._exceptions import InvalidArgument
from bandit_engine.features import ArmFeatures
from bandit_engine.policies.base import (
    DEFAULT_HALF_LIFE_S,
    MAX_ABS_FEATURE,
    FloatArray,
    IntArray,
    Policy,
    Ranking,
    _resized,
    check_positive,
)
from bandit_engine.policies.tables import _NORMAL_TABLE32_SIZE, normal_table32

__all__ = ["GaussianArrays", "PerArmGaussian"]


#: Calls' worth of standard normals drawn at once (``_normals``).
_Z_CALLS = 64
#: Table offsets drawn at once (``_offset``).
_OFFSETS = 256

#: Up to this many propensity draws, ``decide`` runs as one kernel holding the
#: GIL (tens of microseconds at 1000 draws, 100 arms); more draws release it.
_GIL_DRAWS_MAX = 20_000


@dataclass(frozen=True)
class GaussianArrays:
    """The arrays a per-arm Gaussian policy's kernels read and update in place,
    indexed by arm (their first axis is the policy's capacity, at least
    ``n_arms``): precision, center (``b`` for the linear model, the MAP
    weights ``m`` for the logistic one), covariance cache, score weights,
    packed scoring rows (float32) and their stale flags, pulls, reward sums,
    updates since the last exact rebuild; and the score scale of each arm."""

    prec: FloatArray
    center: FloatArray
    cov: FloatArray
    weights: FloatArray
    packed: np.ndarray
    stale: np.ndarray
    pulls: IntArray
    reward_sum: FloatArray
    since_refresh: IntArray
    scales: FloatArray


class PerArmGaussian(Policy):
    """The base of per-arm Gaussian-score policies (linear, logistic): each
    arm's score at a context is Gaussian, N(x'w_a, scale_a^2 x'C_a x).

    Arrays: ``_prec`` (precision, state), ``_center`` (b or m, state),
    ``_cov`` (inverse of the precision, cache), the weights the score's
    mean uses (``_weights()``: theta = A^-1 b for the linear model, a cache;
    m itself for the logistic one) and ``_packed``, the scoring rows built
    from the covariance cache (``kernels.pack_arm``; float32, a cache too).
    """

    #: Added to the posterior means the summaries report (``mean_std``,
    #: ``posterior``): the prior mean of a reward, for a model that learns
    #: rewards centred on it. Sampled scores stay centred (model units).
    _offset_mean: float = 0.0

    def __init__(
        self,
        dim: int,
        *,
        prior_precision: float = 1.0,
        decay: float = 1.0,
        half_life_s: float = DEFAULT_HALF_LIFE_S,
        refresh_every: int = 1000,
    ) -> None:
        super().__init__(dim, decay=decay, half_life_s=half_life_s, refresh_every=refresh_every)
        self.prior_precision = check_positive("prior_precision", prior_precision)
        d = self.dim
        self._prec = np.zeros((0, d, d))
        self._center = np.zeros((0, d))
        self._cov = np.zeros((0, d, d))
        self._theta = np.zeros((0, d))
        self._packed = np.zeros((0, kernels.packed_width(d)), dtype=np.float32)
        self._stale = np.zeros(0, dtype=np.uint8)  # 1: the arm's _packed row is out of date
        self._since = np.zeros(0, dtype=np.int64)
        self._scales = np.zeros(0)  # each arm's score scale (a cache)
        # buffered draws (_normals)
        self._zbuf = np.zeros(0)
        self._zrng: np.random.Generator | None = None
        self._zpos = 0
        # buffered table offsets (_offset)
        self._obuf: list[int] = []
        self._orng: np.random.Generator | None = None
        self._opos = 0

    def arrays(self) -> GaussianArrays:
        """The policy's own arrays, for code that runs the kernels of
        ``bandit_engine.kernels`` on it in a loop of its own (the replay
        simulator): writes go straight into the policy. Such code must keep
        them consistent as the update kernels do (precision, its inverse and
        the stale flags together). Valid until the next ``add_arm`` or
        ``load_state_dict``, which may replace the arrays."""
        return GaussianArrays(
            self._prec,
            self._center,
            self._cov,
            self._weights(),
            self._packed,
            self._stale,
            self._pulls,
            self._rsum,
            self._since,
            self._scales,
        )

    def _weights(self) -> FloatArray:
        return self._theta

    def _normals(self, rng: np.random.Generator, n: int) -> FloatArray:
        """The next ``n`` standard normals of ``rng``, drawn many calls' worth
        at a time: one numpy call costs several times a slice of the buffer,
        whatever its size, and is a large part of a 100-arm draw. Taken only by
        calls whose arguments passed their checks, so a refused call changes
        no state; a seeded run still reproduces exactly. The values are those
        of ``rng``'s own stream, in order (a refill keeps what is left), as
        long as nothing else draws from ``rng`` meanwhile (the replay
        simulator's fast path relies on it). Another generator starts a new
        buffer."""
        pos = self._zpos
        buf = self._zbuf
        if rng is not self._zrng:
            buf = rng.standard_normal(max(n * _Z_CALLS, 1024))
            self._zrng = rng
            pos = 0
        elif pos + n > buf.shape[0]:
            buf = np.concatenate((buf[pos:], rng.standard_normal(max(n * _Z_CALLS, 1024))))
            pos = 0
        self._zbuf = buf
        self._zpos = pos + n
        return buf[pos : pos + n]

    def _offset(self, rng: np.random.Generator) -> int:
        """The next offset into ``normal_table32`` for the first-slot counts:
        uniform draws of ``rng``, taken _OFFSETS at a time: in a gRPC server
        thread one ``rng.integers`` call costs a large fraction of the whole
        decision kernel.
        Taken, like the normals, only by calls that passed their checks; a
        seeded run still reproduces exactly."""
        pos = self._opos
        if rng is not self._orng or pos >= len(self._obuf):
            self._obuf = rng.integers(_NORMAL_TABLE32_SIZE, size=_OFFSETS).tolist()
            self._orng = rng
            pos = 0
        self._opos = pos + 1
        return self._obuf[pos]

    @staticmethod
    def _check_applied(arms: IntArray, done: int) -> None:
        """The batch kernels stop at an event that broke positive definiteness."""
        if done != arms.shape[0]:
            raise ValueError(f"precision of arm {int(arms[done])} lost positive definiteness")

    def _grow_arrays(self, capacity: int) -> None:
        self._prec = _resized(self._prec, capacity)
        self._center = _resized(self._center, capacity)
        self._cov = _resized(self._cov, capacity)
        self._theta = _resized(self._theta, capacity)
        self._packed = _resized(self._packed, capacity)
        self._stale = _resized(self._stale, capacity)
        self._since = _resized(self._since, capacity)
        self._scales = _resized(self._scales, capacity)

    def _init_arm(self, idx: int, features: ArmFeatures | None) -> None:
        eye = np.eye(self.dim)
        self._prec[idx] = self.prior_precision * eye
        self._center[idx] = 0.0
        self._cov[idx] = eye / self.prior_precision
        self._theta[idx] = 0.0
        self._since[idx] = 0
        self._init_arm_scale(idx)
        kernels.pack_arm(self._cov, self._packed, idx)
        self._stale[idx] = 0

    def _init_arm_scale(self, idx: int) -> None:
        """Set a new arm's score scale and any statistics it derives from."""
        raise NotImplementedError

    def _refresh_scale(self, arm: int) -> None:
        """Recompute the arm's score scale from the state of record."""

    def mean_std(self, arms: IntArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Mean and std of each arm's score at ``x``, exact in float64."""
        mean, std = kernels.gauss_mean_std_exact(self._cov, self._weights(), arms, x, self._scales)
        return mean + self._offset_mean, std

    def _draw_mean_std(self, arms: IntArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The same, as the Thompson draw computes it: the float32 fast path of
        ``kernels.gauss_arm`` (relative error of the variance below 2e-3 by
        construction, about 1e-7 in practice)."""
        kernels.ensure_packed_all(self._cov, self._packed, self._stale, arms)
        return kernels.gauss_mean_std(
            self._cov, self._weights(), self._packed, arms, x, self._scales
        )

    def sample_scores(
        self, arms: IntArray, x: FloatArray | None, rng: np.random.Generator
    ) -> FloatArray:
        assert x is not None
        mean, std = self._draw_mean_std(arms, x)
        return mean + std * self._normals(rng, arms.shape[0])

    def rank(
        self, arms: IntArray, x: FloatArray | None, k: int, rng: np.random.Generator
    ) -> Ranking:
        # The hot path of a draw: one kernel call holding the GIL checks the
        # values, repacks, draws and takes the top k, reading the normals from
        # the buffer (the same draws as _rank). It takes them (moves the
        # buffer position) only if it accepted the values; a refill, which
        # draws from rng, comes only after the checks.
        a, c = self._shaped(arms, x, k)
        n = a.shape[0]
        buf, pos = self._zbuf, self._zpos
        if rng is not self._zrng or pos + n > buf.shape[0]:
            self._check_values(a, c)
            self._normals(rng, n)
            buf, pos = self._zbuf, self._zpos - n
        order, scores = kernels.gauss_rank(
            self._cov,
            self._weights(),
            self._packed,
            self._stale,
            a,
            c,
            self._scales,
            buf,
            pos,
            k,
            self._n_arms,
            MAX_ABS_FEATURE,
        )
        if order.shape[0] == 0:  # a value the kernel refused: nothing taken
            self._check_values(a, c)  # raises, naming it
            raise AssertionError("gauss_rank refused values first_bad_input accepts")
        self._zpos = pos + n
        return Ranking(order, scores)

    def _shaped(self, arms: IntArray, x: FloatArray | None, k: int) -> tuple[IntArray, FloatArray]:
        """The shape and ``k`` checks of a draw, in Python; the values are
        checked by the kernels (``_check_values`` names a bad one)."""
        a = np.ascontiguousarray(arms, dtype=np.int64)
        c = None if x is None else np.ascontiguousarray(x, dtype=np.float64)
        if a.ndim != 1 or a.shape[0] == 0 or c is None or c.shape != (self.dim,):
            a = self._check_arms(arms)
            c = self._check_context(x)  # these raise, naming the value
            assert c is not None
        if not 1 <= k <= a.shape[0]:
            raise InvalidArgument(f"k={k!r} must be between 1 and {a.shape[0]}")
        return a, c

    def _check_values(self, a: IntArray, c: FloatArray) -> None:
        """Raise, naming it, if an arm index or a context value is bad."""
        if kernels.first_bad_input(a, self._n_arms, c, MAX_ABS_FEATURE):
            self._check_arms(a)
            self._check_context(c)

    def _checked(self, arms: IntArray, x: FloatArray | None, k: int) -> tuple[IntArray, FloatArray]:
        """``_check_arms``, ``_check_context`` and the ``k`` check, the value
        checks in one kernel call; the slow checks only to name a bad value."""
        a, c = self._shaped(arms, x, k)
        self._check_values(a, c)
        return a, c

    def _rank(
        self, arms: IntArray, x: FloatArray | None, k: int, rng: np.random.Generator
    ) -> tuple[Ranking, FloatArray, FloatArray]:
        # one kernel call scores, samples and ranks (the same draws as
        # sample_scores + top_k; this path only saves Python overhead)
        arms, x = self._checked(arms, x, k)
        z = self._normals(rng, arms.shape[0])
        kernels.ensure_packed_all(self._cov, self._packed, self._stale, arms)
        mean, std, scores, order = kernels.gauss_sample_top_k(
            self._cov, self._weights(), self._packed, arms, x, self._scales, z, k
        )
        return Ranking(order, scores[order]), mean, std

    def decide(
        self, arms: IntArray, x: FloatArray | None, k: int, draws: int, rng: np.random.Generator
    ) -> tuple[Ranking, IntArray]:
        if draws < 1:
            raise InvalidArgument(f"draws={draws!r} must be >= 1")
        arms, x = self._checked(arms, x, k)
        order, scores, counts = self.decide_unchecked(arms, x, k, draws, rng)
        return Ranking(order, scores), counts

    def decide_unchecked(
        self, arms: IntArray, x: FloatArray | None, k: int, draws: int, rng: np.random.Generator
    ) -> tuple[IntArray, FloatArray, IntArray]:
        assert x is not None
        z = self._normals(rng, arms.shape[0])
        table = normal_table32()
        offset = self._offset(rng)
        if draws > _GIL_DRAWS_MAX:
            # long enough to be worth releasing the GIL: the same draws, by
            # the nogil kernels in two calls
            kernels.ensure_packed_all(self._cov, self._packed, self._stale, arms)
            mean, std, scores, order = kernels.gauss_sample_top_k(
                self._cov, self._weights(), self._packed, arms, x, self._scales, z, k
            )
            counts = kernels.first_slot_counts_gauss(mean, std, table, offset, draws)
            return order, scores[order], counts
        # one kernel call holding the GIL (see ``bandit_engine.kernels``)
        return kernels.gauss_decide(
            self._cov,
            self._weights(),
            self._packed,
            self._stale,
            arms,
            x,
            self._scales,
            z,
            k,
            table,
            offset,
            draws,
        )

    def decide_slots_unchecked(
        self, arms: IntArray, x: FloatArray | None, k: int, draws: int, rng: np.random.Generator
    ) -> tuple[IntArray, FloatArray, IntArray, IntArray]:
        assert x is not None
        z = self._normals(rng, arms.shape[0])
        offset = self._offset(rng)
        kernels.ensure_packed_all(self._cov, self._packed, self._stale, arms)
        mean, std, scores, order = kernels.gauss_sample_top_k(
            self._cov, self._weights(), self._packed, arms, x, self._scales, z, k
        )
        slot, prefix = kernels.slot_counts_gauss(mean, std, normal_table32(), offset, draws, order)
        return order, scores[order], slot, prefix

    def slot_counts(
        self,
        arms: IntArray,
        x: FloatArray | None,
        order: IntArray,
        draws: int,
        rng: np.random.Generator,
    ) -> tuple[IntArray, IntArray]:
        assert x is not None
        mean, std = self._draw_mean_std(arms, x)
        return kernels.slot_counts_gauss(
            mean, std, normal_table32(), self._offset(rng), draws, order
        )

    def first_slot_counts(
        self, arms: IntArray, x: FloatArray | None, draws: int, rng: np.random.Generator
    ) -> IntArray:
        assert x is not None
        mean, std = self._draw_mean_std(arms, x)
        table = normal_table32()
        return kernels.first_slot_counts_gauss(mean, std, table, self._offset(rng), draws)

    def posterior(self, arm: int, x: FloatArray | None = None) -> tuple[float, float]:
        arm, x = self._summary_point(arm, x)
        mean, std = self.mean_std(np.array([arm], dtype=np.int64), x)
        return float(mean[0]), float(std[0])

    def refresh(self) -> None:
        for a in range(self._n_arms):
            inv, ok = kernels.spd_inverse(self._prec[a])
            if not ok:
                raise ValueError(f"precision matrix of arm {a} is not positive definite")
            self._cov[a] = inv
            self._since[a] = 0
            kernels.refresh_theta(self._cov, self._center, self._theta, a)
            self._refresh_scale(a)
            kernels.pack_arm(self._cov, self._packed, a)
            self._stale[a] = 0
