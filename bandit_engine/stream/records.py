"""Log records: decisions and rewards as the topics hold them.

The decisions topic holds ``bandit.v1.DecisionRecord`` (``proto/bandit/v1/
log.proto``), keyed by event id. The feedback topic takes the protobuf
``bandit.v1.FeedbackRecord`` or this JSON object (UTF-8), so any producer
can write rewards::

    {"event_id": "9f1c...", "arm_id": "nice", "reward": 1.0, "timestamp": 1764100000.5}

``timestamp`` (seconds since the Unix epoch) is optional; without it the
Kafka message timestamp is used. Protobuf reads and writes the messages;
this module converts them to and from the core's ``DecisionRow`` and
``FeedbackEvent``.
"""

from __future__ import annotations

import json
import math

import numpy as np

from bandit_engine._proto.bandit.v1 import log_pb2
from bandit_engine.core.challengers import ShadowRecord
from bandit_engine.core.ports import DecisionRow, FeedbackEvent

__all__ = [
    "FeedbackParseError",
    "decision_x",
    "decision_x_bytes",
    "decode_decision",
    "decode_feedback",
    "encode_decision",
    "encode_feedback",
    "feedback_fields",
    "parse_feedback",
    "shadow_msg",
    "shadow_of",
]


#: ``DecisionRecord.propensity_kind`` (bandit.v1.PropensityKind's numbers)
_KIND_TO_RECORD = {"first_slot": 1, "per_slot": 2}


def encode_decision(row: DecisionRow) -> bytes:
    """A decision as the decisions topic holds it (``DecisionRecord``)."""
    return log_pb2.DecisionRecord(
        event_id=row.event_id,
        experiment_id=row.experiment_id,
        created_at=row.created_at,
        deadline=row.deadline,
        model_version=row.model_version,
        x_f64=np.ascontiguousarray(row.x, dtype="<f8").tobytes(),
        arms=row.arms,
        slots=row.slots,
        scores=row.scores,
        propensities=row.propensities,
        candidates=row.candidates,
        propensity_kind=_KIND_TO_RECORD[row.propensity_kind],
        prefix_propensities=row.prefix_propensities,
        shadow=None if row.shadow is None else shadow_msg(row.shadow),
    ).SerializeToString()


def shadow_msg(rec: ShadowRecord) -> log_pb2.ShadowRanking:
    """A shadow ranking as a decision record carries it."""
    return log_pb2.ShadowRanking(
        names=rec.names, pi=rec.pi.tolist(), dm=rec.dm.tolist(), q=rec.q, p=rec.p
    )


def shadow_of(rec: log_pb2.DecisionRecord) -> ShadowRecord | None:
    """The shadow ranking a decision record carries (None if it has none, or
    a malformed one: the decision is still learned from)."""
    if not rec.HasField("shadow"):
        return None
    m = rec.shadow
    n = len(m.names)
    if len(m.pi) != n or len(m.dm) != n or not 0.0 < m.p <= 1.0:
        return None
    pi, dm = np.array(m.pi, dtype=np.float64), np.array(m.dm, dtype=np.float64)
    if not (np.isfinite(pi).all() and np.isfinite(dm).all() and math.isfinite(m.q)):
        return None
    return ShadowRecord(m.p, m.q, tuple(m.names), pi, dm)


def decode_decision(value: bytes | None) -> DecisionRow:
    """A ``DecisionRecord`` as a ``DecisionRow``; ValueError if the bytes are
    not one (protobuf cannot parse them, or the context is not whole
    float64s)."""
    rec = log_pb2.DecisionRecord()
    try:
        rec.ParseFromString(value or b"")
    except Exception as exc:
        raise ValueError(f"not a DecisionRecord ({len(value or b'')} bytes): {exc}") from None
    return DecisionRow(
        rec.event_id,
        rec.experiment_id,
        rec.created_at,
        rec.deadline,
        rec.model_version,
        decision_x(rec),
        tuple(rec.arms),
        tuple(rec.scores),
        tuple(rec.propensities),
        tuple(rec.candidates),
        tuple(rec.slots),
        "per_slot" if rec.propensity_kind == _KIND_TO_RECORD["per_slot"] else "first_slot",
        tuple(rec.prefix_propensities),
        shadow_of(rec),
    )


