"""Kafka mode's writer: an aiokafka producer on its own event-loop thread,
and the core's ``EventLog`` over it.

``LogProducer`` lets the threaded gRPC server hand records over without
waiting on the broker: ``publish`` appends to a bounded buffer that the loop
drains in batches.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from concurrent.futures import Future
from typing import Any

from bandit_engine.core.ports import DecisionRow, FeedbackEvent
from bandit_engine.stream.partitioner import OwnerPartitioner
from bandit_engine.stream.records import encode_decision, encode_feedback
from bandit_engine.stream.settings import KafkaSettings, ensure_topics

log = logging.getLogger(__name__)

__all__ = ["KafkaEventLog", "LogProducer"]


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
            partitioner=OwnerPartitioner(),
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


class KafkaEventLog:
    """The core's ``EventLog`` on Kafka: decisions and rewards keyed by event
    id, on the partition that owns it (``owner_partition``), so that a
    decision and its rewards share a partition number."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.producer = LogProducer(settings)

    def publish_decision(self, row: DecisionRow) -> bool:
        return self.producer.publish(
            self.settings.decisions_topic, row.event_id.encode(), encode_decision(row)
        )

    def publish_feedback(self, event: FeedbackEvent, timeout: float) -> bool:
        return self.producer.publish_and_wait(
            self.settings.feedback_topic,
            event.event_id.encode(),
            encode_feedback(event),
            timeout,
        )

    def pending(self) -> int:
        return self.producer.pending()

    def close(self) -> None:
        self.producer.close()
