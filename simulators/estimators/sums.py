"""Mergeable sums: every streaming estimator is a few sums over rows.

Each dataclass here is what one chunk of the log contributes; ``merge``
adds two (associative and commutative up to floating-point rounding), so
chunks can be summed in any grouping: one after the other on one machine,
or per Spark partition and then across executors.

- ``OPESums``: per estimator, sum(num_i) and sum(den_i) (the estimate is
  their ratio, ``simulators.estimators.terms``), the same sums weighted by
  each row's Poisson(1) bootstrap weight for every resample, the rows with a
  non-zero denominator (replay's n), and the importance weights' sum, sum
  of squares and maximum (the overlap diagnostics).
- ``RidgeSums``: per cross-fitting fold and arm, X'X, X'r, X'1 and the
  count, plus sum r and sum r^2 per fold: enough to solve every fold's
  ridge model for any penalty, and the constant model's error.
- ``ErrorSums``: the reward model's squared error per candidate penalty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bandit_engine import InvalidArgument
from bandit_engine.policies import FloatArray

__all__ = ["ErrorSums", "OPESums", "RidgeSums"]


@dataclass
class OPESums:
    names: tuple[str, ...]
    n_boot: int
    n: int = 0
    num: FloatArray = field(default_factory=lambda: np.zeros(0))
    den: FloatArray = field(default_factory=lambda: np.zeros(0))
    nonzero: FloatArray = field(default_factory=lambda: np.zeros(0))
    boot_num: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    boot_den: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    w_sum: float = 0.0
    w_sq: float = 0.0
    w_max: float = -np.inf

    def __post_init__(self) -> None:
        e = len(self.names)
        if self.num.shape != (e,):
            self.num = np.zeros(e)
            self.den = np.zeros(e)
            self.nonzero = np.zeros(e)
            self.boot_num = np.zeros((e, self.n_boot))
            self.boot_den = np.zeros((e, self.n_boot))

    def add_rows(self, num: FloatArray, den: FloatArray, weights: FloatArray) -> None:
        """Add per-row terms (num, den: (E, rows)) without their bootstrap."""
        self.n += int(num.shape[1])
        self.num += num.sum(axis=1)
        self.den += den.sum(axis=1)
        self.nonzero += (den != 0).sum(axis=1)
        if weights.shape[0]:
            self.w_sum += float(weights.sum())
            self.w_sq += float(weights @ weights)
            self.w_max = max(self.w_max, float(weights.max()))

    def merge(self, other: OPESums) -> OPESums:
        if other.names != self.names or other.n_boot != self.n_boot:
            raise InvalidArgument(
                f"cannot merge sums of {other.names}/{other.n_boot} into {self.names}/{self.n_boot}"
            )
        return OPESums(
            self.names,
            self.n_boot,
            self.n + other.n,
            self.num + other.num,
            self.den + other.den,
            self.nonzero + other.nonzero,
            self.boot_num + other.boot_num,
            self.boot_den + other.boot_den,
            self.w_sum + other.w_sum,
            self.w_sq + other.w_sq,
            max(self.w_max, other.w_max),
        )

    def values(self) -> FloatArray:
        """The point estimates, sum(num) / sum(den) (NaN where den sums to 0)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.den != 0, self.num / np.where(self.den != 0, self.den, 1), np.nan)

    def intervals(self, alpha: float) -> tuple[FloatArray, FloatArray]:
        """Percentile intervals over the resamples' ratios."""
        lo = np.full(len(self.names), np.nan)
        hi = np.full(len(self.names), np.nan)
        if self.n_boot == 0:
            return lo, hi
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios = np.where(self.boot_den != 0, self.boot_num / self.boot_den, np.nan)
        for e in range(len(self.names)):
            ok = ratios[e][~np.isnan(ratios[e])]
            if ok.shape[0]:
                lo[e], hi[e] = np.quantile(ok, [alpha / 2, 1 - alpha / 2])
        return lo, hi

    def diagnostics(self) -> dict[str, float]:
        """As ``OPETerms.diagnostics``: mean and max weight, effective n."""
        return {
            "mean_weight": self.w_sum / self.n if self.n else np.nan,
            "max_weight": self.w_max if self.n else np.nan,
            "ess": self.w_sum**2 / self.w_sq if self.w_sq > 0 else 0.0,
        }


