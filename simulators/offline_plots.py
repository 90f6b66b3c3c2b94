"""PNG plots of offline evaluations (matplotlib, imported only when plotting).

- ``estimator_comparison``: each policy's estimates, one marker per
  estimator with its confidence interval, against the logged policy's mean.
- ``replay_curves``: running mean reward of each replayed policy over the
  accepted events, with a bootstrap band and the logged mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simulators.estimators import Estimate
from simulators.replay import ReplayResult

__all__ = ["estimator_comparison", "replay_curves"]

_MARKERS = {"replay": "D", "ips": "o", "snips": "s", "dm": "^", "dr": "v"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: str | Path) -> Path:
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def estimator_comparison(
    estimates: Sequence[Estimate],
    path: str | Path,
    *,
    title: str = "Off-policy estimates",
    behaviour: Estimate | None = None,
    ylabel: str = "estimated reward (CTR)",
) -> Path:
    """One column per policy, estimators side by side, (1 - alpha) intervals."""
    plt = _pyplot()
    policies = list(dict.fromkeys(e.policy for e in estimates))
    names = list(dict.fromkeys(e.estimator for e in estimates))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(policies) + 3), 4.2), dpi=120)
    width = 0.7 / max(1, len(names))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, name in enumerate(names):
        xs, ys, lo, hi = [], [], [], []
        for i, pol in enumerate(policies):
            for e in estimates:
                if e.policy == pol and e.estimator == name:
                    xs.append(i + (k - (len(names) - 1) / 2) * width)
                    ys.append(e.value)
                    lo.append(e.value - e.ci_low if np.isfinite(e.ci_low) else 0.0)
                    hi.append(e.ci_high - e.value if np.isfinite(e.ci_high) else 0.0)
        ax.errorbar(
            xs,
            ys,
            yerr=[lo, hi],
            fmt=_MARKERS.get(name, "o"),
            capsize=3,
            color=colors[k % len(colors)],
            label=name,
        )
    if behaviour is not None:
        ax.axhline(behaviour.value, color="0.4", lw=1, ls="--", label="logged policy")
        if np.isfinite(behaviour.ci_low):
            ax.axhspan(behaviour.ci_low, behaviour.ci_high, color="0.85", zorder=0)
    ax.set_xticks(range(len(policies)))
    ax.set_xticklabels(policies, rotation=10 if len(policies) > 3 else 0, fontsize=8)
    ax.set_ylabel(ylabel)
    alpha = estimates[0].alpha if estimates else 0.05
    ax.set_title(
        f"{title}\n(markers: estimates; bars: {100 * (1 - alpha):.0f}% bootstrap CI)", fontsize=10
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(names) + 1, 6), loc="best")
    return _save(plt, fig, path)


def replay_curves(
    results: Sequence[ReplayResult],
    path: str | Path,
    *,
    title: str = "Replay",
    behaviour: float | None = None,
    labels: Sequence[str] | None = None,
) -> Path:
    """Running mean reward over accepted events, with a +-1.96 se band."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=120)
    for i, res in enumerate(results):
        if not res.n_matched:
            continue
        n = np.arange(1, res.n_matched + 1)
        mean = np.cumsum(res.rewards) / n
        var = np.maximum(np.cumsum(res.rewards**2) / n - mean**2, 0.0)
        se = np.sqrt(var / n)
        label = labels[i] if labels else res.policy
        (line,) = ax.plot(n, mean, lw=1.4, label=f"{label} ({res.value:.4f})")
        ax.fill_between(
            n, mean - 1.96 * se, mean + 1.96 * se, color=line.get_color(), alpha=0.15, lw=0
        )
    if behaviour is not None:
        ax.axhline(behaviour, color="0.4", lw=1, ls="--", label=f"logged policy ({behaviour:.4f})")
    ax.set_xlabel("accepted events")
    ax.set_ylabel("running mean reward")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)
