"""bandit-engine: Thompson-sampling bandits served over gRPC.

The public face. Researchers and embedding applications use these names;
the packages behind them are ``core`` (the engine), ``policies``,
``kernels``, ``store``, ``stream`` (Kafka mode) and ``server`` (gRPC).
"""

from __future__ import annotations

from bandit_engine._exceptions import (
    AlreadyExists,
    BanditError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    StoreError,
    Unavailable,
)
from bandit_engine.core import (
    ArmFeatures,
    ArmInfo,
    Context,
    Decision,
    Engine,
    ExperimentConfig,
    ExperimentInfo,
    FeatureSpace,
    FeedbackResult,
    Limits,
    RecommendItem,
    feature_hash,
)
from bandit_engine.policies import MAX_ABS_FEATURE, POLICIES, Policy, Ranking, make_policy

__version__ = "0.1.0"

__all__ = [
    "MAX_ABS_FEATURE",
    "POLICIES",
    "AlreadyExists",
    "ArmFeatures",
    "ArmInfo",
    "BanditError",
    "Context",
    "Decision",
    "Engine",
    "ExperimentConfig",
    "ExperimentInfo",
    "FailedPrecondition",
    "FeatureSpace",
    "FeedbackResult",
    "InvalidArgument",
    "Limits",
    "NotFound",
    "Policy",
    "Ranking",
    "RecommendItem",
    "ResourceExhausted",
    "StoreError",
    "Unavailable",
    "__version__",
    "feature_hash",
    "make_policy",
]
