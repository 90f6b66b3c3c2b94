"""Logistic Thompson sampling with a Laplace approximation (Chapelle & Li 2011).

Each arm keeps a Gaussian posterior N(m, P^-1) over logistic-regression
weights. Chapelle & Li refit a diagonal Laplace approximation per batch; here
each event is one exact Laplace step with full covariance, which has a closed
form up to a scalar root: the MAP of
``0.5 (w-m)'P(w-m) + logloss(y, w'x)`` lies on ``m + c P^-1 x`` with
``c = y - sigmoid(m'x + c x'P^-1 x)`` (one-dimensional, monotone), and the
new precision is ``P + p(1-p) x x'`` at the MAP. The state after a sequence of
events is the fold of that step, so any batch split gives the same posterior;
unlike the Gaussian models it depends on the order of events.
Sampled scores are logits, N(x'm, c^2 x'P^-1 x), with ``exploration`` c
(default 0.25) scaling the Laplace spread, as Chapelle & Li (2011) do: their
experiments found a spread below the posterior's own to earn more, and so do
the engine's (docs/performance.md, "Learning"): on the logit scale a prior
of precision 1 is wide, and draws at a quarter of it explore enough.

Because each step reads the covariance P^-1, the covariance (and the count
of steps since its last exact rebuild) is part of this model's state: a
restored model then continues bit for bit as the original would have.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bandit_engine import kernels
from bandit_engine.policies.base import DEFAULT_HALF_LIFE_S, FloatArray, IntArray, check_positive
from bandit_engine.policies.gaussian import PerArmGaussian

__all__ = ["LOGISTIC_EXPLORATION", "LogisticTS"]


#: ``LogisticTS``'s default exploration (the scale of the Laplace spread).
LOGISTIC_EXPLORATION = 0.25


class LogisticTS(PerArmGaussian):
    """Logistic TS: ``prior_precision`` lambda of the weights' Gaussian prior
    (default 1.0); ``exploration`` c, the sampled logit's spread relative to
    the Laplace posterior's (default 0.25; 1 draws from the posterior itself);
    ``decay`` and ``refresh_every`` as for every policy."""

    kind = "logistic_ts"
    _loaded_cov: tuple[np.ndarray, np.ndarray] | None = None

    def __init__(
        self,
        dim: int,
        *,
        prior_precision: float = 1.0,
        exploration: float = LOGISTIC_EXPLORATION,
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
        self.exploration = check_positive("exploration", exploration)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "prior_precision": self.prior_precision,
            "exploration": self.exploration,
        }

    def _init_arm_scale(self, idx: int) -> None:
        self._scales[idx] = self.exploration

    def _refresh_scale(self, arm: int) -> None:
        self._scales[arm] = self.exploration

    def _apply(
        self, arms: IntArray, xs: FloatArray | None, rewards: FloatArray, weights: FloatArray
    ) -> None:
        done = kernels.logistic_update_batch(
            self._center,
            self._prec,
            self._cov,
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
            weights,
        )
        self._check_applied(arms, done)

    def _decay_arms(self, arms: IntArray, factors: FloatArray) -> None:
        done = kernels.logistic_decay_arms(
            self._center,
            self._prec,
            self._cov,
            self._stale,
            self._since,
            arms,
            factors,
            self.prior_precision,
        )
        self._check_applied(arms, done)

    def _weights(self) -> np.ndarray:
        return self._center  # the MAP weights m are the score's mean

    def _state_arrays(self) -> dict[str, np.ndarray]:
        n = self._n_arms
        return {
            "P": self._prec[:n].copy(),
            "m": self._center[:n].copy(),
            "cov": self._cov[:n].copy(),
            "since_refresh": self._since[:n].copy(),
        }

    def _load_arrays(self, state: dict[str, np.ndarray], n: int) -> None:
        self._prec[:n] = state["P"]
        self._center[:n] = state["m"]
        self._loaded_cov = (np.array(state["cov"]), np.array(state["since_refresh"]))

    def refresh(self) -> None:
        loaded = self._loaded_cov
        if loaded is None:
            super().refresh()
            return
        n = self._n_arms
        self._cov[:n], self._since[:n] = loaded
        self._scales[:n] = self.exploration
        self._loaded_cov = None
        for a in range(n):
            kernels.pack_arm(self._cov, self._packed, a)
            self._stale[a] = 0
