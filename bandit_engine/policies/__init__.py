"""Thompson-sampling policies: one interface (``Policy``), one module each."""

from __future__ import annotations

from typing import Any

from .._exceptions import InvalidArgument
from .base import MAX_ABS_FEATURE, Policy, Ranking
from .beta import BetaTS
from .lin_disjoint import LinTSDisjoint
from .lin_shared import LinTSShared
from .logistic import LogisticTS

__all__ = [
    "MAX_ABS_FEATURE",
    "POLICIES",
    "BetaTS",
    "LinTSDisjoint",
    "LinTSShared",
    "LogisticTS",
    "Policy",
    "Ranking",
    "make_policy",
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
