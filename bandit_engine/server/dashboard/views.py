"""The dashboard's JSON documents, built from the engine's own answers
(``ExperimentInfo``, ``ArmInfo``, ``Report``): the numbers GetExperiment,
ListArms and GetReport return, in plain JSON.

An arm's interval is the posterior mean ± 1.96 posterior standard
deviations (the normal approximation of a 95% interval), in the units of
``ArmInfo``: reward units, and logits for ``logistic_ts``. A ``beta_ts``
posterior lies within the reward range, so its interval is clipped to it.
"""

from __future__ import annotations

import math
from typing import Any

from bandit_engine.core import ArmInfo, ExperimentInfo
from bandit_engine.core.types import Report

__all__ = ["Z95", "arm_doc", "experiment_doc", "report_doc", "summary_doc"]

#: The normal quantile of a two-sided 95% interval.
Z95 = 1.959963984540054


def _num(v: float | None) -> float | None:
    """A float JSON can hold: None for NaN and infinities."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def summary_doc(info: ExperimentInfo) -> dict[str, Any]:
    """One experiment of the list: settings that matter on the page, counters,
    the champion and the challengers' names and policies."""
    cfg = info.config
    return {
        "experiment_id": cfg.experiment_id,
        "policy": cfg.policy,  # the champion's: it follows promotions
        "champion": info.champion,
        "challengers": [{"name": n, "policy": c.policy} for n, c in info.challengers],
        "model_version": info.model_version,
        "active_arms": info.active_arms,
        "total_arms": info.total_arms,
        "reward_min": cfg.reward_min,
        "reward_max": cfg.reward_max,
        "shadow_rate": cfg.shadow_rate,
        "counters": dict(info.counters),
    }


def arm_doc(a: ArmInfo, clip: tuple[float, float] | None = None) -> dict[str, Any]:
    """An arm with its 95% interval (module doc), clipped to ``clip``."""
    mean, std = _num(a.mean), _num(a.std)
    low = high = None
    if mean is not None and std is not None:
        low, high = mean - Z95 * std, mean + Z95 * std
        if clip is not None:
            low, high = max(low, clip[0]), min(high, clip[1])
    return {
        "arm_id": a.arm_id,
        "active": a.active,
        "mean": mean,
        "std": std,
        "low": low,
        "high": high,
        "pulls": a.pulls,
        "reward_sum": _num(a.reward_sum),
    }


def experiment_doc(info: ExperimentInfo, arms: list[ArmInfo], limit: int) -> dict[str, Any]:
    """``summary_doc`` with the arms (at most ``limit``, in slot order)."""
    doc = summary_doc(info)
    cfg = info.config
    clip = (cfg.reward_min, cfg.reward_max) if cfg.policy == "beta_ts" else None
    doc["arms"] = [arm_doc(a, clip) for a in arms[:limit]]
    doc["arms_shown"] = len(doc["arms"])
    doc["arms_listed"] = len(arms)
    return doc


def _estimate(value: float | None, low: float | None, high: float | None) -> dict[str, Any]:
    return {"value": _num(value), "low": _num(low), "high": _num(high)}


def _settings(settings: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (_num(v) if isinstance(v, float) else v)
        for k, v in settings.items()
        if k != "previous" and (v is None or isinstance(v, (str, int, float, bool)))
    }


def _change(ch: Any) -> dict[str, Any]:
    return {
        "seq": ch.seq,
        "action": ch.action,
        "name": ch.name,
        "actor": ch.actor,
        "at": ch.at,
        "previous": str(ch.settings.get("previous", "")) if ch.action != "add" else "",
        "settings": _settings(ch.settings) if ch.action == "add" else {},
    }


def report_doc(r: Report) -> dict[str, Any]:
    """GetReport's ``Report`` as JSON: estimates in reward units (None where
    unset), changes oldest first."""
    return {
        "experiment_id": r.experiment_id,
        "champion": r.champion,
        "shadow_rate": r.shadow_rate,
        "shadow_window": r.shadow_window,
        "estimates": [
            {
                "name": e.name,
                "role": e.role,
                "n": e.n,
                "ess": _num(e.ess),
                "ips": _estimate(e.ips, e.ips_low, e.ips_high),
                "snips": _estimate(e.snips, e.snips_low, e.snips_high),
                "dr": _estimate(e.dr, e.dr_low, e.dr_high),
            }
            for e in r.estimates
        ],
        "changes": [_change(c) for c in r.changes],
    }
