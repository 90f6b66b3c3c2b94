"""Slate off-policy estimators over arrays: standard IPS, IIPS and RIPS.

A log holds ``n`` slates of ``K`` slots. Row ``i`` shows items
``s_i = (s_i0, ..., s_i,K-1)`` in context ``x_i`` and observes one reward per
slot, ``r_ik``. The value of a policy is the expected slate reward, the sum of
the slot rewards: ``V(pi) = E_x E_{s ~ pi(.|x)} sum_k r_k``. Each estimator is
an average of per-row terms; they differ in which probability ratio weights
slot k's reward, hence in what they assume about how rewards depend on the
slate (``mu`` is the logging policy, ``pi`` the target):

========  =========================================  ===============================
name      per-row term                               unbiased when
========  =========================================  ===============================
ips       sum_k [pi(s_i|x_i) / mu(s_i|x_i)] r_ik     always (pi << mu): no assumption
iips      sum_k [pi_k(s_ik|x_i) / mu_k(s_ik|x_i)]    E[r_k | x, s] depends on (x, k,
          r_ik; pi_k(a|x) = P(a at slot k)           s_k) only ("independent")
rips      sum_k [pi(s_i0..k|x_i) / mu(s_i0..k|x_i)]  E[r_k | x, s] depends on (x, k,
          r_ik; prefix probabilities                 s_0..k) only (e.g. "cascade")
========  =========================================  ===============================

- Standard IPS: McInerney et al. 2020, "Counterfactual Evaluation of Slate
  Recommendations with Sequential Reward Interactions", Eq. (1); Open Bandit
  Pipeline ``SlateStandardIPS`` (``obp/ope/estimators_slate.py``), which
  weights each slot's reward by the joint slate ratio and divides the sum by
  the number of slates.
- Independent IPS: Li et al. 2018, "Offline Evaluation of Ranking Policies
  with Click Models"; OBP ``SlateIndependentIPS`` (marginal
  "item-position" propensities).
- Reward-interaction IPS: McInerney et al. 2020; OBP
  ``SlateRewardInteractionIPS`` (``pscore_cascade``: the probability of the
  first k+1 items, slot by slot).
- The pseudo-inverse estimator (Swaminathan et al. 2017) is in
  ``simulators.slate.pseudo_inverse``.

The weaker the assumption, the larger the weights: ``ips`` >= ``rips`` >=
``iips`` in variance, in the reverse order in bias when their assumptions
fail. ``self_normalized=True`` divides slot k's weighted rewards by the mean
of slot k's weights (OBP's ``SelfNormalized*`` estimators): a ratio
estimator, consistent but no longer unbiased, usually with less variance.

Intervals (``SlateEstimate.ci_low``/``ci_high``): by default the normal
(CLT) interval ``value +- z sd(psi) / sqrt(n)`` on the per-row terms psi
(for self-normalised estimators the delta-method influence terms); with
``interval="bootstrap"`` the percentile bootstrap over rows (``n_boot``
resamples, seeded). Both are asymptotic: with heavy-tailed weights (rare
slates of large ratio) and few rows they undercover, and the bias of an
estimator whose assumption fails is not in its interval.

Bad input raises ``bandit_engine.InvalidArgument`` naming the bad value:
shapes that do not agree, NaN or infinite values, logging probabilities
outside (0, 1], target probabilities outside [0, 1], prefix probabilities
that grow along the slate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from bandit_engine import InvalidArgument

__all__ = [
    "INTERVALS",
    "FloatArray",
    "SlateEstimate",
    "check_probabilities",
    "check_rewards",
    "impression_iips",
    "ratio_estimate",
    "slate_iips",
    "slate_ips",
    "slate_rips",
]

FloatArray = npt.NDArray[np.float64]
INTERVALS = ("normal", "bootstrap")


@dataclass(frozen=True)
class SlateEstimate:
    """One estimate of a slate policy's value with its (1 - alpha) interval.

    ``se`` is the standard error of the normal interval (delta method for
    self-normalised estimators), reported with either interval method.
    """

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    se: float
    n: int
    alpha: float
    interval: str

    def covers(self, truth: float) -> bool:
        return self.ci_low <= truth <= self.ci_high

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


# ----------------------------------------------------------------- checks
def _first_bad(mask: npt.NDArray[np.bool_]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _where(name: str, idx: tuple[int, ...]) -> str:
    return f"{name}[{', '.join(map(str, idx))}]"


def _array(name: str, value: Any, ndim: int) -> FloatArray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{name} is not numeric: {exc}") from None
    if arr.ndim != ndim:
        raise InvalidArgument(
            f"{name} has shape {arr.shape}; expected {ndim} dimension(s)"
            + (" (rows, slots)" if ndim == 2 else " (rows,)")
        )
    if arr.shape[0] == 0:
        raise InvalidArgument(f"{name} has no rows")
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = _first_bad(bad)
        raise InvalidArgument(
            f"{_where(name, idx)} is {float(arr[idx])!r}; expected a finite number"
        )
    return arr


def check_rewards(name: str, value: Any, ndim: int = 2) -> FloatArray:
    """Finite rewards as float64 of ``ndim`` dimensions (rows first)."""
    return _array(name, value, ndim)


def check_probabilities(
    name: str, value: Any, ndim: int, *, logging: bool, shape: tuple[int, ...] | None = None
) -> FloatArray:
    """Probabilities in (0, 1] (``logging=True``: a logged slate had a chance
    of being shown) or [0, 1] (a target may never show it)."""
    arr = _array(name, value, ndim)
    if shape is not None and arr.shape != shape:
        raise InvalidArgument(f"{name} has shape {arr.shape}; expected {shape}")
    low_bad = arr <= 0.0 if logging else arr < 0.0
    bad = low_bad | (arr > 1.0 + 1e-12)
    if bad.any():
        idx = _first_bad(bad)
        span = "(0, 1]" if logging else "[0, 1]"
        raise InvalidArgument(f"{_where(name, idx)} = {float(arr[idx])!r} is outside {span}")
    return np.minimum(arr, 1.0)


def _check_prefix(name: str, arr: FloatArray) -> None:
    grow = np.diff(arr, axis=1) > 1e-9 * np.maximum(arr[:, :-1], 1e-300)
    if grow.any():
        i, k = _first_bad(grow)
        raise InvalidArgument(
            f"{name}[{i}, {k + 1}] = {float(arr[i, k + 1])!r} exceeds {name}[{i}, {k}] = "
            f"{float(arr[i, k])!r}: the probability of a longer prefix cannot be larger"
        )


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
        raise InvalidArgument(f"alpha={alpha!r} must be in (0, 1)")


# --------------------------------------------------------------- intervals
def ratio_estimate(
    name: str,
    num: FloatArray,
    den: FloatArray | None = None,
    *,
    alpha: float = 0.05,
    interval: str = "normal",
    n_boot: int = 1000,
    seed: int = 0,
) -> SlateEstimate:
    """``value = sum_k sum_i num[i, k] / sum_i den[i, k]`` with its interval.

    ``den=None`` means ones: the value is then the mean of the per-row terms
    ``sum_k num[i, k]`` and the normal interval is the CLT interval on them.
    Otherwise the normal interval uses the delta method: influence terms
    ``psi_i = sum_k (num[i, k] - v_k den[i, k]) / mean_i den[i, k]``.
    """
    _check_alpha(alpha)
    if interval not in INTERVALS:
        raise InvalidArgument(f"interval={interval!r} must be one of {INTERVALS}")
    num = np.asarray(num, dtype=np.float64)
    if num.ndim == 1:
        num = num[:, None]
    n = int(num.shape[0])
    if den is None:
        terms = num.sum(axis=1)
        value = float(terms.mean())
        psi = terms - value
    else:
        den = np.asarray(den, dtype=np.float64).reshape(num.shape)
        dbar = den.mean(axis=0)
        if (dbar <= 0.0).any():
            k = int(np.flatnonzero(dbar <= 0.0)[0])
            raise InvalidArgument(
                f"{name}: the weights of slot {k} sum to zero (the target never shows "
                f"what the log holds at that slot); a self-normalised estimate is undefined"
            )
        vk = num.mean(axis=0) / dbar
        value = float(vk.sum())
        psi = ((num - vk * den) / dbar).sum(axis=1)
    se = float(psi.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    if interval == "normal":
        lo, hi = value - z * se, value + z * se
    else:
        lo, hi = _bootstrap(num, den, alpha=alpha, n_boot=n_boot, seed=seed)
    return SlateEstimate(name, value, float(lo), float(hi), se, n, float(alpha), interval)


def _bootstrap(
    num: FloatArray, den: FloatArray | None, *, alpha: float, n_boot: int, seed: int
) -> tuple[float, float]:
    if n_boot < 1:
        raise InvalidArgument(f"n_boot={n_boot!r} must be >= 1")
    n, k = num.shape
    rng = np.random.default_rng(seed)
    chunk = max(1, (1 << 22) // max(1, n * k))
    vals = np.empty(n_boot)
    for b0 in range(0, n_boot, chunk):
        reps = min(chunk, n_boot - b0)
        idx = rng.integers(0, n, size=(reps, n))
        s = num[idx].sum(axis=1)  # (reps, K)
        if den is None:
            vals[b0 : b0 + reps] = s.sum(axis=1) / n
        else:
            d = den[idx].sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                vals[b0 : b0 + reps] = (s / d).sum(axis=1)
    ok = vals[np.isfinite(vals)]
    if not ok.shape[0]:
        return math.nan, math.nan
    lo, hi = np.quantile(ok, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


# -------------------------------------------------------------- estimators
def _slot_inputs(
    slot_rewards: Any, target: Any, logging: Any, names: tuple[str, str], joint: bool
) -> tuple[FloatArray, FloatArray, FloatArray]:
    r = check_rewards("slot_rewards", slot_rewards, 2)
    shape: tuple[int, ...] = (r.shape[0],) if joint else r.shape
    t = check_probabilities(names[0], target, len(shape), logging=False, shape=shape)
    m = check_probabilities(names[1], logging, len(shape), logging=True, shape=shape)
    return r, t, m


def slate_ips(
    slot_rewards: Any,
    target_joint: Any,
    logging_joint: Any,
    *,
    self_normalized: bool = False,
    alpha: float = 0.05,
    interval: str = "normal",
    n_boot: int = 1000,
    seed: int = 0,
) -> SlateEstimate:
    """Standard slate IPS: mean of ``pi(s_i|x_i) / mu(s_i|x_i) * sum_k r_ik``.

    ``slot_rewards`` (n, K); ``target_joint`` and ``logging_joint`` (n,): the
    probability of the whole logged slate (all K slots, in order) under the
    target and logging policies. Unbiased for any reward structure as long as
    the logging policy could show every slate the target shows.
    """
    r, t, m = _slot_inputs(
        slot_rewards, target_joint, logging_joint, ("target_joint", "logging_joint"), True
    )
    w = (t / m)[:, None]
    num = w * r
    den = np.broadcast_to(w, r.shape) if self_normalized else None
    name = "snips" if self_normalized else "ips"
    return ratio_estimate(name, num, den, alpha=alpha, interval=interval, n_boot=n_boot, seed=seed)


def slate_iips(
    slot_rewards: Any,
    target_marginal: Any,
    logging_marginal: Any,
    *,
    self_normalized: bool = False,
    alpha: float = 0.05,
    interval: str = "normal",
    n_boot: int = 1000,
    seed: int = 0,
) -> SlateEstimate:
    """Independent IPS: mean of ``sum_k pi_k(s_ik|x_i) / mu_k(s_ik|x_i) * r_ik``.

    ``target_marginal[i, k]`` and ``logging_marginal[i, k]`` are the
    probabilities that the policy puts the logged item ``s_ik`` at slot k
    (whatever it shows elsewhere). Unbiased when slot k's expected reward
    depends only on the context, the slot and the item at it.
    """
    r, t, m = _slot_inputs(
        slot_rewards, target_marginal, logging_marginal, ("target_marginal", "logging_marginal"),
        False,
    )  # fmt: skip
    w = t / m
    name = "sniips" if self_normalized else "iips"
    return ratio_estimate(
        name, w * r, w if self_normalized else None, alpha=alpha, interval=interval,
        n_boot=n_boot, seed=seed,
    )  # fmt: skip


def slate_rips(
    slot_rewards: Any,
    target_prefix: Any,
    logging_prefix: Any,
    *,
    self_normalized: bool = False,
    alpha: float = 0.05,
    interval: str = "normal",
    n_boot: int = 1000,
    seed: int = 0,
) -> SlateEstimate:
    """Reward-interaction IPS: mean of ``sum_k pi(s_i0..k|x_i) / mu(s_i0..k|x_i) * r_ik``.

    ``target_prefix[i, k]`` and ``logging_prefix[i, k]`` are the
    probabilities that the policy shows the logged items at slots 0..k (in
    order); they cannot grow with k, and the last one is the joint slate
    probability. Unbiased when slot k's expected reward depends only on the
    context and the items at slots 0..k (the user reads top-down: cascade).
    """
    r, t, m = _slot_inputs(
        slot_rewards, target_prefix, logging_prefix, ("target_prefix", "logging_prefix"), False
    )
    _check_prefix("target_prefix", t)
    _check_prefix("logging_prefix", m)
    w = t / m
    name = "snrips" if self_normalized else "rips"
    return ratio_estimate(
        name, w * r, w if self_normalized else None, alpha=alpha, interval=interval,
        n_boot=n_boot, seed=seed,
    )  # fmt: skip


def impression_iips(
    position: Any,
    reward: Any,
    target_marginal: Any,
    logging_marginal: Any,
    n_slots: int,
    *,
    alpha: float = 0.05,
) -> SlateEstimate:
    """IIPS on an impression-level log: one row per shown (item, slot), the
    slates themselves not kept (the Open Bandit Dataset sample).

    ``value = sum_k mean_{i: position_i = k} w_i r_i`` with
    ``w_i = pi_k(item_i|x_i) / mu_k(item_i|x_i)``: each slot's mean estimates
    that slot's expected reward under the target, as ``slate_iips`` does on
    whole slates, under the same assumption. The normal interval adds the
    slots' variances (rows of different slots are independent impressions).
    """
    _check_alpha(alpha)
    r = check_rewards("reward", reward, 1)
    n = r.shape[0]
    pos = np.asarray(position)
    if pos.shape != (n,) or not np.issubdtype(pos.dtype, np.integer):
        raise InvalidArgument(f"position has shape {pos.shape}; expected ({n},) slot indices")
    bad = (pos < 0) | (pos >= n_slots)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidArgument(f"position[{i}] = {pos[i]} is not a slot in 0..{n_slots - 1}")
    t = check_probabilities("target_marginal", target_marginal, 1, logging=False, shape=(n,))
    m = check_probabilities("logging_marginal", logging_marginal, 1, logging=True, shape=(n,))
    term = t / m * r
    value, var = 0.0, 0.0
    for k in range(n_slots):
        tk = term[pos == k]
        if tk.shape[0] < 2:
            raise InvalidArgument(f"slot {k} has {tk.shape[0]} rows; each slot needs at least 2")
        value += float(tk.mean())
        var += float(tk.var(ddof=1)) / tk.shape[0]
    se = math.sqrt(var)
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    return SlateEstimate("iips", value, value - z * se, value + z * se, se, n, alpha, "normal")
