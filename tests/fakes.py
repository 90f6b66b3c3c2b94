"""Shared fakes: in-memory stand-ins for services, contract-tested against the real ones.

``FakeLearnerStore`` is a ``LearnerStore`` in memory
(``tests/test_learner_store_contract.py`` runs the same checks against it
and ``MySQLStore``). ``FakeConsumer`` is the part of aiokafka's consumer
that the learner's flow control uses (``ConsumerView``), with log ends the
test sets.
``RecordingEventLog`` is the core's
``EventLog`` in memory, its records encoded as the Kafka topics hold them
(``tests/test_event_log_contract.py`` checks it against ``KafkaEventLog``).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from aiokafka import TopicPartition

from bandit_engine import StoreError
from bandit_engine.core import DecisionRow, FeedbackEvent
from bandit_engine.store import (
    ArmRow,
    HeldRewards,
    LearnerOffsets,
    PolicyChange,
    Snapshot,
    SnapshotPart,
    SnapshotUpdate,
)
from bandit_engine.stream import (
    decode_decision,
    decode_feedback,
    encode_decision,
    encode_feedback,
)

__all__ = ["CommittedUpdate", "FakeConsumer", "FakeLearnerStore", "RecordingEventLog"]


@dataclass(frozen=True)
class CommittedUpdate:
    """An update as a committed transaction ran it."""

    experiment_id: str
    update: SnapshotUpdate
    version: int  # the version it produced


class FakeLearnerStore:
    """A ``LearnerStore`` in memory; one transaction at a time.

    Seeded as a real store is: ``create_experiment``, ``upsert_arms``,
    ``save_snapshot``. ``fail_next_commit("before")`` makes the next
    ``learner_commit`` raise ``StoreError`` without storing anything,
    ``"after"`` raises once everything is stored (the link dropped after
    the COMMIT); ``gate``, if set, is waited for inside ``learner_commit``
    (after ``entered`` is set), so a test can hold a commit on the database
    thread. ``committed`` lists the updates of the transactions that landed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._experiments: dict[str, tuple[dict[str, Any], int]] = {}
        self._arms: dict[str, dict[str, ArmRow]] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._offsets: dict[tuple[str, int], LearnerOffsets] = {}
        self._held: dict[tuple[str, int], tuple[frozenset[int], frozenset[int]]] = {}
        self._counters: dict[tuple[str, str], int] = {}
        self._parts: list[tuple[str, SnapshotPart]] = []
        self.busy: set[str] = set()  # experiments whose row another transaction holds
        self._policy_changes: list[PolicyChange] = []
        self._fail: Literal["before", "after"] | None = None
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.committed: list[CommittedUpdate] = []
        self.commit_calls = 0

    def fail_next_commit(self, when: Literal["before", "after"]) -> None:
        self._fail = when

    # ------------------------------------------------------------- seeding
    def create_experiment(self, experiment_id: str, config: dict[str, Any], now: float) -> None:
        with self._lock:
            if experiment_id in self._experiments:
                raise StoreError(f"experiment {experiment_id!r} exists")
            self._experiments[experiment_id] = (copy.deepcopy(config), 0)
            self._arms[experiment_id] = {}

    def upsert_arms(self, rows: Sequence[ArmRow]) -> None:
        with self._lock:
            for r in rows:
                arms = self._arms.setdefault(r.experiment_id, {})
                old = arms.get(r.arm_id)
                arms[r.arm_id] = r if old is None else ArmRow(**{**vars(old), "active": r.active})
                cfg, changes = self._experiments[r.experiment_id]
                self._experiments[r.experiment_id] = (cfg, changes + 1)

    def save_snapshot(self, snap: Snapshot) -> None:
        with self._lock:
            self._snapshots[snap.experiment_id] = _copy(snap)

    # -------------------------------------------------------- LearnerStore
    def load_experiments(self) -> list[tuple[str, dict[str, Any], int]]:
        with self._lock:
            return [(e, copy.deepcopy(c), n) for e, (c, n) in self._experiments.items()]

    def load_arms(self, experiment_id: str) -> list[ArmRow]:
        with self._lock:
            return sorted(self._arms.get(experiment_id, {}).values(), key=lambda r: r.slot)

    def record_policy_change(self, change: PolicyChange) -> int:
        with self._lock:
            seq = len(self._policy_changes) + 1
            self._policy_changes.append(PolicyChange(**{**change.__dict__, "seq": seq}))
            return seq

    def policy_changes(self, experiment_id: str | None = None) -> list[PolicyChange]:
        with self._lock:
            return [
                c
                for c in self._policy_changes
                if experiment_id is None or c.experiment_id == experiment_id
            ]

    def load_snapshot(self, experiment_id: str) -> Snapshot | None:
        with self._lock:
            snap = self._snapshots.get(experiment_id)
            return None if snap is None else _copy(snap)

    def learner_offsets(self, group_id: str) -> dict[int, LearnerOffsets]:
        with self._lock:
            return {p: o for (g, p), o in self._offsets.items() if g == group_id}

    def learner_held(self, group_id: str) -> dict[int, HeldRewards]:
        with self._lock:
            return {
                p: HeldRewards(tuple(sorted(o)), tuple(sorted(u)))
                for (g, p), (o, u) in self._held.items()
                if g == group_id and (o or u)
            }

    def learner_counters(self, experiment_id: str | None = None) -> dict[tuple[str, str], int]:
        with self._lock:
            return {k: n for k, n in self._counters.items() if experiment_id in (None, k[0])}

    def learner_commit(
        self,
        group_id: str,
        updates: Mapping[str, SnapshotUpdate],
        counters: Mapping[tuple[str, str], int],
        offsets: Mapping[int, LearnerOffsets],
        now: float,
        held: Mapping[int, HeldRewards] | None = None,
        parts: Mapping[str, SnapshotPart] | None = None,
    ) -> dict[str, int]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(30)
        with self._lock:
            self.commit_calls += 1
            fail, self._fail = self._fail, None
            if fail == "before":
                raise StoreError("fake store: (2013, 'Lost connection') before the commit")
            # everything is computed first: an update that raises stores nothing
            snapshots = dict(self._snapshots)
            counters = dict(counters)
            done: list[CommittedUpdate] = []
            absorbed: set[str] = set()
            for exp_id, update in sorted(updates.items()):
                snapshots[exp_id] = self._absorbed(exp_id, update, now, counters)
                absorbed.add(exp_id)
                done.append(CommittedUpdate(exp_id, update, snapshots[exp_id].last_seq))
            new_parts = [(e, p) for e, p in self._parts if e not in absorbed]
            new_parts += [(e, p) for e, p in sorted((parts or {}).items())]
            new_held = dict(self._held)
            for p, h in (held or {}).items():
                _, unknown = new_held.get((group_id, p), (frozenset(), frozenset()))
                resume = offsets[p].fb_resume if p in offsets else -1
                kept = frozenset(o for o in unknown if o >= resume) | frozenset(h.unknown)
                new_held[(group_id, p)] = (frozenset(h.orphans), kept)
            self._snapshots = snapshots
            self._parts = new_parts
            for k, n in counters.items():
                self._counters[k] = self._counters.get(k, 0) + n
            for p, off in offsets.items():
                self._offsets[(group_id, p)] = off
            self._held = new_held
            self.committed.extend(done)
            if fail == "after":
                raise StoreError("fake store: (2013, 'Lost connection') after the commit")
            return {c.experiment_id: c.version for c in done}

    def _absorbed(
        self, exp_id: str, update: SnapshotUpdate, now: float, counters: dict[tuple[str, str], int]
    ) -> Snapshot:
        """The snapshot ``update`` makes of ``exp_id`` with its stored parts,
        whose counters it adds to ``counters`` (the caller stores both)."""
        old = self._snapshots.get(exp_id)
        version = old.last_seq if old is not None else 0

        def load() -> Snapshot | None:
            return None if old is None else _copy(old)

        mine = [p for e, p in self._parts if e == exp_id]
        state = update(version, load, [copy.deepcopy(p.state) for p in mine])
        for p in mine:
            for name, n in p.counters.items():
                counters[(exp_id, name)] = counters.get((exp_id, name), 0) + n
        counts = {} if old is None else dict(old.counters)
        return _copy(Snapshot(exp_id, version + 1, state, counts, now))

    def pending_parts(self) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = {}
            for e, _ in self._parts:
                out[e] = out.get(e, 0) + 1
            return out

    def absorb_parts(self, experiment_id: str, update: SnapshotUpdate, now: float) -> int | None:
        with self._lock:
            if experiment_id in self.busy:
                return None
            old = self._snapshots.get(experiment_id)
            if not any(e == experiment_id for e, _ in self._parts):
                return old.last_seq if old is not None else 0
            counters: dict[tuple[str, str], int] = {}
            snap = self._absorbed(experiment_id, update, now, counters)
            self._snapshots[experiment_id] = snap
            self._parts = [(e, p) for e, p in self._parts if e != experiment_id]
            for k, n in counters.items():
                self._counters[k] = self._counters.get(k, 0) + n
            return snap.last_seq

    def close(self) -> None:
        pass


