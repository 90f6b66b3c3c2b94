"""The reward model of DM and DR: per-arm ridge regression, cross-fitted."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bandit_engine import InvalidArgument
from bandit_engine.policies import FloatArray, IntArray
from simulators.estimators.targets import TargetProbs
from simulators.logs import BanditLog

__all__ = ["RIDGE_GRID", "RewardModelFit", "RidgeRewardModel", "reward_model_terms"]


class RidgeRewardModel:
    """q(x, a) = rbar + x' theta_a: ridge per arm on the centred reward r - rbar.

    Predictions are not clipped to [0, 1]: with rare rewards (CTR ~0.5%) most
    noisy predictions straddle 0, and clipping them would bias DM upward.
    """

    def __init__(self, lam: float = 1.0) -> None:
        if not lam > 0:
            raise InvalidArgument(f"lam={lam!r} must be positive")
        self.lam = float(lam)
        self.mean_ = 0.0
        self.theta_: FloatArray = np.zeros((0, 0))

    def fit(self, x: FloatArray, arms: IntArray, r: FloatArray, n_arms: int) -> RidgeRewardModel:
        d = x.shape[1]
        self.mean_ = float(r.mean()) if r.shape[0] else 0.0
        theta = np.zeros((n_arms, d))
        order = np.argsort(arms, kind="stable")
        bounds = np.searchsorted(arms[order], np.arange(n_arms + 1))
        eye = self.lam * np.eye(d)
        for a in range(n_arms):
            rows = order[bounds[a] : bounds[a + 1]]
            if rows.shape[0] == 0:
                continue
            xa = x[rows]
            theta[a] = np.linalg.solve(eye + xa.T @ xa, xa.T @ (r[rows] - self.mean_))
        self.theta_ = theta
        return self

    def predict(self, x: FloatArray, arms: IntArray) -> FloatArray:
        """q(x_j, arms_j) for paired rows."""
        q: FloatArray = self.mean_ + np.einsum("ij,ij->i", x, self.theta_[arms])
        return q


#: Ridge penalties tried when ``lam=None``; the cross-fitted MSE picks one.
RIDGE_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)


@dataclass(frozen=True)
class RewardModelFit:
    """Cross-fitted reward model terms: q(x_i, a_i) and sum_a pi(a|x_i) q(x_i, a)."""

    q_logged: FloatArray
    q_target: FloatArray
    lam: float
    mse: float  # cross-fitted squared error on the logged rewards
    mse_constant: float  # the same for predicting the mean reward

    def summary(self) -> dict[str, float]:
        return {"ridge": self.lam, "mse": self.mse, "mse_constant": self.mse_constant}


def reward_model_terms(
    log: BanditLog,
    target: TargetProbs,
    *,
    folds: int = 2,
    lam: float | None = None,
    seed: int = 0,
) -> RewardModelFit:
    """Cross-fit the ridge model (each row predicted by a model that did not
    see it; ``folds=1`` fits and predicts on everything) and return its terms.

    ``lam=None`` tries every penalty in ``RIDGE_GRID`` and keeps the one with
    the smallest cross-fitted squared error.
    """
    n = log.n
    if folds < 1:
        raise InvalidArgument(f"folds={folds!r} must be >= 1")
    grid = RIDGE_GRID if lam is None else (float(lam),)
    fold = np.random.default_rng(seed).permutation(n) % folds if folds > 1 else np.zeros(n, int)
    a, r, x = log.action, log.logged_reward, log.x
    rows_flat = np.repeat(np.arange(n), np.diff(target.ptr))
    live = np.flatnonzero(target.p > 0.0)
    best: RewardModelFit | None = None
    rbar = float(r.mean()) if n else 0.0
    mse_const = float(np.mean((r - rbar) ** 2)) if n else math.nan
    for lam_i in grid:
        q_logged = np.empty(n)
        q_target = np.zeros(n)
        for f in range(folds):
            test = fold == f
            train = ~test if folds > 1 else test
            model = RidgeRewardModel(lam_i).fit(x[train], a[train], r[train], log.n_arms)
            q_logged[test] = model.predict(x[test], a[test])
            sel = live[test[rows_flat[live]]]
            for lo in range(0, sel.shape[0], 65536):  # bounded memory for big candidate sets
                part = sel[lo : lo + 65536]
                rows = rows_flat[part]
                q = model.predict(x[rows], target.idx[part])
                np.add.at(q_target, rows, target.p[part] * q)
        mse = float(np.mean((r - q_logged) ** 2)) if n else math.nan
        if best is None or mse < best.mse:
            best = RewardModelFit(q_logged, q_target, lam_i, mse, mse_const)
    assert best is not None
    return best
