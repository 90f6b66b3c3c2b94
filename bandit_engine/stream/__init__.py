"""Kafka mode: settings, log records, the producer, and the learner.

Nothing here imports aiokafka until a producer or consumer is started.
``Learner``, ``run_learner`` and the learner's record decoders
(``decode_decisions``, ``decode_rewards``), all of
``bandit_engine.stream.learner``, are imported on first use.
"""

from typing import TYPE_CHECKING, Any

from bandit_engine.stream.partitioner import FORWARDED_FROM, OwnerPartitioner, owner_partition
from bandit_engine.stream.producer import KafkaEventLog, LogProducer
from bandit_engine.stream.records import (
    FeedbackParseError,
    decision_x,
    decision_x_bytes,
    decode_decision,
    decode_feedback,
    encode_decision,
    encode_feedback,
    feedback_fields,
    parse_feedback,
)
from bandit_engine.stream.settings import KafkaSettings, ensure_topics

if TYPE_CHECKING:
    from bandit_engine.stream.learner import (
        Learner,
        decode_decisions,
        decode_rewards,
        run_learner,
    )

__all__ = [
    "FORWARDED_FROM",
    "FeedbackParseError",
    "KafkaEventLog",
    "KafkaSettings",
    "Learner",
    "LogProducer",
    "OwnerPartitioner",
    "decision_x",
    "decision_x_bytes",
    "decode_decision",
    "decode_decisions",
    "decode_feedback",
    "decode_rewards",
    "encode_decision",
    "encode_feedback",
    "ensure_topics",
    "feedback_fields",
    "owner_partition",
    "parse_feedback",
    "run_learner",
]


_LEARNER = ("Learner", "decode_decisions", "decode_rewards", "run_learner")


def __getattr__(name: str) -> Any:
    if name in _LEARNER:
        from bandit_engine.stream import learner

        return getattr(learner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
