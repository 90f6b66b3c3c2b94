"""Rewards on a partition that does not own their event id: forwarded, once.

The learner's parts over a ``FakeLearnerStore``, two partition numbers and
an owner map; the forwarded copies are recorded, then fed to the owner's
partition as the broker would hand them back.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Sequence
from typing import Any, Literal, TypeAlias

import numpy as np
import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord
from fakes import FakeLearnerStore
from learner_world import SETTINGS, T0, DeadLetters, decision_value, seeded_store

from bandit_engine.core import FeedbackEvent
from bandit_engine.store import LearnerOffsets
from bandit_engine.stream import FORWARDED_FROM, OwnerPartitioner, encode_feedback, owner_partition
from bandit_engine.stream.learner import (
    Committer,
    JoinState,
    PosteriorUpdate,
    decode_decisions,
    decode_rewards,
)

Record: TypeAlias = ConsumerRecord[bytes, bytes]
OWNER = {"e0": 0, "e1": 1, "e2": 0}


def rec(
    topic: str, p: int, offset: int, value: bytes, key: bytes | None, ts_ms: int, headers: Any = ()
) -> Record:
    return ConsumerRecord(topic, p, offset, ts_ms, 0, key, value, None, 0, len(value), headers)


def decision(p: int, offset: int, ev: str) -> Record:
    value = decision_value(ev, [0], T0, T0 + 1e6, np.array([1.0, 2.0]))
    return rec("d", p, offset, value, ev.encode(), int(T0 * 1000))


def reward(p: int, offset: int, ev: str, arm: str = "a0", headers: Any = ()) -> Record:
    value = encode_feedback(FeedbackEvent(ev, arm, 1.0, T0 + 1))
    return rec("f", p, offset, value, ev.encode(), int(T0 * 1000) + 1, headers)


class Sink:
    """A forward sink that records what it was asked to write, as the broker
    would then hold it; ``fail`` makes the next acknowledgement fail."""

    def __init__(self) -> None:
        self.log: list[tuple[int, bytes | None, bytes, int | None, list[tuple[str, bytes]]]] = []
        self.fail = False

    async def _send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Awaitable[None]:
        assert topic == SETTINGS.feedback_topic and partition is not None and value is not None
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail:
            self.fail = False
            fut.set_exception(RuntimeError("broker down"))
        else:
            self.log.append((partition, key, value, timestamp_ms, list(headers or ())))
            fut.set_result(None)
        return fut

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Awaitable[Any]:
        return self._send(topic, value, key, partition, timestamp_ms, headers)

    def records(self, p: int, first_offset: int = 0) -> list[Record]:
        """The copies written to partition ``p``, as a consumer reads them."""
        out: list[Record] = []
        for part, key, value, ts, headers in self.log:
            if part == p:
                out.append(rec("f", p, first_offset + len(out), value, key, ts or 0, headers))
        return out


class Learner2:
    """The learner's parts over partitions 0 and 1."""

    def __init__(self, store: FakeLearnerStore, sink: Sink) -> None:
        self.store, self.sink = store, sink
        self.join = JoinState(lateness=1.0, orphan_grace=5.0, owner=OWNER.__getitem__)
        self.dead = DeadLetters()
        self.committer = Committer(
            store, SETTINGS, self.join, clock=lambda: T0 + 2, dead_letters=self.dead,
            forward_sink=sink,
        )  # fmt: skip
        self.at: dict[int, LearnerOffsets] = {}

    async def start(self) -> None:
        self.at = await self.committer.restore({0, 1})

    async def read(self, p: int, decisions: list[Record], rewards: list[Record]) -> None:
        """Read partition ``p`` of both logs from the resume points."""
        off = self.at[p]
        rows = decode_decisions([r for r in decisions if r.offset >= off.dec_resume])
        assert await self.committer.take_decisions(p, rows)
        self.join.take_rewards(p, decode_rewards([r for r in rewards if r.offset >= off.fb_resume]))

    async def commit(self, fail: Literal["before", "after"] | None = None) -> bool:
        if fail is not None:
            self.store.fail_next_commit(fail)
        ok = await self.committer.commit()
        if self.committer.needs_reset:
            self.at = await self.committer.reset()
        return ok

    def applied(self) -> int:
        n = 0
        for c in self.store.committed:
            assert isinstance(c.update, PosteriorUpdate)
            n += len(c.update.events)
        return n

    def counters(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (_, name), n in self.store.learner_counters().items():
            out[name] = out.get(name, 0) + n
        return out


@pytest.mark.parametrize("fail", [None, "before", "after"])
def test_a_forward_is_acknowledged_before_its_commit_and_counts_once(
    fail: Literal["before", "after"] | None,
) -> None:
    """A reward for e0 (owned by partition 0) read on partition 1 is copied to
    partition 0 before its offset commits. A commit that fails before its
    transaction (a crash between the acknowledgement and the commit) makes
    the learner forward it again; the owner applies one copy, counts the
    other as ``duplicate_forward`` and dead-letters nothing."""

    async def main() -> None:
        sink = Sink()
        lr = Learner2(seeded_store(), sink)
        await lr.start()
        decisions0 = [decision(0, 0, "e0")]
        rewards1 = [reward(1, 0, "e0")]
        await lr.read(0, decisions0, [])
        await lr.read(1, [], rewards1)
        assert sink.log == []  # nothing is forwarded before the commit
        ok = await lr.commit(fail)
        assert ok is (fail is None)
        assert len(sink.log) == 1  # acknowledged before the transaction
        if fail is not None:  # reloaded: read again from the committed positions
            await lr.read(0, decisions0, [])
            await lr.read(1, [], rewards1)
            assert await lr.commit()
        copies = sink.records(0)
        assert len(copies) == (2 if fail == "before" else 1)
        for c in copies:
            assert (c.key, c.value, c.timestamp) == (
                b"e0",
                rewards1[0].value,
                rewards1[0].timestamp,
            )
            assert list(c.headers) == [(FORWARDED_FROM, b"1:0")]
        assert lr.applied() == 0
        await lr.read(0, [], copies)
        assert await lr.commit()
        assert lr.applied() == 1
        c = lr.counters()
        assert c["rewards_forwarded"] == 1, c
        assert c.get("duplicate_forward", 0) == (1 if fail == "before" else 0), c
        assert not {k: v for k, v in c.items() if k.startswith("dead_")}, c
        assert lr.dead.sent == []
        lr.committer.close()

    asyncio.run(main())


def test_a_replayed_reward_is_not_forwarded_again() -> None:
    """After a commit, a restarted learner replays partition 1 from its resume
    point (held back by a reward joined to a pending decision): the reward
    forwarded before the commit is not forwarded again."""

    async def main() -> None:
        store, sink = seeded_store(), Sink()
        lr = Learner2(store, sink)
        await lr.start()
        decisions1 = [decision(1, 0, "e1")]
        rewards1 = [reward(1, 0, "e1"), reward(1, 1, "e0")]
        await lr.read(1, decisions1, rewards1)
        assert await lr.commit()
        assert len(sink.log) == 1
        lr.committer.close()
        again = Learner2(store, sink)  # a crash: nothing in memory
        await again.start()
        assert again.at[1].fb_resume == 0  # the replay covers the forwarded record
        await again.read(1, decisions1, rewards1)
        assert await again.commit()
        assert len(sink.log) == 1
        assert again.applied() == 1 and again.counters()["rewards_forwarded"] == 1
        again.committer.close()

    asyncio.run(main())


def test_a_failed_forward_commits_nothing() -> None:
    """A forward that is not acknowledged fails the commit before its
    transaction; after the reload the reward is forwarded and committed."""

    async def main() -> None:
        store, sink = seeded_store(), Sink()
        lr = Learner2(store, sink)
        await lr.start()
        rewards1 = [reward(1, 0, "e0")]
        await lr.read(1, [], rewards1)
        sink.fail = True
        assert not await lr.commit()
        assert store.commit_calls == 0 and store.learner_offsets(SETTINGS.group_id) == {}
        await lr.read(1, [], rewards1)
        assert await lr.commit()
        assert len(sink.log) == 1
        assert store.learner_offsets(SETTINGS.group_id)[1].fb_next == 1
        assert lr.counters() == {"rewards_forwarded": 1}
        lr.committer.close()

    asyncio.run(main())


def test_a_copy_is_never_forwarded_again() -> None:
    """A copy read on a partition that does not own its event id (topics
    repartitioned under it) waits there as any reward and, without its
    decision, is dead-lettered as unknown; it is not forwarded."""

    async def main() -> None:
        store, sink = seeded_store(), Sink()
        lr = Learner2(store, sink)
        await lr.start()
        await lr.read(1, [], [reward(1, 0, "e2", headers=[(FORWARDED_FROM, b"3:9")])])
        lr.join.advance(T0 + 100)
        assert await lr.commit()
        assert sink.log == []
        assert lr.counters() == {"dead_unknown_event": 1}
        lr.committer.close()

    asyncio.run(main())


def test_owner_partition_is_the_java_clients_and_aiokafkas_choice() -> None:
    """The owner of a key is where aiokafka's default partitioner (murmur2,
    as the Java client) puts it, and ``OwnerPartitioner`` agrees."""
    rng = random.Random(1)
    ours = OwnerPartitioner()
    for _ in range(500):
        key = rng.randbytes(rng.randrange(0, 40))
        n = rng.randrange(1, 13)
        parts = list(range(n))
        assert owner_partition(key, n) == DefaultPartitioner()(key, parts, parts)
        assert ours(key, parts, parts) == owner_partition(key, n)
    assert ours(None, [0, 1, 2], [2]) == 2
    # Kafka's own test vectors (clients/.../UtilsTest.java, testMurmur2)
    assert owner_partition(b"21", 1 << 31) == -973932308 & 0x7FFFFFFF
    with pytest.raises(ValueError, match="partitions=0"):
        owner_partition(b"x", 0)