def _copy(snap: Snapshot) -> Snapshot:
    state = {k: np.array(v, copy=True) for k, v in snap.state.items()}
    return Snapshot(snap.experiment_id, snap.last_seq, state, dict(snap.counters), snap.created_at)


class FakeConsumer:
    """Log ends (``end``), pauses and fetch times of one consumer, per
    (topic, partition); what the flow control asks of aiokafka."""

    def __init__(self, end: Mapping[tuple[str, int], int] | None = None) -> None:
        self.end: dict[tuple[str, int], int | None] = dict(end or {})
        self.polled: dict[tuple[str, int], int] = {}  # wall ms of the last fetch
        self._paused: set[TopicPartition] = set()

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.end.get((tp.topic, tp.partition))

    def last_poll_timestamp(self, tp: TopicPartition) -> int | None:
        return self.polled.get((tp.topic, tp.partition))

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def pause(self, *tps: TopicPartition) -> None:
        self._paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._paused.difference_update(tps)

    def is_paused(self, topic: str, p: int = 0) -> bool:
        return TopicPartition(topic, p) in self._paused


class RecordingEventLog:
    """An ``EventLog`` that keeps what it is given, encoded as the Kafka
    topics would hold it (so the records' codec is exercised too)."""

    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.decisions: list[bytes] = []
        self.feedback: list[bytes] = []
        self.closed = False

    def publish_decision(self, row: DecisionRow) -> bool:
        if self.accept:
            self.decisions.append(encode_decision(row))
        return self.accept

    def publish_feedback(self, event: FeedbackEvent, timeout: float) -> bool:
        if self.accept:
            self.feedback.append(encode_feedback(event))
        return self.accept

    def pending(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True

    def decision_rows(self) -> list[DecisionRow]:
        return [decode_decision(v) for v in self.decisions]

    def feedback_events(self) -> list[FeedbackEvent]:
        return [decode_feedback(v, 0) for v in self.feedback]