@dataclass
class RidgeSums:
    """Per fold f and arm a: gram[f, a] = X'X, xr[f, a] = X'r, xs[f, a] = X'1,
    count[f, a]; r_sum[f], r_sq[f] over the fold's rows."""

    gram: FloatArray
    xr: FloatArray
    xs: FloatArray
    count: FloatArray
    r_sum: FloatArray
    r_sq: FloatArray

    @classmethod
    def zeros(cls, folds: int, n_arms: int, dim: int) -> RidgeSums:
        return cls(
            np.zeros((folds, n_arms, dim, dim)),
            np.zeros((folds, n_arms, dim)),
            np.zeros((folds, n_arms, dim)),
            np.zeros((folds, n_arms)),
            np.zeros(folds),
            np.zeros(folds),
        )

    def add(self, fold: np.ndarray, arms: np.ndarray, x: FloatArray, r: FloatArray) -> None:
        folds, n_arms, _d = self.xr.shape
        cell = fold * n_arms + arms
        cells = folds * n_arms
        self.count += np.bincount(cell, minlength=cells).reshape(folds, n_arms)
        self.r_sum += np.bincount(fold, weights=r, minlength=folds)
        self.r_sq += np.bincount(fold, weights=r * r, minlength=folds)
        order = np.argsort(cell, kind="stable")
        bounds = np.searchsorted(cell[order], np.arange(cells + 1))
        for c in np.flatnonzero(np.diff(bounds)):
            rows = order[bounds[c] : bounds[c + 1]]
            f, a = divmod(int(c), n_arms)
            xa = x[rows]
            self.gram[f, a] += xa.T @ xa
            self.xr[f, a] += xa.T @ r[rows]
            self.xs[f, a] += xa.sum(axis=0)

    def merge(self, other: RidgeSums) -> RidgeSums:
        return RidgeSums(
            self.gram + other.gram,
            self.xr + other.xr,
            self.xs + other.xs,
            self.count + other.count,
            self.r_sum + other.r_sum,
            self.r_sq + other.r_sq,
        )

    @property
    def n(self) -> int:
        return int(self.count.sum())

    def models(self, lam: float) -> list[tuple[float, FloatArray]]:
        """(mean, theta (n_arms, d)) of each fold's model, fitted on the other
        folds' rows (one fold: on every row), as ``RidgeRewardModel.fit``."""
        folds, n_arms, d = self.xr.shape
        out = []
        eye = lam * np.eye(d)
        for f in range(folds):
            train = [g for g in range(folds) if g != f] if folds > 1 else [f]
            cnt = self.count[train].sum(axis=0)
            total = float(cnt.sum())
            mean = float(self.r_sum[train].sum()) / total if total > 0 else 0.0
            gram = self.gram[train].sum(axis=0)
            rhs = self.xr[train].sum(axis=0) - mean * self.xs[train].sum(axis=0)
            theta = np.zeros((n_arms, d))
            for a in np.flatnonzero(cnt > 0):
                theta[a] = np.linalg.solve(eye + gram[a], rhs[a])
            out.append((mean, theta))
        return out

    def mse_constant(self) -> float:
        n = float(self.r_sum.shape[0] and self.count.sum())
        if n == 0:
            return float("nan")
        mean = float(self.r_sum.sum()) / n
        return float(self.r_sq.sum()) / n - mean * mean


@dataclass
class ErrorSums:
    """Squared error of the cross-fitted model per penalty, over n rows."""

    sq: FloatArray
    n: int = 0

    def merge(self, other: ErrorSums) -> ErrorSums:
        return ErrorSums(self.sq + other.sq, self.n + other.n)

    def mse(self) -> FloatArray:
        return self.sq / self.n if self.n else np.full(self.sq.shape, np.nan)


def merge_all(parts: Sequence[OPESums]) -> OPESums:
    out = parts[0]
    for p in parts[1:]:
        out = out.merge(p)
    return out
