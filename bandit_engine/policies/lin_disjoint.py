"""Linear Gaussian Thompson sampling, one model per arm (Agrawal & Goyal 2013),
with the noise scale learned from the rewards.

Arm a keeps A_a = lam*I + sum x x' and b_a = sum (r - r0) x over rewards
centred on the prior mean r0, and the noise sums sum (r - r0)^2 and n. Its
posterior is normal-inverse-gamma (Riquelme, Tucker & Snoek 2018, "Deep
Bayesian Bandits Showdown"): theta_a | sigma^2 ~ N(A_a^-1 b_a, sigma^2 A_a^-1),
sigma^2 ~ IG(a_n, b_n). For one context x the sampled score is
s_a ~ N(r0 + x' A_a^-1 b_a, (c sigma_a)^2 x' A_a^-1 x), univariate, so ranking
n arms costs O(n d^2) and no d-dimensional draw; sigma_a^2 = b_n / (a_n - 1)
is the variance of the posterior predictive Student t (``kernels.lin_noise_scale``),
and c the ``exploration``. A_a^-1 is a cache kept by Sherman-Morrison updates
and rebuilt from A_a every ``refresh_every`` updates (and on load) so
rounding cannot drift.

Why these defaults. Rewards reach the policy mapped onto [0, 1] (the
engine maps an experiment's reward range onto it), so the prior mean of a
reward is r0 = 0.5 and the prior guess of the noise scale is 0.5, the largest
standard deviation of a variable in [0, 1], held with the weight of
``NOISE_PRIOR_SHAPE`` = 2 (a0: the prior counts as two observations): the
data take over within tens of events per arm, whether the rewards are clicks
at 0.5% (sigma near 0.07) or ratings (sigma near 0.2). ``exploration`` 0.5
draws at half the posterior's spread: Thompson sampling from the exact
posterior over-explores in practice (Chapelle & Li 2011 found the same for
their logistic model), and 0.5 came within a few percent of the best fixed
scale on every world of the ``learning`` benchmark (docs/performance.md).
A fixed ``noise_scale`` replaces the learned sigma_a (the model of
Agrawal & Goyal with v = noise_scale * exploration).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bandit_engine import kernels
from bandit_engine.policies.base import (
    DEFAULT_HALF_LIFE_S,
    FloatArray,
    IntArray,
    _resized,
    check_positive,
)
from bandit_engine.policies.gaussian import PerArmGaussian

__all__ = [
    "LIN_EXPLORATION",
    "NOISE_PRIOR_SHAPE",
    "NOISE_PRIOR_STD",
    "PRIOR_MEAN",
    "LinTSDisjoint",
]

#: Default ``exploration`` of ``LinTSDisjoint``.
LIN_EXPLORATION = 0.5
#: The prior mean of a reward (rewards reach the policy in [0, 1]).
PRIOR_MEAN = 0.5
#: The prior guess of the noise standard deviation, and its weight a0.
NOISE_PRIOR_STD = 0.5
NOISE_PRIOR_SHAPE = 2.0


class LinTSDisjoint(PerArmGaussian):
    """Linear TS per arm. ``prior_precision`` lambda (default 1.0);
    ``noise_scale`` None (default): learned per arm, or a fixed sigma;
    ``exploration`` c (default 0.5): the draw's spread relative to the
    posterior's; ``decay`` and ``refresh_every`` as for every policy."""

    kind = "lin_ts_disjoint"
    evidence_keys = ("A", "b", "noise")
    _offset_mean = PRIOR_MEAN

    def __init__(
        self,
        dim: int,
        *,
        prior_precision: float = 1.0,
        noise_scale: float | None = None,
        exploration: float = LIN_EXPLORATION,
        decay: float = 1.0,
        half_life_s: float = DEFAULT_HALF_LIFE_S,
        refresh_every: int = 1000,
    ) -> None:
        super().__init__(
            dim,
            prior_precision=prior_precision,
            decay=decay,
            half_life_s=half_life_s,
            refresh_every=refresh_every,
        )
        self.noise_scale = (
            None if noise_scale is None else check_positive("noise_scale", noise_scale)
        )
        self.exploration = check_positive("exploration", exploration)
        prior = np.zeros(5)
        prior[kernels.NOISE_A0] = NOISE_PRIOR_SHAPE
        prior[kernels.NOISE_B0] = (NOISE_PRIOR_SHAPE - 1.0) * NOISE_PRIOR_STD**2
        prior[kernels.NOISE_EXPLORATION] = self.exploration
        prior[kernels.NOISE_FIXED] = 0.0 if self.noise_scale is None else self.noise_scale
        prior[kernels.NOISE_CENTER] = self._offset_mean
        self._noise_prior = prior
        self._noise = np.zeros((0, 2))  # per arm: sum (r - r0)^2, n (state)

    def posterior(self, arm: int, x: FloatArray | None = None) -> tuple[float, float]:
        """Mean and std of the arm's score at ``x``, solved from the state of
        record (A, b and the noise sums), not from the caches: a restart
        rebuilds the caches in another order of rounding, and a summary must
        not move by 1e-16 because the process restarted (the same state gives
        the same bits)."""
        arm, x = self._summary_point(arm, x)
        sol = np.linalg.solve(self._prec[arm], np.stack([self._center[arm], x], axis=1))
        mean = self._offset_mean + float(x @ sol[:, 0])
        scale = self._scale_of(arm, sol[:, 0])
        return mean, float(scale * math.sqrt(max(float(x @ sol[:, 1]), 0.0)))

    def _scale_of(self, arm: int, theta: FloatArray) -> float:
        """The arm's score scale from its state and ``theta`` = A^-1 b (the
        formula of ``kernels.lin_noise_scale``)."""
        if self.noise_scale is not None:
            return self.exploration * self.noise_scale
        sse = max(float(self._noise[arm, 0] - self._center[arm] @ theta), 0.0)
        b_n = (NOISE_PRIOR_SHAPE - 1.0) * NOISE_PRIOR_STD**2 + 0.5 * sse
        a_n = NOISE_PRIOR_SHAPE + 0.5 * float(self._noise[arm, 1])
        return self.exploration * math.sqrt(b_n / (a_n - 1.0))

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "prior_precision": self.prior_precision,
            "noise_scale": self.noise_scale,
            "exploration": self.exploration,
        }

    def _apply(
        self, arms: IntArray, xs: FloatArray | None, rewards: FloatArray, weights: FloatArray
    ) -> None:
        done = kernels.lin_update_batch(
            self._prec,
            self._center,
            self._cov,
            self._theta,
            self._stale,
            self._pulls,
            self._rsum,
            self._since,
            self._noise,
            self._scales,
            arms,
            xs,
            rewards,
            self.prior_precision,
            self.decay,
            self.refresh_every,
            self._noise_prior,
            weights,
        )
        self._check_applied(arms, done)

    def _evidence_sums(
        self, arms: IntArray, xs: FloatArray | None, rewards: FloatArray, weights: FloatArray
    ) -> dict[str, np.ndarray]:
        assert xs is not None
        n, d = self._n_arms, self.dim
        a_mat, b, noise = np.zeros((n, d, d)), np.zeros((n, d)), np.zeros((n, 2))
        rc = rewards - self._offset_mean  # rewards centred as the kernel centres them
        order = np.argsort(arms, kind="stable")
        bounds = np.flatnonzero(np.diff(arms[order])) + 1
        for idx in np.split(order, bounds) if order.size else []:
            a, x, w, r = int(arms[idx[0]]), xs[idx], weights[idx], rc[idx]
            wx = x * w[:, None]
            m = wx.T @ x
            a_mat[a] = 0.5 * (m + m.T)  # symmetric whatever the summation order did
            b[a] = wx.T @ r
            noise[a] = (float(w @ (r * r)), float(w.sum()))
        return {"A": a_mat, "b": b, "noise": noise}

    def _decay_arms(self, arms: IntArray, factors: FloatArray) -> None:
        done = kernels.lin_decay_arms(
            self._prec,
            self._center,
            self._cov,
            self._theta,
            self._stale,
            self._since,
            self._noise,
            self._scales,
            arms,
            factors,
            self.prior_precision,
            self._noise_prior,
        )
        self._check_applied(arms, done)

    def noise_arrays(self) -> tuple[FloatArray, FloatArray]:
        """The noise sums (per arm: sum of squared centred rewards, count) and
        the ``noise_prior`` array ``kernels.lin_update_one`` takes, for code
        that runs the update kernels in a loop of its own (see ``arrays``)."""
        return self._noise, self._noise_prior

    def _grow_arrays(self, capacity: int) -> None:
        super()._grow_arrays(capacity)
        self._noise = _resized(self._noise, capacity)

    def _init_arm_scale(self, idx: int) -> None:
        self._noise[idx] = 0.0
        self._refresh_scale(idx)

    def _refresh_scale(self, arm: int) -> None:
        kernels.lin_noise_scale(
            self._center, self._theta, self._noise, self._scales, arm, self._noise_prior
        )

    def _state_arrays(self) -> dict[str, np.ndarray]:
        n = self._n_arms
        return {
            "A": self._prec[:n].copy(),
            "b": self._center[:n].copy(),
            "noise": self._noise[:n].copy(),
        }

    def _load_arrays(self, state: dict[str, np.ndarray], n: int) -> None:
        self._prec[:n] = state["A"]
        self._center[:n] = state["b"]
        # a state without noise sums (written before they existed): the
        # prior's guess until rewards come
        self._noise[:n] = state["noise"] if "noise" in state else 0.0
