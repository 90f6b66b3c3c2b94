"""Continuous off-policy evaluation: running sums over a window of
rewarded shadow decisions, and the IPS, SNIPS and DR estimates they give.

A shadow decision is a Recommend that the experiment's challengers also
ranked (a share ``shadow_rate`` of them, drawn from a seeded stream). For
each challenger e it keeps pi_e(a | x), the challenger's first-slot
propensity for the logged first-slot arm a (the same Monte Carlo machinery
as the champion's propensities), and its DM term sum_b pi_e(b | x) q(x, b),
where q(x, b) is the champion's posterior mean reward of arm b at x at
decision time (a model fitted on earlier rewards only). When a's reward r
arrives (its Feedback, or the default reward at window close) the decision
adds to each policy's sums, with w = pi_e(a | x) / p, p the logged champion
propensity (the behaviour probability):

====  =====================================================
n     rewarded shadow decisions
sw    sum w            sww   sum w^2
swr   sum w r          swr2  sum (w r)^2     swwr  sum w (w r)
sd    sum d            sd2   sum d^2, d = dm + w (r - q(x, a))
====  =====================================================

The champion's own (on-policy) row has w = 1 and d = r: its estimates are
the mean logged first-slot reward. Every estimate is a ratio of sums, as
the offline estimators (``simulators.estimators``) define them: IPS
swr / n, SNIPS swr / sw, DR sd / n; the effective sample size is
sw^2 / sww. Sums add, so windows, buckets and servers merge by addition.

The window: the newest ``shadow_window`` rewarded shadow decisions, kept as
``WINDOW_BUCKETS`` buckets of ceil(shadow_window / WINDOW_BUCKETS) each; when
the newest bucket is full the oldest is dropped, so an estimate covers
between 90% and 100% of ``shadow_window`` decisions once that many came.

Intervals are 95% normal (CLT) intervals: IPS and DR from the sample
variance of their terms, SNIPS by the delta method; None below two rows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bandit_engine.policies import FloatArray

__all__ = ["LOGGED", "SUMS", "WINDOW_BUCKETS", "Estimates", "Window", "estimates", "terms"]

#: Columns of a sums row (module docstring).
SUMS = ("n", "sw", "sww", "swr", "swr2", "swwr", "sd", "sd2")
#: Buckets a window is kept in.
WINDOW_BUCKETS = 10
#: The name under which the champion's on-policy sums are kept.
LOGGED = "@logged"
_Z95 = 1.959963984540054


def terms(w: FloatArray, r: FloatArray, d: FloatArray) -> FloatArray:
    """The sums row of rows with weights ``w``, rewards ``r`` and DR terms ``d``."""
    wr = w * r
    return np.array(
        [
            float(w.shape[0]),
            w.sum(),
            (w * w).sum(),
            wr.sum(),
            (wr * wr).sum(),
            (w * wr).sum(),
            d.sum(),
            (d * d).sum(),
        ]
    )


class Window:
    """Sums of the newest ``size`` rewarded shadow decisions, by policy name."""

    def __init__(self, size: int) -> None:
        self.bucket_size = max(1, math.ceil(size / WINDOW_BUCKETS))
        #: the bucket being filled, and how many decisions it holds
        self.current = 0
        self.filled = 0
        self.sums: dict[str, FloatArray] = {}

    def _row(self, name: str) -> FloatArray:
        arr = self.sums.get(name)
        if arr is None:
            arr = self.sums[name] = np.zeros((WINDOW_BUCKETS, len(SUMS)))
        return arr

    def add(self, rows: dict[str, FloatArray]) -> None:
        """One rewarded shadow decision: a sums row (``terms``) per policy name."""
        if self.filled >= self.bucket_size:
            self.current = (self.current + 1) % WINDOW_BUCKETS
            self.filled = 0
            for arr in self.sums.values():
                arr[self.current] = 0.0
        for name, row in rows.items():
            self._row(name)[self.current] += row
        self.filled += 1

    def drop(self, name: str) -> None:
        self.sums.pop(name, None)

    def total(self, name: str) -> FloatArray:
        """The window's sums of ``name`` (zeros if it has none)."""
        arr = self.sums.get(name)
        return np.zeros(len(SUMS)) if arr is None else arr.sum(axis=0)

    def state(self) -> dict[str, np.ndarray]:
        """Arrays for a snapshot (``load`` reads them back)."""
        out = {f"win.{name}": arr.copy() for name, arr in self.sums.items()}
        out["win_pos"] = np.array([self.current, self.filled, self.bucket_size], dtype=np.int64)
        return out

    def load(self, state: dict[str, np.ndarray], names: set[str]) -> None:
        pos = state.get("win_pos")
        if pos is None or int(pos[2]) != self.bucket_size:
            return  # none, or another window size: start empty
        self.current, self.filled = int(pos[0]), int(pos[1])
        for key, arr in state.items():
            name = key[4:]
            if (
                key.startswith("win.")
                and name in names
                and arr.shape == (WINDOW_BUCKETS, len(SUMS))
            ):
                self.sums[name] = np.array(arr, dtype=np.float64)


@dataclass(frozen=True)
class Estimates:
    """One policy's estimates over the window, in reward units; intervals
    are 95% (None below two rows)."""

    name: str
    role: str  # "champion" or "challenger"
    n: int
    ess: float
    ips: float | None
    ips_low: float | None
    ips_high: float | None
    snips: float | None
    snips_low: float | None
    snips_high: float | None
    dr: float | None
    dr_low: float | None
    dr_high: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _interval(value: float, se: float, n: float) -> tuple[float | None, float | None]:
    if n < 2 or not math.isfinite(se):
        return None, None
    return value - _Z95 * se, value + _Z95 * se


def _mean_se(total: float, total_sq: float, n: float) -> float:
    """Standard error of the mean of n terms from their sum and sum of squares."""
    if n < 2:
        return math.nan
    mean = total / n
    var = max(0.0, (total_sq - n * mean * mean) / (n - 1))
    return math.sqrt(var / n)


def estimates(
    name: str, role: str, s: FloatArray, reward_min: float = 0.0, reward_max: float = 1.0
) -> Estimates:
    """IPS, SNIPS and DR (module docstring) of a sums row, mapped from [0, 1]
    onto [reward_min, reward_max]."""
    n, sw, sww, swr, swr2, swwr, sd, sd2 = (float(v) for v in s)
    span = reward_max - reward_min

    def units(v: float | None) -> float | None:
        return None if v is None or not math.isfinite(v) else reward_min + span * v

    if n < 1:
        return Estimates(name, role, 0, 0.0, *([None] * 9))
    ips = swr / n
    ips_lo, ips_hi = _interval(ips, _mean_se(swr, swr2, n), n)
    snips: float | None = None
    snips_lo = snips_hi = None
    if sw > 0:
        snips = swr / sw
        resid = max(0.0, swr2 - 2 * snips * swwr + snips * snips * sww)
        se = math.sqrt(resid / (n * (n - 1))) / (sw / n) if n >= 2 else math.nan
        snips_lo, snips_hi = _interval(snips, se, n)
    dr = sd / n
    dr_lo, dr_hi = _interval(dr, _mean_se(sd, sd2, n), n)
    ess = sw * sw / sww if sww > 0 else 0.0
    return Estimates(
        name,
        role,
        int(n),
        ess,
        units(ips),
        units(ips_lo),
        units(ips_hi),
        units(snips),
        units(snips_lo),
        units(snips_hi),
        units(dr),
        units(dr_lo),
        units(dr_hi),
    )
