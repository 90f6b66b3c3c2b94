"""Thompson-sampling policies: one interface (``Policy``), one module each."""

from __future__ import annotations

from typing import Any

from bandit_engine._exceptions import InvalidArgument
from bandit_engine.policies.base import (
    DEFAULT_HALF_LIFE_S,
    MAX_ABS_FEATURE,
    FloatArray,
    IntArray,
    Policy,
    Ranking,
)
from bandit_engine.policies.beta import BetaTS
from bandit_engine.policies.gaussian import GaussianArrays, PerArmGaussian
from bandit_engine.policies.lin_disjoint import (
    LIN_EXPLORATION,
    NOISE_PRIOR_SHAPE,
    NOISE_PRIOR_STD,
    PRIOR_MEAN,
    LinTSDisjoint,
)
from bandit_engine.policies.lin_shared import DEFAULT_JOINT_DIM, LinTSShared, default_joint_dim
from bandit_engine.policies.logistic import LOGISTIC_EXPLORATION, LogisticTS
from bandit_engine.policies.merge import absorb, evidence, evidence_of, mergeable
from bandit_engine.policies.tables import normal_table, normal_table32, uniform_table

__all__ = [
    "DEFAULT_HALF_LIFE_S",
    "DEFAULT_JOINT_DIM",
    "LIN_EXPLORATION",
    "LOGISTIC_EXPLORATION",
    "MAX_ABS_FEATURE",
    "NOISE_PRIOR_SHAPE",
    "NOISE_PRIOR_STD",
    "POLICIES",
    "PRIOR_MEAN",
    "BetaTS",
    "FloatArray",
    "GaussianArrays",
    "IntArray",
    "LinTSDisjoint",
    "LinTSShared",
    "LogisticTS",
    "PerArmGaussian",
    "Policy",
    "Ranking",
    "absorb",
    "default_joint_dim",
    "evidence",
    "evidence_of",
    "make_policy",
    "mergeable",
    "normal_table",
    "normal_table32",
    "uniform_table",
]

POLICIES: dict[str, type[Policy]] = {
    cls.kind: cls for cls in (BetaTS, LinTSDisjoint, LinTSShared, LogisticTS)
}


def make_policy(kind: str, **params: Any) -> Policy:
    """Build a policy by kind name, e.g. ``make_policy("lin_ts_disjoint", dim=16)``."""
    try:
        cls = POLICIES[kind]
    except KeyError:
        raise InvalidArgument(
            f"unknown policy kind {kind!r}; expected one of {sorted(POLICIES)}"
        ) from None
    return cls(**params)
