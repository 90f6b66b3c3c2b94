"""bandit-engine: Thompson-sampling bandits served over gRPC."""

from __future__ import annotations

from bandit_engine._exceptions import (
    AlreadyExists,
    BanditError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    StoreError,
    Unavailable,
)
from bandit_engine.policies import POLICIES, Policy, make_policy

__version__ = "0.1.0"

__all__ = [
    "POLICIES",
    "AlreadyExists",
    "BanditError",
    "InvalidArgument",
    "NotFound",
    "Policy",
    "ResourceExhausted",
    "StoreError",
    "Unavailable",
    "__version__",
    "make_policy",
]
