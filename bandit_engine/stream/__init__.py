"""Kafka mode: settings, log records, the producer, and the learner.

Nothing here imports aiokafka until a producer or consumer is started.
"""

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

__all__ = [
    "FeedbackParseError",
    "KafkaEventLog",
    "KafkaSettings",
    "LogProducer",
    "decision_x",
    "decision_x_bytes",
    "decode_decision",
    "decode_feedback",
    "encode_decision",
    "encode_feedback",
    "ensure_topics",
    "feedback_fields",
    "parse_feedback",
]
