"""The learner's consumer loop: aiokafka in, the join state, commits out.

One consumer reads both topics with plain ``getmany``. The consumer group
assigns the same partition numbers of the two topics to the same member
(range assignor). On assignment, and after a failed commit, the join state
is rebuilt from the store and the consumer seeks to the resume offsets;
before partitions are revoked the learner commits, then rebuilds from what
is committed (records taken in while that commit was on the database
thread are in memory but not in the commit: they are read again rather
than counted twice or lost with the partition).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from bandit_engine.store import LearnerOffsets
from bandit_engine.stream.learner.commit import Committer
from bandit_engine.stream.learner.decode import decode_decisions, decode_rewards
from bandit_engine.stream.learner.flow import FlowControl
from bandit_engine.stream.settings import KafkaSettings

__all__ = ["ConsumerLoop"]

log = logging.getLogger(__name__)


class ConsumerLoop:
    """Consume the decisions and feedback topics into a ``Committer``'s join
    state, and commit every ``commit_interval`` seconds (see the learner's
    ``Learner`` for the settings)."""

    def __init__(
        self,
        settings: KafkaSettings,
        committer: Committer,
        *,
        commit_interval: float = 0.1,
        max_records: int = 20_000,
        fetch_max_wait_ms: int = 20,
        group_instance_id: str | None = None,
        hold_rewards: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= fetch_max_wait_ms <= 60_000:
            raise ValueError(f"fetch_max_wait_ms={fetch_max_wait_ms!r} must be in [1, 60000]")
        self.settings = settings
        self.committer = committer
        self.join = committer.join
        self.commit_interval = commit_interval
        self.max_records = max_records
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.group_instance_id = group_instance_id
        self.hold_rewards = hold_rewards
        self.clock = clock
        self.ready = asyncio.Event()
        self.flow: FlowControl | None = None
        self._consumer: Any = None
        self._inflight: asyncio.Task[bool] | None = None

    # ------------------------------------------------------- state rebuilds
    def _seek(self, positions: Mapping[int, LearnerOffsets]) -> None:
        from aiokafka import TopicPartition

        s = self.settings
        for p, off in positions.items():
            if self.flow is not None:
                self.flow.forget(p)
            self._consumer.seek(TopicPartition(s.decisions_topic, p), off.dec_resume)
            self._consumer.seek(TopicPartition(s.feedback_topic, p), off.fb_resume)

    async def restore(self, partitions: set[int]) -> None:
        """Rebuild ``partitions`` from the store and seek to their resume points."""
        self._seek(await self.committer.restore(partitions))
        log.info("restored partitions %s", sorted(partitions))

    async def settle(self) -> None:
        """Wait for the commit in flight; reload from the store if it failed."""
        if self._inflight is not None:
            await self._inflight
            self._inflight = None
        if self.committer.needs_reset:
            self._seek(await self.committer.reset())

    async def _revoke(self, partitions: set[int]) -> None:
        await self.settle()
        if self.join.partitions:
            await self.committer.commit()
            await self.settle()
            self._seek(await self.committer.reset())
        for p in partitions:
            self.join.revoke(p)
            if self.flow is not None:
                self.flow.forget(p)

    # ------------------------------------------------------------------ run
    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then commit and leave the group."""
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
        from aiokafka.abc import ConsumerRebalanceListener
        from aiokafka.coordinator.assignors.range import RangePartitionAssignor

        s = self.settings
        # dead letters, and forwarded rewards (acknowledged before their commit)
        producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=5, acks="all")
        await producer.start()
        self.committer.dead_letters = producer
        self.committer.forward_sink = producer
        self._consumer = consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap,
            group_id=s.group_id,
            group_instance_id=self.group_instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            max_partition_fetch_bytes=4 * 1024 * 1024,
            # latency: do not park the fetch for aiokafka's default 500 ms (but
            # see the learn --fetch-max-wait-ms help for slow-storage brokers)
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            # a SIGKILLed member is noticed in 6 s (the broker's usual minimum), not 10
            session_timeout_ms=6000,
            heartbeat_interval_ms=2000,
        )
        self.flow = FlowControl(
            consumer,
            self.join,
            s.decisions_topic,
            s.feedback_topic,
            hold_rewards=self.hold_rewards,
            clock=self.clock,
        )
        loop = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                await loop._revoke({tp.partition for tp in revoked})

            async def on_partitions_assigned(self, assigned: Any) -> None:
                await loop.restore({tp.partition for tp in assigned})
                loop.ready.set()

        consumer.subscribe([s.decisions_topic, s.feedback_topic], listener=Listener())
        await consumer.start()
        try:
            await self._loop(stop)
            await self.settle()
            await self.committer.commit()
            await self.settle()
        finally:
            await consumer.stop()
            await producer.stop()
            self.committer.dead_letters = None
            self.committer.forward_sink = None

    async def _loop(self, stop: asyncio.Event) -> None:
        s = self.settings
        join, committer, flow = self.join, self.committer, self.flow
        assert flow is not None
        last_commit = 0.0
        while not stop.is_set():
            fetched = await self._consumer.getmany(timeout_ms=20, max_records=self.max_records)
            epoch = join.epoch
            # decisions first: the rewards of this fetch may join them at once
            for tp, records in sorted(
                fetched.items(), key=lambda kv: kv[0].topic != s.decisions_topic
            ):
                p = tp.partition
                if join.epoch != epoch:
                    break  # fetched before a rebuild: void (read again)
                if p not in join.partitions:
                    continue
                if tp.topic == s.decisions_topic:
                    await committer.take_decisions(p, decode_decisions(records))
                else:
                    for batch in flow.take_rewards(p, records):
                        join.take_rewards(p, decode_rewards(batch))
            if join.epoch == epoch:
                for p in join.partitions:  # those the decisions just read let through
                    for batch in flow.release(p):
                        join.take_rewards(p, decode_rewards(batch))
            if committer.needs_reset:  # a commit failed: what was read since is void
                await self.settle()
                continue
            flow.regulate()
            now = self.clock()
            join.advance(now, flow.behind)
            in_flight = self._inflight is not None and not self._inflight.done()
            if not in_flight and now - last_commit >= self.commit_interval:
                await self.settle()
                if not committer.needs_reset:
                    self._inflight = asyncio.create_task(committer.commit())
                last_commit = now
