"""The reward model of DM and DR: per-arm ridge regression, cross-fitted."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bandit_engine import InvalidArgument
from bandit_engine.policies import FloatArray, IntArray
from simulators.estimators.rowseed import folds_of, row_keys
from simulators.estimators.targets import TargetProbs
from simulators.logs import BanditLog

__all__ = [
    "RIDGE_GRID",
    "ModelRefit",
    "RewardModelFit",
    "RidgeRewardModel",
    "reward_model_terms",
]


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

    def fit(
        self,
        x: FloatArray,
        arms: IntArray,
        r: FloatArray,
        n_arms: int,
        sample_weight: FloatArray | None = None,
    ) -> RidgeRewardModel:
        """Fit on rows (x, arms, r); ``sample_weight`` (e.g. bootstrap counts)
        weighs each row's squared error (None: all ones)."""
        if sample_weight is not None:
            return self._fit_weighted(x, arms, r, n_arms, sample_weight)
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

    def _fit_weighted(
        self, x: FloatArray, arms: IntArray, r: FloatArray, n_arms: int, c: FloatArray
    ) -> RidgeRewardModel:
        d = x.shape[1]
        total = float(c.sum())
        self.mean_ = float(c @ r) / total if total > 0 else 0.0
        theta = np.zeros((n_arms, d))
        live = np.flatnonzero(c > 0)
        a_live = arms[live]
        order = live[np.argsort(a_live, kind="stable")]
        bounds = np.searchsorted(arms[order], np.arange(n_arms + 1))
        eye = self.lam * np.eye(d)
        for a in range(n_arms):
            rows = order[bounds[a] : bounds[a + 1]]
            if rows.shape[0] == 0:
                continue
            xa, ca = x[rows], c[rows]
            theta[a] = np.linalg.solve(
                eye + xa.T @ (ca[:, None] * xa), xa.T @ (ca * (r[rows] - self.mean_))
            )
        self.theta_ = theta
        return self

    def target_q(
        self, x: FloatArray, ptr: IntArray, idx: IntArray, p: FloatArray, block: int = 1 << 22
    ) -> FloatArray:
        """sum_a pi(a|x_i) q(x_i, a) for each row, pi as CSR (ptr, idx, p) over
        the rows of ``x``; in row blocks of about ``block`` scores."""
        n = x.shape[0]
        out = np.zeros(n)
        n_arms = max(1, self.theta_.shape[0])
        step = max(1, block // n_arms)
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            scores = x[lo:hi] @ self.theta_.T  # (rows, n_arms)
            a, b = int(ptr[lo]), int(ptr[hi])
            rows = np.repeat(np.arange(hi - lo), np.diff(ptr[lo : hi + 1]))
            vals = p[a:b] * (self.mean_ + scores[rows, idx[a:b]])
            out[lo:hi] = np.bincount(rows, weights=vals, minlength=hi - lo)
        return out

    def predict(self, x: FloatArray, arms: IntArray) -> FloatArray:
        """q(x_j, arms_j) for paired rows."""
        q: FloatArray = self.mean_ + np.einsum("ij,ij->i", x, self.theta_[arms])
        return q


#: Ridge penalties tried when ``lam=None``; the cross-fitted MSE picks one.
RIDGE_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)


