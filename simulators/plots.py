"""PNG plots of simulation results (matplotlib, imported only when plotting).

``write_plots(summary, directory)`` draws, from ``SimulationResult.summary()``:

- ``regret.png``: mean cumulative regret per contender with its 95% band
  across seeds, and the Lai-Robbins bound where it applies;
- ``ctr.png``: CTR (reward per shown slot) in each window between
  ``ctr_checkpoints``, drawn at the window's end, mean and 95% band across
  seeds.

matplotlib is an optional dependency (the ``research`` extra); without it
``write_plots`` raises ``InvalidArgument`` saying how to install it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bandit_engine import InvalidArgument

__all__ = ["plot_ctr", "plot_regret", "write_plots"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise InvalidArgument(
            "plots need matplotlib: pip install 'bandit-engine[research]' (or matplotlib)"
        ) from exc
    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def _title(summary: dict[str, Any]) -> str:
    w = summary["world"]
    n = len(summary["seeds"])
    return f"{w['name']} world, k={summary['k']}, {summary['rounds']} rounds, {n} seeds"


def plot_regret(summary: dict[str, Any], path: Path) -> Path:
    """Cumulative regret with 95% bands; returns ``path``."""
    plt = _pyplot()
    t = summary["checkpoints"]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    try:
        for c in summary["contenders"]:
            cur = c["curves"]
            (line,) = ax.plot(t, cur["regret_mean"], label=c["label"], linewidth=1.6)
            ax.fill_between(
                t, cur["regret_lo"], cur["regret_hi"], color=line.get_color(), alpha=0.2
            )
        lr = summary.get("lai_robbins")
        if lr is not None:
            ax.plot(t, lr["bound"], "k--", linewidth=1.2, label="Lai-Robbins lower bound")
        ax.set_xlabel("round")
        ax.set_ylabel("cumulative expected regret")
        ax.set_title(_title(summary) + " (mean, 95% band)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def plot_ctr(summary: dict[str, Any], path: Path) -> Path:
    """CTR per window over time with 95% bands; returns ``path``."""
    plt = _pyplot()
    t = summary["ctr_checkpoints"]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    try:
        for c in summary["contenders"]:
            cur = c["curves"]
            (line,) = ax.plot(t, cur["ctr_mean"], label=c["label"], linewidth=1.4, marker=".")
            ax.fill_between(t, cur["ctr_lo"], cur["ctr_hi"], color=line.get_color(), alpha=0.15)
        ax.set_xlabel("round")
        ax.set_ylabel("CTR (reward per shown slot, per window)")
        ax.set_title(_title(summary) + " (mean, 95% band)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def write_plots(summary: dict[str, Any], directory: str | Path) -> list[Path]:
    """Write ``regret.png`` and ``ctr.png`` into ``directory`` (created if needed)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    return [plot_regret(summary, out / "regret.png"), plot_ctr(summary, out / "ctr.png")]
