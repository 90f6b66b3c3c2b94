"""Bias and interval coverage of the slate estimators over repeated logs.

``run_study`` draws ``n_logs`` independent logs of ``n_rows`` rows from a
``SlateWorld`` (seeded: log j uses the j-th child of ``SeedSequence(seed)``),
runs every estimator on each and compares with the exact value:

- bias = mean estimate - exact value, its Monte Carlo standard error
  ``sd(estimates) / sqrt(n_logs)`` and ``bias_z = |bias| / mc_se`` (for an
  unbiased estimator |bias_z| is a |N(0, 1)|: above 3 about once in 370);
- coverage = share of logs whose (1 - alpha) interval holds the exact value;
- RMSE and mean interval width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bandit_engine import InvalidArgument
from simulators.slate.estimators import SlateEstimate, slate_iips, slate_ips, slate_rips
from simulators.slate.pseudo_inverse import slate_pi
from simulators.slate.worlds import UNBIASED, SlateInputs, SlateWorld

__all__ = ["ESTIMATORS", "EstimatorStudy", "WorldStudy", "estimate_all", "run_study"]

#: the slate estimators, in order of decreasing assumptions-free-ness
ESTIMATORS = ("ips", "iips", "rips", "pi")


def estimate_all(
    inputs: SlateInputs,
    names: tuple[str, ...] = ESTIMATORS,
    *,
    alpha: float = 0.05,
    interval: str = "normal",
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, SlateEstimate]:
    """Every requested estimator on one log's inputs (PI in its general form)."""
    kw: dict[str, Any] = {"alpha": alpha, "interval": interval, "n_boot": n_boot, "seed": seed}
    out: dict[str, SlateEstimate] = {}
    for name in names:
        if name == "ips":
            out[name] = slate_ips(
                inputs.slot_rewards, inputs.target_joint, inputs.logging_joint, **kw
            )
        elif name == "iips":
            out[name] = slate_iips(
                inputs.slot_rewards, inputs.target_marginal, inputs.logging_marginal, **kw
            )
        elif name == "rips":
            out[name] = slate_rips(
                inputs.slot_rewards, inputs.target_prefix, inputs.logging_prefix, **kw
            )
        elif name == "pi":
            out[name] = slate_pi(
                inputs.slot_rewards, inputs.slates, inputs.target_slot_item,
                inputs.logging_pairs, context=inputs.context, **kw,
            )  # fmt: skip
        else:
            raise InvalidArgument(f"unknown slate estimator {name!r}; expected one of {ESTIMATORS}")
    return out


@dataclass(frozen=True)
class EstimatorStudy:
    """One estimator's record over the repeated logs of one world."""

    estimator: str
    unbiased: bool  # whether its assumption holds in the world
    mean: float
    bias: float
    mc_se: float
    bias_z: float
    rmse: float
    coverage: float
    mean_width: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class WorldStudy:
    """The study of one world: its exact values and each estimator's record."""

    structure: str
    truth: float
    logging_value: float
    n_logs: int
    n_rows: int
    alpha: float
    estimators: dict[str, EstimatorStudy]

    def to_dict(self) -> dict[str, Any]:
        return {
            "structure": self.structure,
            "truth": self.truth,
            "logging_value": self.logging_value,
            "n_logs": self.n_logs,
            "n_rows": self.n_rows,
            "alpha": self.alpha,
            "estimators": {k: v.to_dict() for k, v in self.estimators.items()},
        }


def run_study(
    world: SlateWorld | str,
    *,
    n_logs: int = 200,
    n_rows: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    names: tuple[str, ...] = ESTIMATORS,
) -> WorldStudy:
    """Repeated logs from ``world`` (a ``SlateWorld``, or a structure name for
    ``SlateWorld.make(structure)``); see the module docstring."""
    w = SlateWorld.make(world) if isinstance(world, str) else world
    truth = w.value("target")
    tables = w.tables()
    est = np.empty((len(names), n_logs))
    cov = np.empty((len(names), n_logs), dtype=bool)
    width = np.empty((len(names), n_logs))
    for j, child in enumerate(np.random.SeedSequence(seed).spawn(n_logs)):
        log = w.sample(n_rows, np.random.default_rng(child))
        res = estimate_all(w.inputs(log, tables), names, alpha=alpha)
        for e, name in enumerate(names):
            r = res[name]
            est[e, j] = r.value
            cov[e, j] = r.covers(truth)
            width[e, j] = r.ci_high - r.ci_low
    out: dict[str, EstimatorStudy] = {}
    for e, name in enumerate(names):
        mean = float(est[e].mean())
        bias = mean - truth
        mc_se = float(est[e].std(ddof=1) / math.sqrt(n_logs)) if n_logs > 1 else math.nan
        out[name] = EstimatorStudy(
            estimator=name,
            unbiased=name in UNBIASED[w.structure],
            mean=mean,
            bias=bias,
            mc_se=mc_se,
            bias_z=abs(bias) / mc_se if mc_se > 0 else math.inf,
            rmse=float(np.sqrt(np.mean((est[e] - truth) ** 2))),
            coverage=float(cov[e].mean()),
            mean_width=float(width[e].mean()),
        )
    return WorldStudy(w.structure, truth, w.value("logging"), n_logs, n_rows, alpha, out)
