"""Off-policy estimators with bootstrap confidence intervals.

Setting: a log of rows (x_i, a_i, r_i, p_i), where a_i is the first shown arm,
r_i its reward in [0, 1] and p_i = mu(a_i | x_i) the logging policy's
propensity; a target policy pi gives pi(a | x_i) over row i's candidates.
Estimators of V(pi) = E_x sum_a pi(a|x) E[r | x, a], with w_i = pi(a_i|x_i)/p_i:

========  ===========================================  =====================
logged    mean r_i                                     the logging policy
replay    sum c_i r_i / sum c_i, c_i = 1[pi's draw     Li et al. 2011; needs
          == a_i]                                      uniform logging
ips       mean w_i r_i                                 unbiased; high variance
snips     sum w_i r_i / sum w_i                        self-normalised
dm        mean sum_a pi(a|x_i) q(x_i, a)               reward model q
dr        dm + mean w_i (r_i - q(x_i, a_i))            doubly robust
========  ===========================================  =====================

q is a per-arm ridge regression on the context vector (``RidgeRewardModel``),
cross-fitted: each row is predicted by a model that did not see it.

Confidence intervals: percentile bootstrap over rows (``n_boot`` resamples,
seeded), every estimator computed on the same resample; the reward model is
fitted once and kept fixed across resamples. The resample sums are a Numba
kernel. Every estimator is a ratio sum(num_i) / sum(den_i) of per-row terms
(``OPETerms.matrix``), which is all the kernel needs.

Engine policies as targets: ``policy_target`` asks the policy's own
propensity machinery (``Policy.propensities``, Monte Carlo with ``draws``
posterior draws) for pi(. | x_i), row by row. Two modes:

- ``learn=False`` (fixed): the policy as given (e.g. warm-started on a
  training split) is frozen; V(pi) is the value of that one policy.
- ``learn=True`` (progressive): after row i's probabilities are taken the
  policy learns from row i's logged events, so row i is scored by the policy
  trained on rows < i. The estimate is the average value of that sequence of
  policies: how the candidate would have done had it been retrained on the
  traffic as it came (learning from the logged choices, not its own).

For how a policy learns from its *own* choices, use replay
(``simulators.replay``), which updates only on matched events.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from bandit_engine import InvalidArgument
from bandit_engine.policies import Policy
from simulators.logs import BanditLog

__all__ = [
    "ESTIMATORS",
    "Estimate",
    "OPETerms",
    "RewardModelFit",
    "RidgeRewardModel",
    "TargetProbs",
    "bootstrap",
    "dm",
    "dr",
    "estimate",
    "evaluate",
    "ips",
    "matrix_target",
    "policy_target",
    "reward_model_terms",
    "snips",
    "uniform_target",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

ESTIMATORS = ("logged", "replay", "ips", "snips", "dm", "dr")
Progress = Callable[[int, int], None]


# ------------------------------------------------------------ target policy
@dataclass(frozen=True)
class TargetProbs:
    """A target policy's action probabilities on each row of a log.

    Flat CSR aligned with the log's candidate sets: ``p[ptr[i]:ptr[i+1]]`` are
    the probabilities of arms ``idx[ptr[i]:ptr[i+1]]`` on row ``i``.
    ``logged[i]`` = pi(a_i | x_i); ``choice[i]`` is one draw from pi(. | x_i)
    (what replay compares with the logged arm).
    """

    name: str
    ptr: IntArray
    idx: IntArray
    p: FloatArray
    logged: FloatArray
    choice: IntArray

    @property
    def n(self) -> int:
        return int(self.logged.shape[0])


def _logged_and_choice(
    log: BanditLog, ptr: IntArray, idx: IntArray, p: FloatArray, rng: np.random.Generator
) -> tuple[FloatArray, IntArray]:
    logged, choice = _logged_choice_kernel(ptr, idx, p, log.action, rng.random(log.n))
    return np.asarray(logged, dtype=np.float64), np.asarray(choice, dtype=np.int64)


@njit(cache=True, nogil=True)
def _logged_choice_kernel(ptr, idx, p, action, u):  # type: ignore[no-untyped-def]
    n = action.shape[0]
    logged = np.zeros(n)
    choice = np.empty(n, dtype=np.int64)
    for i in range(n):
        lo = ptr[i]
        hi = ptr[i + 1]
        total = 0.0
        for j in range(lo, hi):
            total += p[j]
            if idx[j] == action[i]:
                logged[i] = p[j]
        # inverse CDF on the row's (possibly unnormalised) probabilities
        target = u[i] * total
        acc = 0.0
        choice[i] = idx[hi - 1]
        for j in range(lo, hi):
            acc += p[j]
            if target < acc:
                choice[i] = idx[j]
                break
    return logged, choice


def uniform_target(log: BanditLog, *, seed: int = 0) -> TargetProbs:
    """The uniform policy over each row's candidates."""
    ptr, idx = log.candidate_csr()
    sizes = np.diff(ptr)
    p = np.repeat(1.0 / sizes, sizes)
    logged, choice = _logged_and_choice(log, ptr, idx, p, np.random.default_rng(seed))
    return TargetProbs("uniform", ptr, idx, p, logged, choice)


