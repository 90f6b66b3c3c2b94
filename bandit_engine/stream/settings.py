"""Where Kafka mode's logs live: settings and topic creation.

Records are keyed by event id and put on the partition that owns it
(``partitioner.owner_partition``), so a decision and the engine's own
rewards share a partition number and one learner sees both; a reward that
another producer put elsewhere is forwarded there by the learner. The
decisions and feedback topics need equal partition counts.

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

import logging
import os
from dataclasses import dataclass
from typing import Any

from bandit_engine._exceptions import InvalidArgument

log = logging.getLogger(__name__)

__all__ = ["KafkaSettings", "ensure_topics"]


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


async def ensure_topics(settings: KafkaSettings) -> int:
    """Create the three topics if missing (with ``settings.partitions``
    partitions), and return the partition count of the decisions and
    feedback topics; ``InvalidArgument`` naming both if they differ."""
    import asyncio

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
        logs = [settings.decisions_topic, settings.feedback_topic]
        for _ in range(100):  # a new topic's metadata may take a moment
            counts = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(logs)}
            if all(counts.get(t) for t in logs):
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"no partitions known for the topics {logs}: {counts}")
    finally:
        await admin.close()
    n_dec, n_fb = counts[settings.decisions_topic], counts[settings.feedback_topic]
    if n_dec != n_fb:
        raise InvalidArgument(
            f"the decisions topic {settings.decisions_topic!r} has {n_dec} partitions and "
            f"the feedback topic {settings.feedback_topic!r} has {n_fb}: they need equal "
            "counts (a reward is joined on its decision's partition number)"
        )
    return n_dec
