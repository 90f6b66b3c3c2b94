"""Per-row terms of the estimators (``OPETerms``) and the point estimates.

Every estimator is a ratio sum(num_i) / sum(den_i) of per-row terms
(``OPETerms.matrix``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bandit_engine import InvalidArgument
from bandit_engine.policies import FloatArray
from simulators.estimators.reward_model import RewardModelFit, reward_model_terms
from simulators.estimators.targets import TargetProbs
from simulators.logs import BanditLog

__all__ = ["ESTIMATORS", "OPETerms", "dm", "dr", "ips", "ratio", "snips"]

ESTIMATORS = ("logged", "replay", "ips", "snips", "dm", "dr")


@dataclass(frozen=True)
class OPETerms:
    """Per-row inputs of the estimators (first shown slot of each row)."""

    reward: FloatArray
    logging_p: FloatArray
    target_p: FloatArray
    q_logged: FloatArray | None = None
    q_target: FloatArray | None = None
    match: FloatArray | None = None  # replay: 1.0 where pi's draw equals a_i
    model: RewardModelFit | None = None

    @classmethod
    def build(
        cls,
        log: BanditLog,
        target: TargetProbs,
        *,
        reward_model: bool = True,
        folds: int = 2,
        lam: float | None = None,
        seed: int = 0,
    ) -> OPETerms:
        if target.n != log.n:
            raise InvalidArgument(f"target has {target.n} rows; the log has {log.n}")
        r = log.logged_reward
        if np.isnan(r).any():
            raise InvalidArgument(
                f"{int(np.isnan(r).sum())} rows have no reward yet; use log.complete()"
            )
        p = log.logged_propensity
        if not (np.isfinite(p).all() and (p > 0).all()):
            raise InvalidArgument("every logged propensity must be finite and > 0")
        q_logged = q_target = None
        fit = None
        if reward_model:
            fit = reward_model_terms(log, target, folds=folds, lam=lam, seed=seed)
            q_logged, q_target = fit.q_logged, fit.q_target
        match = (target.choice == log.action).astype(np.float64)
        return cls(r, p, target.logged, q_logged, q_target, match, fit)

    @property
    def n(self) -> int:
        return int(self.reward.shape[0])

    @property
    def weights(self) -> FloatArray:
        return self.target_p / self.logging_p

    def diagnostics(self) -> dict[str, float]:
        """Overlap of target and logging policy: with good overlap the mean
        weight is near 1 and the effective sample size (sum w)^2 / sum w^2 is
        a sizeable share of n; a mean weight well below 1 says the target
        puts mass on arms the logger (almost) never showed."""
        w = self.weights
        sq = float(np.sum(w * w))
        return {
            "mean_weight": float(w.mean()) if self.n else math.nan,
            "max_weight": float(w.max()) if self.n else math.nan,
            "ess": float(w.sum()) ** 2 / sq if sq > 0 else 0.0,
        }

    def available(self) -> tuple[str, ...]:
        names = ["logged", "ips", "snips"]
        if self.match is not None:
            names.insert(1, "replay")
        if self.q_logged is not None and self.q_target is not None:
            names += ["dm", "dr"]
        return tuple(names)

    def matrix(self, names: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """(num, den), each (len(names), n): estimator e = sum num[e] / sum den[e]."""
        n = self.n
        one = np.ones(n)
        w = self.weights
        num = np.empty((len(names), n))
        den = np.empty((len(names), n))
        for e, name in enumerate(names):
            if name == "logged":
                num[e], den[e] = self.reward, one
            elif name == "replay":
                if self.match is None:
                    raise InvalidArgument("replay needs the target's draws (match)")
                num[e], den[e] = self.match * self.reward, self.match
            elif name == "ips":
                num[e], den[e] = w * self.reward, one
            elif name == "snips":
                num[e], den[e] = w * self.reward, w
            elif name in ("dm", "dr"):
                if self.q_logged is None or self.q_target is None:
                    raise InvalidArgument(f"{name} needs a reward model")
                if name == "dm":
                    num[e] = self.q_target
                else:
                    num[e] = self.q_target + w * (self.reward - self.q_logged)
                den[e] = one
            else:
                raise InvalidArgument(f"unknown estimator {name!r}; expected one of {ESTIMATORS}")
        return num, den


def ratio(num: FloatArray, den: FloatArray) -> float:
    """``sum(num) / sum(den)``; NaN when the denominator sums to zero."""
    d = float(den.sum())
    return float(num.sum()) / d if d != 0.0 else math.nan


def ips(t: OPETerms) -> float:
    return ratio(*(m[0] for m in t.matrix(["ips"])))


def snips(t: OPETerms) -> float:
    return ratio(*(m[0] for m in t.matrix(["snips"])))


def dm(t: OPETerms) -> float:
    return ratio(*(m[0] for m in t.matrix(["dm"])))


def dr(t: OPETerms) -> float:
    return ratio(*(m[0] for m in t.matrix(["dr"])))
