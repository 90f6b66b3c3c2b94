"""Estimates with percentile-bootstrap intervals: ``estimate`` and ``evaluate``.

The resample sums are a Numba kernel over the per-row terms; every
estimator is computed on the same resamples. DM and DR are the exception when
their terms carry the reward model's refit (``OPETerms.build`` does): then
each of their ``model_boot`` resamples refits the cross-fitted reward model
on the resampled rows (``ModelRefit.bootstrap``), so their intervals include
the model's estimation error.

What the intervals are (``Estimate.note`` says it per estimate):

- ``logged``, ``ips``, ``snips``, ``dr``, ``replay``: asymptotic confidence
  intervals for the target's value (``replay`` on uniformly logged data);
  with heavy-tailed weights and few rows they undercover.
- ``dm``: an interval for what DM converges to, not for the target's value,
  unless the reward model is correctly specified: refitting covers the
  model's variance, nothing covers its misspecification bias (nor the bias of
  ridge shrinkage). With the model held fixed (terms built without a refit,
  or ``model_boot=0``) it is not a confidence interval at all: it leaves out
  the model's own error too.
- In progressive mode (``policy_target(learn=True)``) the estimand is the
  mean value of the policies trained on this log in this order; the
  bootstrap treats those policies as given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numba import njit

from bandit_engine import InvalidArgument
from bandit_engine.policies import FloatArray
from simulators.estimators.targets import TargetProbs
from simulators.estimators.terms import ESTIMATORS, OPETerms, ratio
from simulators.logs import BanditLog

__all__ = ["DM_NOTE_FIXED", "DM_NOTE_REFIT", "Estimate", "bootstrap", "estimate", "evaluate"]


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
    """One estimator's value and percentile-bootstrap interval (``n_boot``
    resamples); ``note`` says what the interval is when it is not a plain
    confidence interval for the target's value (module docstring)."""

    policy: str
    estimator: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    n_boot: int
    alpha: float
    note: str = ""  # what the interval is when it is not a plain confidence interval

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
    model_boot: int | None = None,
) -> list[Estimate]:
    """Point estimates and (1 - alpha) percentile bootstrap intervals.

    ``model_boot``: resamples on which DM and DR refit the reward model
    (None: ``n_boot``; 0: hold the model fixed, as the other estimators'
    resamples do). Refitting needs ``terms.model.refit`` (``OPETerms.build``
    sets it); without it the model is held fixed and ``note`` says so.
    """
    names = tuple(names or terms.available())
    if not 0.0 < alpha < 1.0:
        raise InvalidArgument(f"alpha={alpha!r} must be in (0, 1)")
    if n_boot < 0:
        raise InvalidArgument(f"n_boot={n_boot!r} must be >= 0")
    mb = n_boot if model_boot is None else model_boot
    if mb < 0:
        raise InvalidArgument(f"model_boot={model_boot!r} must be >= 0")
    num, den = terms.matrix(names)
    values = [ratio(num[e], den[e]) for e in range(len(names))]
    lo = np.full(len(names), np.nan)
    hi = np.full(len(names), np.nan)
    if n_boot > 0:
        boots = bootstrap(num, den, n_boot=n_boot, seed=seed)
        for e in range(len(names)):
            ok = boots[e][~np.isnan(boots[e])]
            if ok.shape[0]:
                lo[e], hi[e] = np.quantile(ok, [alpha / 2, 1 - alpha / 2])
    refit = terms.model.refit if terms.model is not None else None
    refitted = refit is not None and mb > 0 and bool({"dm", "dr"} & set(names))
    if refitted:
        assert refit is not None
        dm_b, dr_b = refit.bootstrap(terms.weights, n_boot=mb, seed=seed)
        model_boots = {"dm": dm_b, "dr": dr_b}
        for e, name in enumerate(names):
            if name in model_boots:
                ok = model_boots[name][~np.isnan(model_boots[name])]
                lo[e], hi[e] = (
                    np.quantile(ok, [alpha / 2, 1 - alpha / 2]) if ok.shape[0] else (np.nan, np.nan)
                )
    out = []
    for e, name in enumerate(names):
        rows = int((den[e] != 0).sum()) if name == "replay" else terms.n
        reps = mb if refitted and name in ("dm", "dr") else n_boot
        out.append(
            Estimate(
                policy,
                name,
                values[e],
                float(lo[e]),
                float(hi[e]),
                rows,
                reps,
                alpha,
                _note(name, refitted),
            )
        )
    return out


#: ``Estimate.note`` of DM's interval, with the model refitted per resample or held fixed
DM_NOTE_REFIT = (
    "reward model refitted per resample: the interval covers its estimation error but not "
    "its misspecification bias, so it is a confidence interval for the value only if the "
    "model is right"
)
DM_NOTE_FIXED = (
    "not a confidence interval: the reward model is held fixed across resamples, leaving out "
    "its own error and its bias"
)


def _note(name: str, refitted: bool) -> str:
    if name == "dm":
        return DM_NOTE_REFIT if refitted else DM_NOTE_FIXED
    if name == "dr" and not refitted:
        return "reward model held fixed across resamples"
    return ""


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
    model_boot: int | None = None,
) -> list[Estimate]:
    """Every requested estimator for ``target`` on ``log`` (rows with rewards).

    ``replay`` is left out unless the log is uniformly logged (it is biased
    otherwise); ``names=None`` means every estimator that applies.
    ``model_boot`` as in ``estimate``.
    """
    wanted = tuple(names) if names else ESTIMATORS
    if "replay" in wanted and not log.is_uniform():
        wanted = tuple(n for n in wanted if n != "replay")
    need_q = "dm" in wanted or "dr" in wanted
    terms = OPETerms.build(log, target, reward_model=need_q, folds=folds, lam=lam, seed=seed)
    return estimate(
        terms, wanted, policy=target.name, n_boot=n_boot, alpha=alpha, seed=seed,
        model_boot=model_boot,
    )  # fmt: skip