def matrix_target(
    log: BanditLog, pi: FloatArray, *, name: str = "target", seed: int = 0
) -> TargetProbs:
    """A target given as an (n, n_arms) matrix of probabilities, one row per log row."""
    pi = np.asarray(pi, dtype=np.float64)
    if pi.shape != (log.n, log.n_arms):
        raise InvalidArgument(f"pi has shape {pi.shape}; expected ({log.n}, {log.n_arms})")
    ptr, idx = log.candidate_csr()
    rows = np.repeat(np.arange(log.n), np.diff(ptr))
    p = pi[rows, idx]
    logged, choice = _logged_and_choice(log, ptr, idx, p, np.random.default_rng(seed))
    return TargetProbs(name, ptr, idx, p, logged, choice)


def policy_target(
    policy: Policy,
    log: BanditLog,
    *,
    draws: int = 1000,
    seed: int = 0,
    learn: bool = False,
    name: str | None = None,
    progress: Progress | None = None,
) -> TargetProbs:
    """pi(. | x_i) from the policy's own propensities (Monte Carlo, ``draws`` draws).

    ``learn=True`` is the progressive mode (module docstring): the policy is
    updated in place with each row's rewarded shown arms after scoring it.
    The policy's arm indices must be the log's (``make_policy_for_log``).
    """
    if policy.n_arms != log.n_arms:
        raise InvalidArgument(f"policy has {policy.n_arms} arms; the log has {log.n_arms}")
    if policy.contextual and policy.dim != log.dim:
        raise InvalidArgument(f"policy dim={policy.dim} but the log's contexts have {log.dim}")
    rng = np.random.default_rng(seed)
    ptr, idx = log.candidate_csr()
    p = np.empty(idx.shape[0])
    x = log.x
    has_r = ~np.isnan(log.reward) & (log.shown >= 0)
    step = max(1, log.n // 100)
    for i in range(log.n):
        lo, hi = ptr[i], ptr[i + 1]
        p[lo:hi] = policy.propensities(idx[lo:hi], x[i], draws, rng)
        if learn and has_r[i].any():
            slots = np.flatnonzero(has_r[i])
            policy.update_batch(
                log.shown[i, slots],
                np.repeat(x[i][None, :], slots.shape[0], 0),
                log.reward[i, slots],
            )
        if progress is not None and (i + 1) % step == 0:
            progress(i + 1, log.n)
    logged, choice = _logged_and_choice(log, ptr, idx, p, rng)
    label = name or (policy.kind + (" (progressive)" if learn else ""))
    return TargetProbs(label, ptr, idx, p, logged, choice)


# ------------------------------------------------------------ reward model
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


# -------------------------------------------------------------- estimators
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


def _ratio(num: FloatArray, den: FloatArray) -> float:
    d = float(den.sum())
    return float(num.sum()) / d if d != 0.0 else math.nan


def ips(t: OPETerms) -> float:
    return _ratio(*(m[0] for m in t.matrix(["ips"])))


def snips(t: OPETerms) -> float:
    return _ratio(*(m[0] for m in t.matrix(["snips"])))


def dm(t: OPETerms) -> float:
    return _ratio(*(m[0] for m in t.matrix(["dm"])))


def dr(t: OPETerms) -> float:
    return _ratio(*(m[0] for m in t.matrix(["dr"])))


@njit(cache=True, nogil=True)
def _boot_kernel(num_t, den_t, idx, out, col0):  # type: ignore[no-untyped-def]
    """out[:, col0 + b] = ratio estimates on resample idx[b] (num_t, den_t: (n, E))."""
    reps, n = idx.shape
    e_count = num_t.shape[1]
    s = np.empty(e_count)
    t = np.empty(e_count)
    for b in range(reps):
        for e in range(e_count):
            s[e] = 0.0
            t[e] = 0.0
        for j in range(n):
            i = idx[b, j]
            for e in range(e_count):
                s[e] += num_t[i, e]
                t[e] += den_t[i, e]
        for e in range(e_count):
            out[e, col0 + b] = s[e] / t[e] if t[e] != 0.0 else np.nan


def bootstrap(num: FloatArray, den: FloatArray, *, n_boot: int = 1000, seed: int = 0) -> FloatArray:
    """(E, n_boot) ratio estimates on ``n_boot`` paired row resamples."""
    e_count, n = num.shape
    out = np.empty((e_count, n_boot))
    if n == 0:
        out[:] = np.nan
        return out
    rng = np.random.default_rng(seed)
    num_t = np.ascontiguousarray(num.T)
    den_t = np.ascontiguousarray(den.T)
    chunk = max(1, (1 << 22) // n)  # bounded memory for the index draws
    for b0 in range(0, n_boot, chunk):
        reps = min(chunk, n_boot - b0)
        idx = rng.integers(0, n, size=(reps, n))
        _boot_kernel(num_t, den_t, idx, out, b0)
    return out


@dataclass(frozen=True)
class Estimate:
    """One estimator's value and percentile-bootstrap interval."""

    policy: str
    estimator: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    n_boot: int
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }

    def covers(self, truth: float) -> bool:
        return self.ci_low <= truth <= self.ci_high


def estimate(
    terms: OPETerms,
    names: Sequence[str] | None = None,
    *,
    policy: str = "",
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> list[Estimate]:
    """Point estimates and (1 - alpha) percentile bootstrap intervals."""
    names = tuple(names or terms.available())
    if not 0.0 < alpha < 1.0:
        raise InvalidArgument(f"alpha={alpha!r} must be in (0, 1)")
    if n_boot < 0:
        raise InvalidArgument(f"n_boot={n_boot!r} must be >= 0")
    num, den = terms.matrix(names)
    values = [_ratio(num[e], den[e]) for e in range(len(names))]
    lo = np.full(len(names), np.nan)
    hi = np.full(len(names), np.nan)
    if n_boot > 0:
        boots = bootstrap(num, den, n_boot=n_boot, seed=seed)
        for e in range(len(names)):
            ok = boots[e][~np.isnan(boots[e])]
            if ok.shape[0]:
                lo[e], hi[e] = np.quantile(ok, [alpha / 2, 1 - alpha / 2])
    out = []
    for e, name in enumerate(names):
        rows = int((den[e] != 0).sum()) if name == "replay" else terms.n
        out.append(
            Estimate(policy, name, values[e], float(lo[e]), float(hi[e]), rows, n_boot, alpha)
        )
    return out


def evaluate(
    log: BanditLog,
    target: TargetProbs,
    names: Sequence[str] | None = None,
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    folds: int = 2,
    lam: float | None = None,
) -> list[Estimate]:
    """Every requested estimator for ``target`` on ``log`` (rows with rewards).

    ``replay`` is left out unless the log is uniformly logged (it is biased
    otherwise); ``names=None`` means every estimator that applies.
    """
    wanted = tuple(names) if names else ESTIMATORS
    if "replay" in wanted and not log.is_uniform():
        wanted = tuple(n for n in wanted if n != "replay")
    need_q = "dm" in wanted or "dr" in wanted
    terms = OPETerms.build(log, target, reward_model=need_q, folds=folds, lam=lam, seed=seed)
    return estimate(terms, wanted, policy=target.name, n_boot=n_boot, alpha=alpha, seed=seed)
