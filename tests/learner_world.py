"""Logs and a scripted learner for the learner's tests, without services.

A ``World`` is a decisions log and a feedback log (records as aiokafka
returns them). A ``Run`` is a learner made of its parts: the join state,
the committer over a ``FakeLearnerStore``, flow control over a
``FakeConsumer``; the test decides what is read when, when the clock moves,
which commits fail and when the learner crashes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np
from aiokafka.structs import ConsumerRecord
from fakes import FakeConsumer, FakeLearnerStore

from bandit_engine import ExperimentConfig
from bandit_engine.core import DecisionRow, FeedbackEvent
from bandit_engine.store import ArmRow, LearnerOffsets
from bandit_engine.stream import KafkaSettings, encode_decision, encode_feedback
from bandit_engine.stream.learner import (
    Committer,
    FlowControl,
    JoinState,
    PosteriorUpdate,
    decode_decisions,
    decode_rewards,
)

ARMS = ["a0", "a1", "a2"]
T0 = 1_000_000.0
GRACE = 5.0
LATENESS = 1.0
SETTINGS = KafkaSettings("127.0.0.1:1", decisions_topic="d", feedback_topic="f")

Record: TypeAlias = ConsumerRecord[bytes, bytes]


def record(topic: str, offset: int, value: bytes, key: bytes | None, ts_ms: int) -> Record:
    return ConsumerRecord(topic, 0, offset, ts_ms, 0, key, value, None, 0, len(value), ())


def decision_value(
    ev: str, slots: list[int], t: float, deadline: float, x: np.ndarray, exp: str = "e"
) -> bytes:
    row = DecisionRow(
        event_id=ev,
        experiment_id=exp,
        created_at=t,
        deadline=deadline,
        model_version=0,
        x=x,
        arms=tuple(ARMS[s] for s in slots),
        scores=(),
        propensities=(),
        slots=tuple(slots),
    )
    return encode_decision(row)


@dataclass
class World:
    decisions: list[Record] = field(default_factory=list)
    feedback: list[Record] = field(default_factory=list)
    x_of: dict[bytes, str] = field(default_factory=dict)  # context bytes -> event id
    keys: list[tuple[str, str]] = field(default_factory=list)  # per feedback record


def make_world(
    decisions: list[tuple[str, list[int], float]],
    feedback: list[tuple[float, str, str, float]],
    window: float = 1e6,
    copies: tuple[int, ...] = (),
) -> World:
    """Decisions ``(event, shown slots, time)`` with context (1, i+1), then a
    second copy of the decisions at the indices ``copies`` (a producer's
    retry), and feedback ``(timestamp, event, arm, reward)`` in log order."""
    w = World()
    for i, (ev, shown, t) in enumerate(decisions):
        x = np.array([1.0, float(i + 1)])
        value = decision_value(ev, shown, t, t + window, x)
        w.decisions.append(record("d", i, value, ev.encode(), int(t * 1000)))
        w.x_of[x.astype("<f8").tobytes()] = ev
    for i in copies:
        first = w.decisions[i]
        w.decisions.append(record("d", len(w.decisions), first.value, first.key, first.timestamp))
    for j, (ts, ev, arm, r) in enumerate(feedback):
        value = encode_feedback(FeedbackEvent(ev, arm, r, ts))
        w.feedback.append(record("f", j, value, ev.encode(), int(ts * 1000)))
        w.keys.append((ev, arm))
    return w


def seeded_store() -> FakeLearnerStore:
    """A store with experiment ``e`` (disjoint linear TS, d=2) and arms a0..a2."""
    store = FakeLearnerStore()
    cfg = ExperimentConfig("e", policy="lin_ts_disjoint", dim=2, reward_window_s=1e6)
    store.create_experiment("e", cfg.to_dict(), T0)
    store.upsert_arms([ArmRow("e", a, i, {}, True) for i, a in enumerate(ARMS)])
    return store


class DeadLetters:
    """A dead-letter sink that keeps (reason, feedback offset) of each letter."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        body = json.loads(value)
        self.sent.append((body["reason"], body["offset"]))


class Run:
    """A learner over ``world``, its parts driven as the consumer loop drives them."""

    def __init__(
        self,
        world: World,
        hold: bool = False,
        store: FakeLearnerStore | None = None,
        part: int = 0,
    ):
        self.w = world
        self.part = part
        self.n_partitions: int | None = None  # set: learners share the partitions
        self.snapshot_parts = True
        self.hold = hold
        self.store = store or seeded_store()
        self.clock = T0
        self.dead = DeadLetters()
        self.pos = {"d": 0, "f": 0}
        self.consumer = FakeConsumer(
            {("d", part): len(world.decisions), ("f", part): len(world.feedback)}
        )

    async def start(self) -> None:
        """A new learner process: nothing in memory, everything from the store."""
        self.join = JoinState(lateness=LATENESS, orphan_grace=GRACE)
        self.committer = Committer(
            self.store,
            SETTINGS,
            self.join,
            clock=lambda: self.clock,
            dead_letters=self.dead,
            snapshot_parts=self.snapshot_parts,
        )
        self.committer.n_partitions = self.n_partitions
        self.flow = FlowControl(
            self.consumer, self.join, "d", "f", hold_rewards=self.hold, clock=lambda: self.clock
        )
        self._seek(await self.committer.restore({self.part}))

    def _seek(self, positions: dict[int, LearnerOffsets]) -> None:
        off = positions[self.part]
        self.pos = {"d": off.dec_resume, "f": off.fb_resume}
        self.flow.forget(self.part)

    async def read(self, topic: str, n: int) -> None:
        """A fetch of up to ``n`` records of one topic, then the loop's turn."""
        log = self.w.decisions if topic == "d" else self.w.feedback
        recs = log[self.pos[topic] : self.pos[topic] + n]
        self.pos[topic] += len(recs)
        p = self.part
        if topic == "d":
            await self.committer.take_decisions(p, decode_decisions(recs))
        else:
            for batch in self.flow.take_rewards(p, recs):
                self.join.take_rewards(p, decode_rewards(batch))
        for batch in self.flow.release(p):
            self.join.take_rewards(p, decode_rewards(batch))
        self.join.advance(self.clock, self.flow.behind)

    def tick(self, seconds: float) -> None:
        self.clock += seconds
        self.join.advance(self.clock, self.flow.behind)

    async def commit(self, fail: Literal["before", "after"] | None = None) -> bool:
        if fail is not None:
            self.store.fail_next_commit(fail)
        ok = await self.committer.commit()
        if self.committer.needs_reset:  # what the consumer loop does after a failed commit
            self._seek(await self.committer.reset())
        return ok

    async def crash(self) -> None:
        self.committer.close()
        await self.start()

    async def finish(self) -> None:
        """Read both logs to the end, let every orphan expire, commit."""
        ends = (len(self.w.decisions), len(self.w.feedback))
        while self.pos["d"] < ends[0] or self.pos["f"] < ends[1] or self.flow.deferred(self.part):
            await self.read("d", 2)
            await self.read("f", 2)
        self.tick(10 * GRACE)
        assert await self.commit()
        self.committer.close()

    def applied_keys(self) -> list[tuple[str, str]]:
        """(event, arm) of every update that reached the store."""
        out = []
        for c in self.store.committed:
            assert isinstance(c.update, PosteriorUpdate)
            out += [(self.w.x_of[x], ARMS[slot]) for slot, x, *_ in c.update.events]
        return out

    def stored_counters(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (_, name), n in self.store.learner_counters().items():
            out[name] = out.get(name, 0) + n
        return out
