"""Linear Gaussian Thompson sampling, one model per arm (Agrawal & Goyal 2013).

Arm a keeps A_a = lam*I + sum x x' and b_a = sum r x. Its posterior is
theta_a ~ N(A_a^-1 b_a, v^2 A_a^-1), so for one context x the sampled score is
exactly univariate: s_a ~ N(x' A_a^-1 b_a, v^2 x' A_a^-1 x). Ranking n arms
costs O(n d^2) and no d-dimensional draw. A_a^-1 is a cache kept by
Sherman-Morrison updates and rebuilt from A_a every ``refresh_every`` updates
(and on load) so rounding cannot drift.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bandit_engine import kernels
from bandit_engine.policies.base import FloatArray, IntArray, check_positive
from bandit_engine.policies.gaussian import PerArmGaussian

__all__ = ["LinTSDisjoint"]


class LinTSDisjoint(PerArmGaussian):
    kind = "lin_ts_disjoint"

    def __init__(
        self,
        dim: int,
        *,
        prior_precision: float = 1.0,
        noise_scale: float = 0.25,
        decay: float = 1.0,
        refresh_every: int = 1000,
    ) -> None:
        super().__init__(
            dim, prior_precision=prior_precision, decay=decay, refresh_every=refresh_every
        )
        self.noise_scale = check_positive("noise_scale", noise_scale)
        self._scale = self.noise_scale

    def posterior(self, arm: int, x: FloatArray | None = None) -> tuple[float, float]:
        """Mean and std of the arm's score at ``x``, solved from the state of
        record (A, b), not from the caches: a restart rebuilds the caches in
        another order of rounding, and a summary must not move by 1e-16
        because the process restarted (the same A and b give the same bits)."""
        arm, x = self._summary_point(arm, x)
        sol = np.linalg.solve(self._prec[arm], np.stack([self._center[arm], x], axis=1))
        mean = float(x @ sol[:, 0])
        return mean, float(self._scale * math.sqrt(max(float(x @ sol[:, 1]), 0.0)))

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "prior_precision": self.prior_precision,
            "noise_scale": self.noise_scale,
        }

    def _apply(self, arms: IntArray, xs: FloatArray | None, rewards: FloatArray) -> None:
        done = kernels.lin_update_batch(
            self._prec,
            self._center,
            self._cov,
            self._theta,
            self._stale,
            self._pulls,
            self._rsum,
            self._since,
            arms,
            xs,
            rewards,
            self.prior_precision,
            self.decay,
            self.refresh_every,
        )
        self._check_applied(arms, done)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        n = self._n_arms
        return {"A": self._prec[:n].copy(), "b": self._center[:n].copy()}

    def _load_arrays(self, state: dict[str, np.ndarray], n: int) -> None:
        self._prec[:n] = state["A"]
        self._center[:n] = state["b"]
