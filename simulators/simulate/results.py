"""Simulation results: confidence intervals, JSON summaries and the text table.

Per round a run records the sampled reward (summed over the ``k`` slots)
and the expected regret of the shown list against the best list; the
summaries report cumulative reward and regret, CTR (reward per shown slot)
and their 95% confidence intervals across seeds (Student t), and, where the
world has one, the Lai-Robbins lower bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from bandit_engine import InvalidArgument
from bandit_engine.policies import FloatArray, IntArray
from simulators.simulate.agents import Trace
from simulators.simulate.contenders import ContenderSpec

__all__ = ["ContenderResult", "SimulationResult", "mean_ci", "render_table", "t975"]


_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise InvalidArgument(f"df={df!r} must be >= 1")
    return _T975[df - 1] if df <= 30 else 1.96 + 2.5 / df


def mean_ci(values: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mean over axis 0 and its 95% Student-t interval (zero width for one row)."""
    v = np.asarray(values, dtype=np.float64)
    mean = v.mean(axis=0)
    n = v.shape[0]
    if n < 2:
        return mean, mean.copy(), mean.copy()
    half = t975(n - 1) * v.std(axis=0, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


@dataclass
class ContenderResult:
    """One contender's traces, one per seed."""

    spec: ContenderSpec
    traces: list[Trace] = field(default_factory=list)


@dataclass
class SimulationResult:
    """Everything a simulation produced, and its summaries."""

    world: dict[str, Any]
    rounds: int
    k: int
    seeds: list[int]
    update_every: int
    contenders: list[ContenderResult]
    bound: FloatArray | None  # mean Lai-Robbins bound at t = 1..rounds, if it applies

    def checkpoints(self, points: int = 100) -> IntArray:
        """Round counts 1..rounds at which curves are reported (about ``points`` of them)."""
        n = max(1, min(points, self.rounds))
        out: IntArray = np.unique(np.linspace(0, self.rounds, n + 1).round().astype(np.int64))[1:]
        return out

    def summary(
        self, points: int = 100, ctr_points: int = 25, timing: bool = False
    ) -> dict[str, Any]:
        """JSON-ready results; without ``timing`` the same seed gives the same dict.

        Regret curves are cumulative, at ``checkpoints`` (about ``points``);
        CTR curves are per window between ``ctr_checkpoints`` (about
        ``ctr_points``: fewer, longer windows, since a window's CTR is noisy).
        """
        ts = self.checkpoints(points)
        ctr_ts = self.checkpoints(ctr_points)
        out: dict[str, Any] = {
            "schema": "bandit-engine/simulation/1",
            "world": self.world,
            "rounds": self.rounds,
            "k": self.k,
            "seeds": self.seeds,
            "update_every": self.update_every,
            "checkpoints": ts.tolist(),
            "ctr_checkpoints": ctr_ts.tolist(),
            "contenders": [],
            "lai_robbins": None,
        }
        if self.bound is not None:
            out["lai_robbins"] = {
                "bound": self.bound[ts - 1].tolist(),
                "final": float(self.bound[-1]),
            }
        for c in self.contenders:
            out["contenders"].append(self._contender_summary(c, ts, ctr_ts, timing))
        return out

    def _contender_summary(
        self, c: ContenderResult, ts: IntArray, ctr_ts: IntArray, timing: bool
    ) -> dict[str, Any]:
        rewards = np.stack([tr.rewards for tr in c.traces])
        regrets = np.stack([tr.regrets for tr in c.traces])
        zero = np.zeros((rewards.shape[0], 1))
        cum_reward = np.concatenate([zero, rewards.cumsum(axis=1)], axis=1)  # [:, t]: rounds < t
        cum_regret = regrets.cumsum(axis=1)
        prev = np.concatenate([[0], ctr_ts[:-1]])
        ctr_curve = (cum_reward[:, ctr_ts] - cum_reward[:, prev]) / ((ctr_ts - prev) * self.k)
        final_reward = cum_reward[:, -1]
        final_regret = cum_regret[:, -1]
        final_ctr = final_reward / (self.rounds * self.k)

        def stat(v: FloatArray) -> dict[str, Any]:
            m, lo, hi = mean_ci(v)
            return {"mean": float(m), "ci95": [float(lo), float(hi)], "per_seed": v.tolist()}

        reg_m, reg_lo, reg_hi = mean_ci(cum_regret[:, ts - 1])
        ctr_m, ctr_lo, ctr_hi = mean_ci(ctr_curve)
        d: dict[str, Any] = {
            "label": c.spec.label,
            "kind": c.spec.kind,
            "params": c.spec.params,
            "cumulative_reward": stat(final_reward),
            "cumulative_regret": stat(final_regret),
            "ctr": stat(final_ctr),
            "regret_vs_lai_robbins": (
                float(final_regret.mean() / self.bound[-1])
                if self.bound is not None and self.bound[-1] > 0
                else None
            ),
            "curves": {
                "regret_mean": reg_m.tolist(),
                "regret_lo": reg_lo.tolist(),
                "regret_hi": reg_hi.tolist(),
                "ctr_mean": ctr_m.tolist(),
                "ctr_lo": ctr_lo.tolist(),
                "ctr_hi": ctr_hi.tolist(),
            },
        }
        if timing:
            secs = [tr.seconds for tr in c.traces]
            d["timing"] = {
                "seconds_per_seed": secs,
                "rounds_per_s": float(self.rounds * len(secs) / max(sum(secs), 1e-12)),
            }
        return d


def render_table(result: SimulationResult, timing: bool = True) -> str:
    """A plain-text table of the final figures, one row per contender."""
    s = result.summary(points=1, ctr_points=1, timing=True)
    seeds = result.seeds
    span = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}..{seeds[-1]}"
    world = ", ".join(
        f"{k}={_short(v)}" for k, v in result.world.items() if k != "name" and v is not None
    )
    head = (
        f"world {result.world['name']} ({world})\n"
        f"k={result.k}, {result.rounds} rounds x {len(seeds)} seeds ({span}), "
        f"update every {result.update_every} round(s)"
        + ("; ± is a 95% CI across seeds" if len(seeds) > 1 else "")
    )
    cols = ["contender", "CTR", "cum. reward", "cum. regret"]
    if s["lai_robbins"] is not None:
        cols.append("regret/LR")
    if timing:
        cols += ["s/seed", "rounds/s"]
    rows = [cols]
    for c in s["contenders"]:
        row = [
            c["label"],
            _pm(c["ctr"], 4),
            _pm(c["cumulative_reward"], 1),
            _pm(c["cumulative_regret"], 1),
        ]
        if s["lai_robbins"] is not None:
            ratio = c["regret_vs_lai_robbins"]
            row.append("-" if ratio is None else f"{ratio:.2f}")
        if timing:
            secs = c["timing"]["seconds_per_seed"]
            row += [f"{sum(secs) / len(secs):.2f}", f"{c['timing']['rounds_per_s']:,.0f}"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    lines = [head, ""]
    for n, r in enumerate(rows):
        lines.append(
            "  ".join(
                c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    if s["lai_robbins"] is not None:
        lines.append(
            f"\nLai-Robbins lower bound on cumulative regret at t={result.rounds}: "
            f"{s['lai_robbins']['final']:.1f} (asymptotic; regret/LR near or below 1 is "
            "as good as a consistent policy can do)"
        )
    return "\n".join(lines)


def _pm(stat: dict[str, Any], digits: int) -> str:
    m = stat["mean"]
    if len(stat["per_seed"]) < 2:
        return f"{m:.{digits}f}"
    lo, hi = stat["ci95"]
    return f"{m:.{digits}f} ± {(hi - lo) / 2:.{digits}f}"


def _short(v: Any) -> str:
    if isinstance(v, list) and len(v) > 4:
        return f"[{', '.join(f'{x:g}' for x in v[:3])}, ... {len(v)} values]"
    if isinstance(v, list):
        return "[" + ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v) + "]"
    return str(v)
