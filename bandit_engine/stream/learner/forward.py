"""Rewards on another partition than their decision's: forwarded to the owner's.

A decision lives on the partition that owns its event id
(``bandit_engine.stream.partitioner.owner_partition``); a producer that hashes
keys otherwise (librdkafka's CRC32 default, or no key at all) puts its
rewards anywhere in the feedback topic. The learner that reads such a reward
on partition q, and finds no decision for it there, copies the record to the
owner's feedback partition p, as a Kafka Streams repartition step does:
same key, value, timestamp and headers, plus ``bandit-forwarded-from:
<q>:<offset>``. The learner that owns p joins the copy like any reward.

Exactly once. The join state (``JoinState``) collects the forwards with the
other results of the records it takes; a commit sends them and waits for the
broker's acknowledgement (acks=all) before its transaction, which is what
moves q's committed offsets past them. If a forward fails, nothing is
committed and the state is reloaded (``Committer``). A crash after the
acknowledgement and before the commit forwards the record again on restart:
the owner's join keeps the sources of the copies joined to each pending
decision, and drops a second copy of one source silently (counted as
``duplicate_forward``, not as a dead letter). A replayed record that was
forwarded before the commit is skipped. A copy (a record with the header) is
never forwarded again; the decisions and feedback topics must have equal
partition counts (``ensure_topics`` refuses to start otherwise).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, NamedTuple, Protocol

from bandit_engine.stream.partitioner import FORWARDED_FROM

__all__ = ["Forward", "ForwardSink", "forward", "source_of"]

Headers = Sequence[tuple[str, bytes]]


class Forward(NamedTuple):
    """A feedback record to copy to the partition that owns its event id."""

    partition: int  # the owner's partition, where the copy goes
    source: int  # the partition it was read on
    offset: int  # its offset there
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: Headers

    def copy_headers(self) -> list[tuple[str, bytes]]:
        """The record's headers and ``FORWARDED_FROM``."""
        return [*self.headers, (FORWARDED_FROM, f"{self.source}:{self.offset}".encode())]


class ForwardSink(Protocol):
    """Where forwarded rewards are written (an aiokafka producer): ``send``
    returns, once the record is queued, an awaitable of its acknowledgement."""

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Headers | None = None,
    ) -> Awaitable[Any]: ...


async def forward(sink: ForwardSink, topic: str, forwards: Sequence[Forward]) -> None:
    """Write the copies to ``topic`` and wait for every acknowledgement;
    raises if any is not acknowledged."""
    deliveries = [
        await sink.send(
            topic,
            value=f.value,
            key=f.key,
            partition=f.partition,
            timestamp_ms=f.timestamp_ms,
            headers=f.copy_headers(),
        )
        for f in forwards
    ]
    for d in deliveries:
        await d


def source_of(headers: Headers) -> bytes | None:
    """The ``FORWARDED_FROM`` header's value, None on a record that is no copy."""
    for name, value in headers:
        if name == FORWARDED_FROM:
            return value
    return None
