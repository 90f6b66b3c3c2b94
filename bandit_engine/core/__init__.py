"""The engine's core: experiments, decisions, the embedded reward join, the
journal of open decisions, the decision writer and recovery.

The core imports no transport: no gRPC, Kafka client, database driver or
protobuf. It reaches the world through its ports (``bandit_engine.core.ports``):
a ``Store`` for state and, in Kafka mode, an ``EventLog``.
"""

from bandit_engine.core.click_models import CLICK_MODELS, ClickModel, default_examination
from bandit_engine.core.config import ExperimentConfig, Limits, check_id
from bandit_engine.core.engine import Engine
from bandit_engine.core.event_ids import decision_time
from bandit_engine.core.ports import (
    ArmRow,
    DecisionRow,
    EventLog,
    FeedbackEvent,
    RewardRow,
    Snapshot,
    Store,
)
from bandit_engine.core.types import (
    ArmInfo,
    Context,
    Decision,
    ExperimentInfo,
    FeedbackResult,
    RecommendItem,
)
from bandit_engine.features import ArmFeatures, FeatureSpace, feature_hash

__all__ = [
    "CLICK_MODELS",
    "ArmFeatures",
    "ArmInfo",
    "ArmRow",
    "ClickModel",
    "Context",
    "Decision",
    "DecisionRow",
    "Engine",
    "EventLog",
    "ExperimentConfig",
    "ExperimentInfo",
    "FeatureSpace",
    "FeedbackEvent",
    "FeedbackResult",
    "Limits",
    "RecommendItem",
    "RewardRow",
    "Snapshot",
    "Store",
    "check_id",
    "decision_time",
    "default_examination",
    "feature_hash",
]