@dataclass(frozen=True, eq=False)
class ModelRefit:
    """What it takes to refit the cross-fitted reward model on a bootstrap
    resample: the log's first-slot rows, the target as CSR, the selected ridge
    penalty and each row's fold (fixed per original row, so the copies of a
    row drawn into a resample stay in one fold and are never predicted by a
    model that saw them)."""

    x: FloatArray
    arms: IntArray
    r: FloatArray
    n_arms: int
    ptr: IntArray
    idx: IntArray
    p: FloatArray
    lam: float
    fold: IntArray
    folds: int

    @property
    def n(self) -> int:
        return int(self.r.shape[0])

    def crossfit(self, weight: FloatArray | None = None) -> tuple[FloatArray, FloatArray]:
        """(q_logged, q_target): each row predicted by the model fitted on the
        other folds (``folds=1``: on every row), rows weighted by ``weight``."""
        n = self.n
        q_logged = np.empty(n)
        q_target = np.empty(n)
        for f in range(self.folds):
            test = self.fold == f
            train = ~test if self.folds > 1 else test
            w = None if weight is None else weight[train]
            model = RidgeRewardModel(self.lam).fit(
                self.x[train], self.arms[train], self.r[train], self.n_arms, w
            )
            rows = np.flatnonzero(test)
            q_logged[rows] = model.predict(self.x[rows], self.arms[rows])
            q_target[rows] = _target_q_rows(model, self.x, self.ptr, self.idx, self.p, rows)
        return q_logged, q_target

    def bootstrap(
        self, weights: FloatArray, *, n_boot: int, seed: int
    ) -> tuple[FloatArray, FloatArray]:
        """(dm, dr), each (n_boot,): the estimators on ``n_boot`` row resamples
        (seeded), the reward model refitted on each (``refit.refit_bootstrap``).
        ``weights`` are the IPS weights pi(a_i|x_i) / mu(a_i|x_i) of DR's
        correction."""
        from simulators.estimators.refit import refit_bootstrap

        return refit_bootstrap(self, weights, n_boot=n_boot, seed=seed)


def _target_q_rows(
    model: RidgeRewardModel,
    x: FloatArray,
    ptr: IntArray,
    idx: IntArray,
    p: FloatArray,
    rows: IntArray,
) -> FloatArray:
    """``model.target_q`` on a subset of rows (the CSR sliced to them)."""
    if rows.shape[0] == x.shape[0]:
        return model.target_q(x, ptr, idx, p)
    sizes = np.diff(ptr)[rows]
    sub_ptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    np.cumsum(sizes, out=sub_ptr[1:])
    take = np.repeat(ptr[rows], sizes) + (
        np.arange(int(sub_ptr[-1])) - np.repeat(sub_ptr[:-1], sizes)
    )
    return model.target_q(x[rows], sub_ptr, idx[take], p[take])


@dataclass(frozen=True)
class RewardModelFit:
    """Cross-fitted reward model terms: q(x_i, a_i) and sum_a pi(a|x_i) q(x_i, a).

    ``refit`` refits the same model on bootstrap resamples (``ModelRefit``),
    which is how DM's and DR's intervals include the model's own error.
    """

    q_logged: FloatArray
    q_target: FloatArray
    lam: float
    mse: float  # cross-fitted squared error on the logged rewards
    mse_constant: float  # the same for predicting the mean reward
    refit: ModelRefit | None = None

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
    A row's fold is a hash of ``seed`` and its event id (``rowseed``), so a
    streaming pass assigns the same folds.

    ``lam=None`` tries every penalty in ``RIDGE_GRID`` and keeps the one with
    the smallest cross-fitted squared error (bootstrap refits keep that one:
    the choice itself is not redone per resample).
    """
    n = log.n
    if folds < 1:
        raise InvalidArgument(f"folds={folds!r} must be >= 1")
    grid = RIDGE_GRID if lam is None else (float(lam),)
    fold = folds_of(row_keys(log.event_id, seed), folds)
    r = log.logged_reward
    rbar = float(r.mean()) if n else 0.0
    mse_const = float(np.mean((r - rbar) ** 2)) if n else math.nan
    best: RewardModelFit | None = None
    for lam_i in grid:
        refit = ModelRefit(
            log.x, log.action, r, log.n_arms, target.ptr, target.idx, target.p, lam_i,
            fold.astype(np.int64), folds,
        )  # fmt: skip
        q_logged, q_target = refit.crossfit()
        mse = float(np.mean((r - q_logged) ** 2)) if n else math.nan
        if best is None or mse < best.mse:
            best = RewardModelFit(q_logged, q_target, lam_i, mse, mse_const, refit)
    assert best is not None
    return best
