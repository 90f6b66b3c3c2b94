"""Log records as the join takes them: protobuf decodes, this module flattens.

The consumer hands over records (anything with ``offset``, ``timestamp``,
``key`` and ``value``, as aiokafka's ``ConsumerRecord``); a fetched batch is
decoded in one call into a list of plain tuples, which the join state reads
with no protobuf, Kafka or I/O of its own. One message object per batch is
parsed into, record after record: a new message per record costs about as
much again as the parse.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from bandit_engine._proto.bandit.v1 import log_pb2
from bandit_engine.core.challengers import ShadowRecord
from bandit_engine.policies import MAX_ABS_FEATURE
from bandit_engine.stream.records import (
    FeedbackParseError,
    decision_x_bytes,
    feedback_fields,
    shadow_of,
)

__all__ = ["DecisionIn", "LogRecord", "RewardIn", "decode_decisions", "decode_rewards"]


class LogRecord(Protocol):
    """A record of the decisions or feedback log, as the consumer returns it."""

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int:  # milliseconds, the record's Kafka timestamp
        ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


#: A decision record: (offset, Kafka timestamp in ms, event id, experiment
#: id, created_at, deadline, context, shown slots, shadow ranking). The
#: context is little-endian float64 bytes, ``b""`` if it holds a value that
#: is not finite or beyond ``MAX_ABS_FEATURE`` (or is not whole float64s),
#: and None if the record is not a ``DecisionRecord`` at all. The shadow
#: ranking (``records.shadow_of``) is None unless the challengers ranked it.
DecisionIn = tuple[
    int, int, str, str, float, float, bytes | None, tuple[int, ...], ShadowRecord | None
]

#: A feedback record: (offset, key, value, event id, arm id, reward,
#: timestamp, error, Kafka timestamp in ms, headers). The timestamp defaults
#: to the Kafka timestamp; if ``error`` is set the record cannot be used and
#: the fields between are blank. The last two are for a forwarded copy.
RewardIn = tuple[
    int,
    bytes | None,
    bytes,
    str,
    str,
    float,
    float,
    FeedbackParseError | None,
    int,
    Sequence[tuple[str, bytes]],
]


def decode_decisions(records: Iterable[LogRecord]) -> list[DecisionIn]:
    """Decode a batch of decision records, in order."""
    msg = log_pb2.DecisionRecord()
    parse = msg.ParseFromString
    out: list[DecisionIn] = []
    append = out.append
    for r in records:
        try:
            parse(r.value or b"")
            x = msg.x_f64 or decision_x_bytes(msg)
        except Exception:  # protobuf's DecodeError, or a value that is no message
            append((r.offset, r.timestamp, "", "", 0.0, 0.0, None, (), None))
            continue
        s = msg.slots
        append(
            (
                r.offset,
                r.timestamp,
                msg.event_id,
                msg.experiment_id,
                msg.created_at,
                msg.deadline,
                x,
                (s[0],) if len(s) == 1 else tuple(s),
                shadow_of(msg) if msg.HasField("shadow") else None,
            )
        )
    return _check_contexts(out)


def _check_contexts(rows: list[DecisionIn]) -> list[DecisionIn]:
    """Blank the contexts a model must not learn from: one numpy pass over
    the whole batch, and a pass per record only if that one finds any."""
    xs = [r[6] for r in rows if r[6]]
    if all(len(x) % 8 == 0 for x in xs):
        values = np.frombuffer(b"".join(xs), dtype="<f8")
        if bool((np.abs(values) <= MAX_ABS_FEATURE).all()):  # (NaN fails too)
            return rows
    return [r if r[6] is None or _good(r[6]) else (*r[:6], b"", *r[7:]) for r in rows]


def _good(x: bytes) -> bool:
    if len(x) % 8:
        return False
    return bool((np.abs(np.frombuffer(x, dtype="<f8")) <= MAX_ABS_FEATURE).all())


_blank = ("", "", 0.0, 0.0)


def decode_rewards(records: Iterable[LogRecord]) -> list[RewardIn]:
    """Decode and check a batch of feedback records (protobuf or JSON), in order.

    A protobuf message with every field in order is read here; anything else
    (JSON, a bad message) goes through ``feedback_fields``, which says what
    is wrong with it.
    """
    msg = log_pb2.FeedbackRecord()
    parse = msg.ParseFromString
    finite = math.isfinite
    out: list[RewardIn] = []
    append = out.append
    for r in records:
        value = r.value or b""
        ms, headers = r.timestamp, r.headers
        if value[:1] != b"{":
            try:
                parse(value)
            except Exception:  # protobuf's DecodeError; feedback_fields says so
                pass
            else:
                ev, arm, reward, ts = msg.event_id, msg.arm_id, msg.reward, msg.timestamp
                if ev and arm and finite(reward) and finite(ts):
                    ts = ts or ms / 1000.0
                    append((r.offset, r.key, value, ev, arm, reward, ts, None, ms, headers))
                    continue
        try:
            ev, arm, reward, ts = feedback_fields(value, ms, msg)
        except FeedbackParseError as exc:
            append((r.offset, r.key, value, *_blank, exc, ms, headers))
            continue
        append((r.offset, r.key, value, ev, arm, reward, ts, None, ms, headers))
    return out