def encode_feedback(event: FeedbackEvent) -> bytes:
    """A reward as the feedback topic holds it (``FeedbackRecord``)."""
    return log_pb2.FeedbackRecord(
        event_id=event.event_id,
        arm_id=event.arm_id,
        reward=event.reward,
        timestamp=event.timestamp,
    ).SerializeToString()


def decode_feedback(value: bytes | None, message_ts_ms: int) -> FeedbackEvent:
    """A feedback message (protobuf or JSON), checked; ``FeedbackParseError``
    (with its dead-letter reason) if it cannot be used."""
    return FeedbackEvent(*feedback_fields(value, message_ts_ms))


def decision_x_bytes(rec: log_pb2.DecisionRecord) -> bytes:
    """A decision's context as little-endian float64 bytes (``x_f64``, else ``x``)."""
    if rec.x_f64:
        return rec.x_f64
    return np.asarray(rec.x, dtype="<f8").tobytes()


def decision_x(rec: log_pb2.DecisionRecord) -> np.ndarray:
    """A decision's context vector; raises ValueError if ``x_f64`` is not whole float64s."""
    if rec.x_f64:
        if len(rec.x_f64) % 8:
            raise ValueError(f"x_f64 has {len(rec.x_f64)} bytes, not a multiple of 8")
        return np.frombuffer(rec.x_f64, dtype="<f8").astype(np.float64)
    return np.asarray(rec.x, dtype=np.float64)


class FeedbackParseError(ValueError):
    """A feedback message that cannot be used; ``reason`` is the dead-letter reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def feedback_fields(
    value: bytes | None, message_ts_ms: int, msg: log_pb2.FeedbackRecord | None = None
) -> tuple[str, str, float, float]:
    """Decode a feedback message (protobuf or JSON) and check its fields:
    ``(event_id, arm_id, reward, timestamp)``, the timestamp defaulting to the
    message's. Raises ``FeedbackParseError``. ``msg``: a message object to
    parse into, reused by a caller that decodes many (one per thread)."""
    if not value:
        raise FeedbackParseError("malformed", "empty message")
    if value[:1] == b"{":
        try:
            obj = json.loads(value)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            for name in ("event_id", "arm_id", "reward"):
                if name not in obj:
                    raise ValueError(f"missing field {name!r}")
            event_id, arm_id, reward = obj["event_id"], obj["arm_id"], obj["reward"]
            for name, v in (("event_id", event_id), ("arm_id", arm_id)):
                if not isinstance(v, str):
                    raise ValueError(f"{name} {v!r} is not a string")
            if isinstance(reward, bool) or not isinstance(reward, (int, float)):
                raise ValueError(f"reward {reward!r} is not a number")
            reward = float(reward)
            ts = obj.get("timestamp")
            if ts is not None and (isinstance(ts, bool) or not isinstance(ts, (int, float))):
                raise ValueError(f"timestamp {ts!r} is not a number")
            ts = 0.0 if ts is None else float(ts)
        except (ValueError, TypeError) as exc:
            raise FeedbackParseError("malformed", f"bad JSON feedback: {exc}") from None
    else:
        rec = log_pb2.FeedbackRecord() if msg is None else msg
        try:
            rec.ParseFromString(value)
        except Exception as exc:
            raise FeedbackParseError("malformed", f"bad protobuf feedback: {exc}") from None
        event_id, arm_id, reward, ts = rec.event_id, rec.arm_id, rec.reward, rec.timestamp
    if not event_id or not arm_id:
        raise FeedbackParseError("malformed", "event_id and arm_id are required")
    if not math.isfinite(reward):
        raise FeedbackParseError("invalid", f"reward={reward!r} is not finite")
    if not math.isfinite(ts):
        raise FeedbackParseError("invalid", f"timestamp={ts!r} is not finite")
    if ts == 0.0:
        ts = message_ts_ms / 1000.0
    return event_id, arm_id, reward, ts


def parse_feedback(value: bytes | None, message_ts_ms: int) -> log_pb2.FeedbackRecord:
    """Decode a feedback message (protobuf or JSON) and check its fields."""
    event_id, arm_id, reward, ts = feedback_fields(value, message_ts_ms)
    return log_pb2.FeedbackRecord(event_id=event_id, arm_id=arm_id, reward=reward, timestamp=ts)
