"""Beta-Bernoulli Thompson sampling (Thompson 1933; Chapelle & Li 2011).

Each arm has a Beta(alpha, beta) posterior over its success rate. A reward
r in [0, 1] is applied as a fractional Bernoulli observation,
``alpha += r, beta += 1 - r``, which is the exact conjugate update for 0/1
rewards and the standard extension (Agrawal & Goyal 2012) otherwise.
The context is accepted and ignored.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from bandit_engine import kernels
from bandit_engine.features import ArmFeatures
from bandit_engine.policies.base import (
    DEFAULT_HALF_LIFE_S,
    FloatArray,
    IntArray,
    Policy,
    _resized,
    check_positive,
)
from bandit_engine.policies.tables import normal_table, uniform_table

__all__ = ["BetaTS"]


@functools.cache
def _table_bounds() -> tuple[float, float, float]:
    """Smallest and largest normal, smallest uniform of the seeded tables."""
    normals, uniforms = normal_table(), uniform_table()
    return float(normals.min()), float(normals.max()), float(uniforms.min())


class BetaTS(Policy):
    kind = "beta_ts"
    evidence_keys = ("alpha", "beta")
    contextual = False

    def __init__(
        self,
        dim: int = 1,
        *,
        prior_alpha: float = 1.0,
        prior_beta: float = 1.0,
        decay: float = 1.0,
        half_life_s: float = DEFAULT_HALF_LIFE_S,
        refresh_every: int = 1000,
    ) -> None:
        super().__init__(dim, decay=decay, half_life_s=half_life_s, refresh_every=refresh_every)
        self.prior_alpha = check_positive("prior_alpha", prior_alpha)
        self.prior_beta = check_positive("prior_beta", prior_beta)
        self._alpha = np.zeros(0)
        self._beta = np.zeros(0)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "prior_alpha": self.prior_alpha, "prior_beta": self.prior_beta}

    def _grow_arrays(self, capacity: int) -> None:
        self._alpha = _resized(self._alpha, capacity)
        self._beta = _resized(self._beta, capacity)

    def _init_arm(self, idx: int, features: ArmFeatures | None) -> None:
        self._alpha[idx] = self.prior_alpha
        self._beta[idx] = self.prior_beta

    def sample_scores(
        self, arms: IntArray, x: FloatArray | None, rng: np.random.Generator
    ) -> FloatArray:
        return rng.beta(self._alpha[arms], self._beta[arms])

    def first_slot_counts(
        self, arms: IntArray, x: FloatArray | None, draws: int, rng: np.random.Generator
    ) -> IntArray:
        # Gamma draws in one kernel from seeded tables, at offsets drawn from
        # ``rng``, skipping arms that cannot win: faster than rng.beta over a
        # (draws, arms) matrix (docs/design/scoring.md).
        return kernels.beta_first_counts(*self._draw_args(arms, draws, rng))

    def slot_counts(
        self,
        arms: IntArray,
        x: FloatArray | None,
        order: IntArray,
        draws: int,
        rng: np.random.Generator,
    ) -> tuple[IntArray, IntArray]:
        return kernels.beta_slot_counts(
            *self._draw_args(arms, draws, rng), np.ascontiguousarray(order, dtype=np.int64)
        )

    def _draw_args(self, arms: IntArray, draws: int, rng: np.random.Generator) -> tuple[Any, ...]:
        """The Beta propensity kernels' arguments: the arms' parameters, the
        seeded tables at offsets drawn from ``rng``, and the tables' bounds."""
        normals, uniforms = normal_table(), uniform_table()
        off = rng.integers(normals.shape[0], size=2)
        return (
            self._alpha[arms],
            self._beta[arms],
            normals,
            uniforms,
            int(off[0]),
            int(off[1]),
            draws,
            *_table_bounds(),
        )

    def _apply(
        self, arms: IntArray, xs: FloatArray | None, rewards: FloatArray, weights: FloatArray
    ) -> None:
        kernels.beta_update_batch(
            self._alpha,
            self._beta,
            self._pulls,
            self._rsum,
            arms,
            rewards,
            self.prior_alpha,
            self.prior_beta,
            self.decay,
            weights,
        )

    def _evidence_sums(
        self, arms: IntArray, xs: FloatArray | None, rewards: FloatArray, weights: FloatArray
    ) -> dict[str, np.ndarray]:
        n = self._n_arms
        return {
            "alpha": np.bincount(arms, weights * rewards, n),
            "beta": np.bincount(arms, weights * (1.0 - rewards), n),
        }

    def _decay_arms(self, arms: IntArray, factors: FloatArray) -> None:
        a0, b0 = self.prior_alpha, self.prior_beta
        self._alpha[arms] = a0 + factors * (self._alpha[arms] - a0)
        self._beta[arms] = b0 + factors * (self._beta[arms] - b0)

    def posterior(self, arm: int, x: FloatArray | None = None) -> tuple[float, float]:
        a = float(self._alpha[self._check_arm(arm)])
        b = float(self._beta[arm])
        s = a + b
        return a / s, math.sqrt(a * b / (s * s * (s + 1.0)))

    def _state_arrays(self) -> dict[str, np.ndarray]:
        n = self._n_arms
        return {"alpha": self._alpha[:n].copy(), "beta": self._beta[:n].copy()}

    def _load_arrays(self, state: dict[str, np.ndarray], n: int) -> None:
        self._alpha[:n] = state["alpha"]
        self._beta[:n] = state["beta"]
