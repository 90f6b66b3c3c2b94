"""Decision and feedback logs in Kafka: settings, topics, records, producer.

Records are keyed by event id, so with equal partition counts a decision and
its rewards land in the same partition number and one learner sees both.

The feedback topic takes the protobuf ``FeedbackRecord`` or this JSON
object (UTF-8), so any producer can write rewards::

    {"event_id": "9f1c...", "arm_id": "nice", "reward": 1.0, "timestamp": 1764100000.5}

``timestamp`` (seconds since the Unix epoch) is optional; without it the
Kafka message timestamp is used.

``LogProducer`` runs an aiokafka producer on its own event loop thread, so
the threaded gRPC server hands records over without waiting on the broker:
``publish`` appends to a bounded buffer that the loop drains in batches.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from bandit_engine._exceptions import InvalidArgument
from bandit_engine._proto.bandit.v1 import log_pb2

log = logging.getLogger(__name__)

__all__ = [
    "FeedbackParseError",
    "KafkaSettings",
    "LogProducer",
    "decision_x",
    "decision_x_bytes",
    "ensure_topics",
    "feedback_fields",
    "parse_feedback",
]


@dataclass(frozen=True)
class KafkaSettings:
    """Where the logs live. ``BANDIT_KAFKA_*`` environment variables set the defaults."""

    bootstrap: str
    decisions_topic: str = "bandit.decisions"
    feedback_topic: str = "bandit.feedback"
    deadletter_topic: str = "bandit.deadletter"
    partitions: int = 4
    group_id: str = "bandit-learner"
    buffer_records: int = 100_000
    linger_ms: int = 5

    def __post_init__(self) -> None:
        if not self.bootstrap:
            raise InvalidArgument("Kafka bootstrap servers must not be empty")
        if self.partitions < 1:
            raise InvalidArgument(f"partitions={self.partitions!r} must be >= 1")
        if self.buffer_records < 1:
            raise InvalidArgument(f"buffer_records={self.buffer_records!r} must be >= 1")

    @classmethod
    def from_env(cls, bootstrap: str | None = None, **overrides: Any) -> KafkaSettings | None:
        """Settings from arguments, else ``BANDIT_KAFKA_BOOTSTRAP`` and friends; None if unset."""
        bootstrap = bootstrap or os.environ.get("BANDIT_KAFKA_BOOTSTRAP")
        if not bootstrap:
            return None
        env = {
            "decisions_topic": os.environ.get("BANDIT_KAFKA_DECISIONS_TOPIC"),
            "feedback_topic": os.environ.get("BANDIT_KAFKA_FEEDBACK_TOPIC"),
            "deadletter_topic": os.environ.get("BANDIT_KAFKA_DEADLETTER_TOPIC"),
            "group_id": os.environ.get("BANDIT_KAFKA_GROUP_ID"),
        }
        if os.environ.get("BANDIT_KAFKA_PARTITIONS"):
            env["partitions"] = int(os.environ["BANDIT_KAFKA_PARTITIONS"])  # type: ignore[assignment]
        kw: dict[str, Any] = {k: v for k, v in env.items() if v is not None}
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(bootstrap, **kw)


async def ensure_topics(settings: KafkaSettings) -> None:
    """Create the three topics if missing (same partition count for the two logs)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(t, settings.partitions, 1)
            for t in (settings.decisions_topic, settings.feedback_topic, settings.deadletter_topic)
            if t not in existing
        ]
        if wanted:
            resp = await admin.create_topics(wanted)
            for topic, code, *_ in getattr(resp, "topic_errors", []):
                if code not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS (a racing creator)
                    raise RuntimeError(f"cannot create topic {topic!r}: error code {code}")
            log.info("created topics %s", [t.name for t in wanted])
    finally:
        await admin.close()


# ------------------------------------------------------------------ records
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
        except (ValueError, KeyError, TypeError) as exc:
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


# ----------------------------------------------------------------- producer
class LogProducer:
    """Thread-safe front of an aiokafka producer running on its own loop.

    ``publish`` never waits for the broker: it appends to a buffer of at
    most ``buffer_records`` records and returns False when the buffer is
    full (the broker is down or too slow). ``publish_and_wait`` blocks until
    the broker acknowledged the record (acks=all) or the timeout passed.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._buf: deque[tuple[str, bytes, bytes, Future[None] | None]] = deque()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._wake: asyncio.Event | None = None
        self._ready = threading.Event()
        self._stopping = False
        self._error: BaseException | None = None
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="kafka-producer", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced to the constructor
            self._error = exc
            self._ready.set()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _main(self) -> None:
        from aiokafka import AIOKafkaProducer

        await ensure_topics(self.settings)
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap,
            linger_ms=self.settings.linger_ms,
            acks="all",
            max_batch_size=256 * 1024,
        )
        await producer.start()
        self._wake = asyncio.Event()
        if self._buf:  # queued before the event existed: nobody woke us for them
            self._wake.set()
        self._ready.set()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self._drain(producer)
                if self._stopping and not self._buf:
                    break
        finally:
            await producer.stop()

    async def _drain(self, producer: Any) -> None:
        while True:
            with self._lock:
                batch = list(self._buf)
                self._buf.clear()
            if not batch:
                return
            pending = []
            for topic, key, value, fut in batch:
                try:
                    pending.append((await producer.send(topic, value=value, key=key), fut))
                except Exception as exc:
                    self.failed += 1
                    if fut is not None and not fut.done():
                        fut.set_exception(exc)
            for delivery, fut in pending:
                try:
                    await delivery
                    self.sent += 1
                    if fut is not None and not fut.done():
                        fut.set_result(None)
                except Exception as exc:
                    self.failed += 1
                    log.warning("Kafka delivery failed: %s", exc)
                    if fut is not None and not fut.done():
                        fut.set_exception(exc)

    def _enqueue(self, topic: str, key: bytes, value: bytes, fut: Future[None] | None) -> bool:
        with self._lock:
            if len(self._buf) >= self.settings.buffer_records or self._stopping:
                self.dropped += 1
                return False
            first = not self._buf
            self._buf.append((topic, key, value, fut))
        # Wake the sender only for a record that found the buffer empty: the
        # sender drains until it finds it empty, so it takes the others with
        # it. A wake-up per record cost a self-pipe write and a GIL hand-over
        # each (about a third of a Recommend's CPU in Kafka mode).
        wake = self._wake
        if first and wake is not None:
            self._loop.call_soon_threadsafe(wake.set)
        return True

    def publish(self, topic: str, key: bytes, value: bytes) -> bool:
        """Queue a record; False (and counted as dropped) if the buffer is full."""
        return self._enqueue(topic, key, value, None)

    def publish_and_wait(self, topic: str, key: bytes, value: bytes, timeout: float) -> bool:
        """Queue a record and wait for the broker's acknowledgement."""
        fut: Future[None] = Future()
        if not self._enqueue(topic, key, value, fut):
            return False
        try:
            fut.result(timeout)
            return True
        except Exception:
            return False

    def pending(self) -> int:
        with self._lock:
            return len(self._buf)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is buffered (up to ``timeout``), then stop."""
        self._stopping = True
        wake = self._wake
        if wake is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(wake.set)
        self._thread.join(timeout)
