"""The learner: joins rewards to decisions from Kafka and applies them exactly once.

One learner owns a set of partition numbers (the consumer group assigns the
same numbers of the decisions and feedback topics to the same member, with
the range assignor). Per partition it keeps the join state in memory:
decisions waiting for their reward window, rewards waiting for their
decision ("orphans"), and recently closed decisions.

Exactly once. Every ``commit_interval`` the learner writes, in one MySQL
transaction, the new posterior of each experiment it touched, its counters
and, per partition, the offsets it has processed (``*_next``), the offsets
from which its join state can be rebuilt (``*_resume``) and its watermark.
On start, on partition assignment and after any failed commit it reloads
all of that and seeks to the resume offsets. Records before ``*_next`` are
then replayed only to rebuild the join state; they change no statistics and
no counters. A decision replayed with a deadline at or before the committed
watermark was closed before the commit and is skipped.

Replay order. The consumer interleaves the two logs as it likes, and not
as the first time: a replayed reward may come before its replayed decision,
with a clock long past its orphan expiry. So a replay never decides from
the clock or the order what became of a reward. Every replayed reward was
resolved before the commit (joined, or dead-lettered) except two kinds, and
the commit stores those by offset (``HeldRewards``): rewards still waiting
for their decision, which are resolved anew, and rewards dead-lettered as
``unknown_event``, which are skipped. Any other replayed reward waits for
its decision, however long, and joins it silently (the join sets the
"rewarded" bit that makes a later copy a duplicate); if the replay ends
without the decision, it was closed before the resume point. A second copy
of a decision (a producer's retry) is ignored and counted as
``duplicate_decision``: the first copy holds the join state.

Windows. A decision is pending until its deadline passes the watermark
(wall clock minus ``lateness``); then every shown arm without a reward gets
the experiment's default reward. Decisions are not closed early when all
their arms are rewarded, which is what makes the resume rule above exact.

Dead letters. A feedback that cannot be applied is counted (exactly, in the
same transaction) under its reason and written to the dead-letter topic
after the commit (at least once): ``malformed``, ``invalid`` (non-finite or
out-of-range reward, arm not shown), ``duplicate``, ``late`` (timestamp
after the decision's deadline, or its window already closed) and
``unknown_event`` (no decision within ``orphan_grace`` seconds).

Database calls run on a worker thread, never on the event loop that
heartbeats Kafka.

Speed. Records come in chunks (``fetch``), read by Numba kernels (``wire``),
with protobuf only for what they leave; a chunk of new decisions is taken in
one go (``_decision_run``), a new reward for a waiting decision joined
inline (``_take_feedback_chunk``), and rewards logged after the newest
decision wait in their fetch while the decisions have a backlog
(``_take_held``). Each fast path does what the record-by-record one would;
``tests/test_learner_replay.py`` runs the exactly-once property through
both.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import json
import logging
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

from bandit_engine import kernels
from bandit_engine._proto.bandit.v1 import log_pb2
from bandit_engine.core.config import ExperimentConfig
from bandit_engine.features import ArmFeatures
from bandit_engine.policies import Policy
from bandit_engine.policies.base import MAX_ABS_FEATURE
from bandit_engine.store import HeldRewards, LearnerOffsets, Snapshot
from bandit_engine.store.mysql import MySQLStore
from bandit_engine.stream import (
    FeedbackParseError,
    KafkaSettings,
    decision_x_bytes,
    ensure_topics,
    feedback_fields,
    fetch,
    wire,
)
from bandit_engine.stream.fetch import Chunk

log = logging.getLogger(__name__)

__all__ = ["DEAD_LETTER_REASONS", "Learner"]

DEAD_LETTER_REASONS = ("malformed", "invalid", "duplicate", "late", "unknown_event")

#: Rewards of a partition are paused above this many orphan events while its
#: decisions have a backlog, and resumed at or below the second (``_flow``).
_PAUSE_ORPHANS = 2000
_RESUME_ORPHANS = 200
#: Rewards are held back (``Learner._take_held``) for at most this long.
_HOLD_MAX_S = 5.0


#: A reward as the join state keeps it: (event_id, arm_id, reward, timestamp,
#: the message as it came, for the dead-letter topic). A tuple: cheaper to
#: build and read than a protobuf message, whose field reads each make a
#: new object.
_Fb = tuple[str, str, float, float, bytes]


@dataclass(slots=True)
class _Pending:
    exp_id: str
    x: bytes  # the context, little-endian float64s (as in DecisionRecord.x_f64)
    slots: list[int]
    deadline: float
    offset: int
    # bit s set: slot s has its reward (an int, not a set: one object fewer
    # per pending decision for the garbage collector to scan)
    rewarded: int = 0
    min_fb: int = -1  # smallest feedback offset joined to it (-1: none)


@dataclass
class _Part:
    """Join state of one partition number."""

    p: int
    committed: LearnerOffsets
    dec_next: int
    fb_next: int
    watermark: float
    pending: dict[str, _Pending] = field(default_factory=dict)
    deadlines: list[tuple[float, str]] = field(default_factory=list)  # a min-heap
    # (deadline, event) in deadline order: runs of decisions whose deadlines
    # come in order (the usual case) skip the heap (``Learner._decision_run``)
    deadline_queue: deque[tuple[float, str]] = field(default_factory=deque)
    closed: dict[str, float] = field(default_factory=dict)  # event -> deadline
    orphans: dict[str, list[tuple[int, _Fb]]] = field(default_factory=dict)
    orphan_heap: list[tuple[float, int, str]] = field(default_factory=list)
    dec_time: float = float("-inf")  # newest decision time seen
    fb_time: float = float("-inf")  # newest reward time seen
    dec_log_ms: int = -(1 << 62)  # newest Kafka timestamp of a decision taken
    # rewards fetched but not taken yet (``Learner._take_held``), in offset order
    held: deque[Any] = field(default_factory=deque)
    held_since: float | None = None  # clock when the held rewards began to wait
    # wall clock (ms) when the rewards were last resumed, until a fetch of them
    # since then: their highwater is stale meanwhile (``Learner._bound``)
    fb_resumed_ms: int = 0
    # Replay (see HeldRewards): the committed orphans and unknown ones, the
    # replayed rewards that met no decision yet (resolved before the commit,
    # most by a decision the replay has not reached: they wait for it, never
    # expire, and are forgotten once the replay is done), and the rewards
    # dead-lettered as unknown since the last commit.
    held_orphans: frozenset[int] = frozenset()
    held_unknown: set[int] = field(default_factory=set)
    replay_wait: dict[str, list[tuple[int, _Fb]]] = field(default_factory=dict)
    unknown_new: list[int] = field(default_factory=list)
    orphans_stored: bool = False  # the store holds orphans for this partition

    # The offsets the join state still needs, emptied lazily, so a commit
    # costs O(log n) however many decisions wait for their windows: a queue
    # for decisions (taken in offset order), a min-heap for rewards.
    dec_offsets: deque[tuple[int, str]] = field(default_factory=deque)  # in offset order
    fb_offsets: list[tuple[int, str]] = field(default_factory=list)

    def oldest_decision(self) -> int:
        """Offset of the oldest decision still pending (a large number if none)."""
        h = self.dec_offsets
        while h:
            off, ev = h[0]
            pend = self.pending.get(ev)
            if pend is not None and pend.offset == off:
                return off
            h.popleft()
        return 1 << 62

    def oldest_reward(self) -> int:
        """Offset of the oldest reward the join state still needs (joined or orphan)."""
        h = self.fb_offsets
        while h:
            off, ev = h[0]
            pend = self.pending.get(ev)
            if pend is not None and pend.min_fb == off:
                return off
            if any(o == off for o, _ in self.orphans.get(ev, ())):
                return off
            heapq.heappop(h)
        return 1 << 62

    @property
    def restored(self) -> bool:
        return self.dec_next >= self.committed.dec_next and self.fb_next >= self.committed.fb_next


class _Exp:
    def __init__(self, cfg: ExperimentConfig) -> None:
        self.cfg = cfg
        self.policy: Policy = cfg.make_policy()
        self.slots: dict[str, int] = {}
        self.version = 0  # snapshot version the policy reflects


class Learner:
    """Consume decisions and feedback, join, update posteriors, commit to MySQL."""

    def __init__(
        self,
        store: MySQLStore,
        settings: KafkaSettings,
        *,
        commit_interval: float = 0.1,
        lateness: float = 2.0,
        orphan_grace: float = 10.0,
        closed_retention: float = 3600.0,
        max_records: int = 20_000,
        clock: Callable[[], float] = time.time,
        gc_threshold: tuple[int, int, int] | None = (50_000, 20, 100),
        fetch_max_wait_ms: int = 20,
        group_instance_id: str | None = None,
        hold_rewards: bool = True,
    ) -> None:
        self.store = store
        self.settings = settings
        self.commit_interval = commit_interval
        self.lateness = lateness
        self.orphan_grace = orphan_grace
        self.closed_retention = closed_retention
        self.max_records = max_records
        self.clock = clock
        self.gc_threshold = gc_threshold
        if not 1 <= fetch_max_wait_ms <= 60_000:
            raise ValueError(f"fetch_max_wait_ms={fetch_max_wait_ms!r} must be in [1, 60000]")
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.group_instance_id = group_instance_id
        self.hold_rewards = hold_rewards
        self._db = ThreadPoolExecutor(1, thread_name_prefix="learner-db")
        self._exps: dict[str, _Exp] = {}
        self._parts: dict[int, _Part] = {}
        self._batch: dict[str, list[tuple[int, bytes, float]]] = defaultdict(list)
        self._counters: dict[tuple[str, str], int] = defaultdict(int)
        self._dead: list[tuple[bytes | None, dict[str, Any]]] = []
        self._fb_msg = log_pb2.FeedbackRecord()  # parsed into, record after record
        self._dec_msg = log_pb2.DecisionRecord()
        self._batch_ts: list[float] = []
        #: reward timestamp -> committed posterior, in ms (most recent rewards)
        self.latency_ms: deque[float] = deque(maxlen=100_000)
        #: durations of the most recent commits (checkpoints), seconds
        self.commit_seconds: deque[float] = deque(maxlen=10_000)
        self._consumer: Any = None
        self._producer: Any = None
        self._last_commit = 0.0
        self._inflight: asyncio.Task[bool] | None = None
        self._need_reset = False
        self._commit_lock = asyncio.Lock()
        # bumped whenever the join state is rebuilt from the database: records
        # taken in under an older epoch are void (they will be read again)
        self._epoch = 0
        self.commits = 0
        self.applied = 0
        self.ready = asyncio.Event()

    # ------------------------------------------------------------- database
    async def _in_db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    def _load_experiment(self, exp_id: str) -> _Exp | None:
        """(Re)load one experiment's config, arms and stored posterior (DB thread)."""
        cfgs = {e: c for e, c, _ in self.store.load_experiments()}
        if exp_id not in cfgs:
            return None
        exp = _Exp(ExperimentConfig.from_dict(cfgs[exp_id]))
        snap = self.store.load_snapshot(exp_id)
        if snap is not None:
            exp.policy.load_state_dict(snap.state)
            exp.version = snap.last_seq
        self._sync_arms(exp, exp_id)
        return exp

    def _sync_arms(self, exp: _Exp, exp_id: str) -> None:
        for row in self.store.load_arms(exp_id):
            if row.slot >= exp.policy.n_arms:
                f = row.features
                exp.policy.add_arm(
                    ArmFeatures.build(row.arm_id, f.get("numeric"), f.get("categorical"))
                )
            exp.slots[row.arm_id] = row.slot

    # --------------------------------------------------------------- restore
    async def _restore(self, partitions: set[int]) -> None:
        """Load committed offsets for ``partitions`` and seek to their resume points."""
        from aiokafka import TopicPartition

        self._epoch += 1  # part objects are replaced: batches in hand are void
        stored, held = await self._in_db(self._load_offsets)
        for p in sorted(partitions):
            # a new partition: its watermark starts at the epoch and moves with the log
            off = stored.get(p, LearnerOffsets(0, 0, 0, 0, 0.0))
            h = held.get(p, HeldRewards())
            self._parts[p] = _Part(
                p,
                off,
                off.dec_resume,
                off.fb_resume,
                off.watermark,
                held_orphans=frozenset(h.orphans),
                held_unknown=set(h.unknown),
                orphans_stored=bool(h.orphans),
            )
            self._consumer.seek(TopicPartition(self.settings.decisions_topic, p), off.dec_resume)
            self._consumer.seek(TopicPartition(self.settings.feedback_topic, p), off.fb_resume)
        log.info("restored partitions %s", sorted(partitions))

    def _load_offsets(self) -> tuple[dict[int, LearnerOffsets], dict[int, HeldRewards]]:
        g = self.settings.group_id
        return self.store.learner_offsets(g), self.store.learner_held(g)

    async def _reset(self) -> None:
        """After a failed commit: forget memory, reload from the database."""
        self._epoch += 1
        self._exps.clear()
        self._batch.clear()
        self._batch_ts.clear()
        self._counters.clear()
        self._dead.clear()
        parts = set(self._parts)
        self._parts.clear()
        await self._restore(parts)

    # ------------------------------------------------------------ processing
    async def _exp(self, exp_id: str, slot_needed: int = -1) -> _Exp | None:
        exp = self._exps.get(exp_id)
        if exp is None:
            exp = await self._in_db(self._load_experiment, exp_id)
            if exp is not None:
                self._exps[exp_id] = exp
        elif slot_needed >= exp.policy.n_arms:
            await self._in_db(self._sync_arms, exp, exp_id)
        return exp

    def _on_decision(
        self, part: _Part, offset: int, value: bytes | None, loaded: bool = False
    ) -> tuple[str, int] | None:
        """Take one decision record into the join state.

        Synchronous (no coroutine per record): if the record names an
        experiment or an arm this learner has not loaded yet, it changes
        nothing and returns ``(experiment_id, highest slot)``; the caller
        loads them (``_exp``) and calls again with ``loaded=True``.
        """
        try:
            rec = self._dec_msg  # parsed into, record after record: its fields are copied out
            rec.ParseFromString(value or b"")
            xb = decision_x_bytes(rec)
        except Exception:
            xb = None
        if xb is None:
            part.dec_next = max(part.dec_next, offset + 1)
            if offset >= part.committed.dec_next:
                self._counters[("", "malformed_decision")] += 1
            return None
        x_ok = kernels.first_bad_feature_bytes(xb, MAX_ABS_FEATURE) < 0
        return self._decision(
            part,
            offset,
            rec.event_id,
            rec.experiment_id,
            rec.created_at,
            rec.deadline,
            xb,
            rec.slots[:],  # a list: a quarter of the cost of tuple() here
            x_ok,
            loaded,
        )

    def _decision(
        self,
        part: _Part,
        offset: int,
        event_id: str,
        exp_id: str,
        created_at: float,
        deadline: float,
        xb: bytes,
        slots: list[int],
        x_ok: int,
        loaded: bool,
    ) -> tuple[str, int] | None:
        """``_on_decision`` once the record is read (by protobuf or ``wire``);
        ``x_ok``: true if the context is all finite and within ``MAX_ABS_FEATURE``."""
        replay = offset < part.committed.dec_next
        top = max(slots) if slots else -1
        exp = self._exps.get(exp_id)
        if not loaded and (exp is None or top >= exp.policy.n_arms):
            if not (replay and deadline <= part.committed.watermark):
                return exp_id, top  # new experiment or arms: ask MySQL first
        part.dec_next = max(part.dec_next, offset + 1)
        if created_at > part.dec_time:
            part.dec_time = created_at
        if replay and deadline <= part.committed.watermark:
            part.closed[event_id] = deadline  # closed before the commit
            # replayed rewards that waited for it were resolved before the
            # commit; an orphan (new, or waiting at the commit) is late
            part.replay_wait.pop(event_id, None)
            for fb_offset, fb in part.orphans.pop(event_id, ()):
                self._dead_letter(
                    "", "late", "window already closed", fb[0].encode(), fb[4], part.p, fb_offset
                )
            return None
        # a decision the model cannot learn from (wrong experiment, arms or
        # context) is counted here, never handed to an update that would fail
        if (
            exp is None
            or not slots
            or top >= exp.policy.n_arms
            or len(xb) != 8 * exp.cfg.dim
            or not x_ok
            or not math.isfinite(deadline)  # (it would never close)
        ):
            if not replay:
                self._counters[(exp_id, "malformed_decision")] += 1
            return None
        if event_id in part.pending or event_id in part.closed:
            # A second copy (a producer's retry of a batch the broker had
            # written): the first one holds the join state.
            if not replay:
                self._counters[(exp_id, "duplicate_decision")] += 1
            return None
        pend = _Pending(exp_id, xb, slots, deadline, offset)
        part.pending[event_id] = pend
        part.dec_offsets.append((offset, event_id))  # offsets only grow
        heapq.heappush(part.deadlines, (deadline, event_id))
        if not replay:
            self._counters[(exp_id, "decisions")] += 1
        # replayed rewards that waited for it were resolved before the commit;
        # orphans (new, or waiting at the commit) never were
        if part.replay_wait:
            for fb_offset, fb in part.replay_wait.pop(event_id, ()):
                self._join(part, pend, fb_offset, fb, True)
        if part.orphans:
            for fb_offset, fb in part.orphans.pop(event_id, ()):
                self._join(part, pend, fb_offset, fb, False)
        return None

    async def _load(self, need: tuple[str, int], epoch: int) -> bool:
        """Load what a decision named (``_on_decision``'s answer); False if
        the join state was rebuilt meanwhile (the batch in hand is void)."""
        await self._exp(*need)
        return self._epoch == epoch

    async def _take_decisions(self, part: _Part, records: Any) -> bool:
        """Take a fetched batch of decisions (records, or ``fetch.Chunk``s);
        False if the join state was rebuilt meanwhile (a rebalance or a reset
        while loading an experiment), in which case the rest is void and will
        be read again."""
        epoch = self._epoch
        for m in records:
            if type(m) is Chunk:
                if not await self._take_decision_chunk(part, m):
                    return False
                part.dec_log_ms = max(part.dec_log_ms, int(m.recs[:, 1].max()))
                continue
            part.dec_log_ms = max(part.dec_log_ms, m.timestamp)
            need = self._on_decision(part, m.offset, m.value)
            if need is not None:
                if not await self._load(need, epoch):
                    return False
                self._on_decision(part, m.offset, m.value, loaded=True)
        return True

    async def _take_decision_chunk(self, part: _Part, chunk: Chunk) -> bool:
        """Decisions of a chunk: the fields read by ``wire.scan_decisions``,
        and by protobuf those it leaves (``_on_decision``)."""
        epoch = self._epoch
        n = len(chunk)
        out = np.empty((n, wire.DEC_COLS), dtype=np.int64)
        times = np.empty((n, 2))
        slot_buf = np.empty(16 * n, dtype=np.int64)  # more slots: protobuf reads that one
        used = wire.scan_decisions(chunk.buf, chunk.recs, n, out, times, slot_buf, MAX_ABS_FEATURE)
        all_slots = slot_buf[:used].tolist()
        raw = chunk.raw
        offsets = chunk.recs[:, 0].tolist()
        if self._decision_run(part, chunk, out, times, slot_buf[:used], all_slots, offsets):
            return True
        decision = self._decision
        # Column by column: flat lists of numbers (one list per column, the
        # numbers untracked by the garbage collector), zipped. ``tolist()`` of
        # the whole table made a list per row, three objects for the collector
        # per record: 14.7 against 6.0 us per decision and reward in-process.
        cols = out.T.tolist()
        rows = zip(*cols, times[:, 0].tolist(), times[:, 1].tolist(), offsets, strict=True)
        for i, (
            ok,
            e0,
            e1,
            p0,
            p1,
            x0,
            x1,
            k0,
            kn,
            x_ok,
            t_created,
            t_deadline,
            offset,
        ) in enumerate(rows):
            if ok:
                try:
                    ev, exp_id = raw[e0:e1].decode(), raw[p0:p1].decode()
                except UnicodeDecodeError:
                    ok = 0  # protobuf refuses it too, and says so
            if ok:
                args = (ev, exp_id, t_created, t_deadline, raw[x0:x1], all_slots[k0 : k0 + kn])
                need = decision(part, offset, *args, x_ok, False)
                if need is not None:
                    if not await self._load(need, epoch):
                        return False
                    decision(part, offset, *args, x_ok, True)
                continue
            value = chunk.value(i)
            need = self._on_decision(part, offset, value)
            if need is not None:
                if not await self._load(need, epoch):
                    return False
                self._on_decision(part, offset, value, loaded=True)
        return True

    def _decision_run(
        self,
        part: _Part,
        chunk: Chunk,
        out: np.ndarray,
        times: np.ndarray,
        slot_arr: np.ndarray,
        all_slots: list[int],
        offsets: list[int],
    ) -> bool:
        """Take a chunk of decisions in one go, if it is the common case: all
        read by ``wire``, none replayed, one experiment already loaded, arms
        known, contexts of its dimension and in range, no event seen before.
        Then it does what ``_decision`` does record by record, with the
        dictionary, queue and counter updates made per chunk, and returns
        True; otherwise it changes nothing and returns False (the caller goes
        record by record)."""
        n = len(offsets)
        if not n or offsets[0] < part.committed.dec_next:
            return False
        if not (out[:, 0].all() and out[:, 9].all() and out[:, 8].all()):
            return False
        if not wire.same_spans(chunk.buf, out[:, 3], out[:, 4]):
            return False
        raw = chunk.raw
        try:
            exp_id = raw[out[0, 3] : out[0, 4]].decode()
            evs = [
                raw[a:b].decode()
                for a, b in zip(out[:, 1].tolist(), out[:, 2].tolist(), strict=True)
            ]
        except UnicodeDecodeError:
            return False
        exp = self._exps.get(exp_id)
        if exp is None or int(slot_arr.max()) >= exp.policy.n_arms:
            return False
        x0, x1 = out[:, 5], out[:, 6]
        if not ((x1 - x0) == 8 * exp.cfg.dim).all() or not np.isfinite(times).all():
            return False
        pending, closed = part.pending, part.closed
        if len(set(evs)) != n or not pending.keys().isdisjoint(evs):
            return False
        if not closed.keys().isdisjoint(evs):
            return False
        deadlines = times[:, 1].tolist()
        xbs = [raw[a:b] for a, b in zip(x0.tolist(), x1.tolist(), strict=True)]
        starts = out[:, 7].tolist()
        ends = (out[:, 7] + out[:, 8]).tolist()
        slots = [all_slots[a:b] for a, b in zip(starts, ends, strict=True)]
        pends = list(map(_Pending, repeat(exp_id, n), xbs, slots, deadlines, offsets))
        pending.update(zip(evs, pends, strict=True))
        part.dec_offsets.extend(zip(offsets, evs, strict=True))
        queue = part.deadline_queue
        ordered = n == 1 or bool((times[1:, 1] >= times[:-1, 1]).all())
        if ordered and (not queue or deadlines[0] >= queue[-1][0]):
            queue.extend(zip(deadlines, evs, strict=True))
        else:
            heap = part.deadlines
            push = heapq.heappush
            for item in zip(deadlines, evs, strict=True):
                push(heap, item)
        part.dec_next = max(part.dec_next, offsets[-1] + 1)
        newest = float(times[:, 0].max())
        if newest > part.dec_time:
            part.dec_time = newest
        self._counters[(exp_id, "decisions")] += n
        # rewards that came before their decision (none replayed: the chunk is
        # new, and so is any reward still waiting in ``replay_wait``'s place)
        if part.replay_wait:
            for ev, pend in zip(evs, pends, strict=True):
                for fb_offset, fb in part.replay_wait.pop(ev, ()):
                    self._join(part, pend, fb_offset, fb, True)
        if part.orphans:
            orphans = part.orphans
            for ev, pend in zip(evs, pends, strict=True):
                if ev in orphans:
                    for fb_offset, fb in orphans.pop(ev):
                        self._join(part, pend, fb_offset, fb, False)
        return True

    def _take_feedback(self, part: _Part, records: Any) -> None:
        """Queue a fetched batch of rewards (records, or ``fetch.Chunk``s) and
        take what may be taken now (``_take_held``)."""
        part.held.extend(records)
        self._take_held(part)

    def _take_held(self, part: _Part) -> None:
        """Take the queued rewards, in offset order, up to the first one
        logged after the newest decision taken, while the partition's
        decisions have a backlog (all of them otherwise).

        The consumer fetches the two topics independently, and a fetch of
        rewards (about 40 bytes each) holds ten times as many records as one
        of decisions (about 330): taken at once, most would wait as orphans
        for decisions still in the log, each an entry in the join state, a
        heap and the next commit. A reward logged after every decision seen
        so far very likely belongs to one not seen yet, so it waits here,
        in the fetched buffer, as nothing; the consumer pauses the
        partition's rewards meanwhile (``_flow``). This only orders the
        work: what is held is not taken (its offset is not processed), and
        a held reward is never dropped, only taken later.
        """
        held = part.held
        if not held:
            part.held_since = None
            return
        cutoff = self._reward_cutoff(part)
        while held:
            m = held[0]
            if type(m) is Chunk:
                n = len(m)
                k = n
                if cutoff is not None:
                    late = np.flatnonzero(m.recs[:, 1] > cutoff)
                    if late.size:
                        k = int(late[0])
                if k == n:
                    held.popleft()
                    self._take_feedback_chunk(part, m)
                    continue
                if k:
                    held[0] = Chunk(m.raw, m.buf, m.recs[k:])
                    self._take_feedback_chunk(part, Chunk(m.raw, m.buf, m.recs[:k]))
                return
            if cutoff is not None and m.timestamp > cutoff:
                return
            held.popleft()
            self._on_feedback(part, m.offset, m.key, m.value, m.timestamp)
        part.held_since = None

    def _reward_cutoff(self, part: _Part) -> int | None:
        """Newest decision timestamp taken (ms) if the partition's decisions
        have a backlog, else None (no limit). Also None once rewards have
        been held ``_HOLD_MAX_S`` seconds: holding orders the work, and must
        never stop it (say the decision log's start was deleted while the
        learner was down, and no decision comes to move ``dec_next``)."""
        if not self.hold_rewards or self._consumer is None:
            return None
        from aiokafka import TopicPartition

        hw = self._consumer.highwater(TopicPartition(self.settings.decisions_topic, part.p))
        if hw is not None and part.dec_next >= hw:
            return None
        now = self.clock()
        if part.held_since is None:
            part.held_since = now
        elif now - part.held_since > _HOLD_MAX_S:
            return None
        return part.dec_log_ms

    def _take_feedback_chunk(self, part: _Part, chunk: Chunk) -> None:
        n = len(chunk)
        out = np.empty((n, wire.FB_COLS), dtype=np.int64)
        nums = np.empty((n, 2))
        wire.scan_feedback(chunk.buf, chunk.recs, n, out, nums)
        raw = chunk.raw
        fields = self._feedback
        committed = part.committed.fb_next
        rows = zip(*out.T.tolist(), *nums.T.tolist(), *chunk.recs.T.tolist(), strict=True)
        pending = part.pending
        join = self._join
        exps, batch, batch_ts = self._exps, self._batch, self._batch_ts
        applied: dict[str, int] = {}
        for i, (ok, e0, e1, a0, a1, reward, ts, offset, ts_ms, k0, kn, v0, vn) in enumerate(rows):
            if ok:
                try:
                    ev, arm = raw[e0:e1].decode(), raw[a0:a1].decode()
                except UnicodeDecodeError:
                    ok = 0
            if not ok:
                key = None if kn < 0 else raw[k0 : k0 + kn]
                self._on_feedback(part, offset, key, chunk.value(i), ts_ms)
                continue
            if offset < committed:
                if offset in part.held_unknown:
                    part.fb_next = max(part.fb_next, offset + 1)
                    continue  # dead-lettered as unknown_event before the commit
            elif (pend := pending.get(ev)) is not None:
                # The common case, as ``_feedback`` and ``_join`` would do it:
                # a new reward for a decision waiting for it. The test below
                # is ``_join``'s for an applied reward; any other goes to
                # ``_join``, which says why not.
                ts = ts or ts_ms / 1000.0
                if offset >= part.fb_next:
                    part.fb_next = offset + 1
                if ts > part.fb_time:
                    part.fb_time = ts
                exp_id = pend.exp_id
                exp = exps[exp_id]
                cfg = exp.cfg
                slot = exp.slots.get(arm, -1)
                if (
                    slot in pend.slots
                    and cfg.reward_min <= reward <= cfg.reward_max
                    and ts <= pend.deadline
                    and not pend.rewarded >> slot & 1
                ):
                    pend.rewarded |= 1 << slot
                    if pend.min_fb < 0 or offset < pend.min_fb:
                        pend.min_fb = offset
                        heapq.heappush(part.fb_offsets, (offset, ev))
                    batch[exp_id].append((slot, pend.x, cfg.normalise_reward(reward)))
                    batch_ts.append(ts)
                    applied[exp_id] = applied.get(exp_id, 0) + 1
                else:
                    join(part, pend, offset, (ev, arm, reward, ts, raw[v0 : v0 + vn]), False)
                continue
            key = None if kn < 0 else raw[k0 : k0 + kn]
            fields(part, offset, key, raw[v0 : v0 + vn], ev, arm, reward, ts or ts_ms / 1000.0)
        for exp_id, k in applied.items():
            self._counters[(exp_id, "rewards_applied")] += k

    def _on_feedback(
        self, part: _Part, offset: int, key: bytes | None, value: bytes | None, ts_ms: int
    ) -> None:
        replay = offset < part.committed.fb_next
        if replay and offset in part.held_unknown:
            part.fb_next = max(part.fb_next, offset + 1)
            return  # dead-lettered as unknown_event before the commit
        try:
            ev, arm, reward, ts = feedback_fields(value, ts_ms, self._fb_msg)
        except FeedbackParseError as exc:
            part.fb_next = max(part.fb_next, offset + 1)
            if not replay:
                self._dead_letter("", exc.reason, str(exc), key, value, part.p, offset)
            return
        self._feedback(part, offset, key, value or b"", ev, arm, reward, ts)

    def _feedback(
        self,
        part: _Part,
        offset: int,
        key: bytes | None,
        value: bytes,
        ev: str,
        arm: str,
        reward: float,
        ts: float,
    ) -> None:
        """``_on_feedback`` once the record is read and checked (by
        ``feedback_fields`` or ``wire``; ``ts`` defaulted to the message time)."""
        replay = offset < part.committed.fb_next
        if offset >= part.fb_next:
            part.fb_next = offset + 1
        if ts > part.fb_time:
            part.fb_time = ts
        fb = (ev, arm, reward, ts, value)
        if replay and offset not in part.held_orphans:
            # Resolved before the commit, by a decision this replay has met or
            # will meet (or that is before the resume point): rebuild only.
            # Whatever the clock says now, it is not an orphan.
            pend = part.pending.get(ev)
            if pend is not None:
                self._join(part, pend, offset, fb, True)
            elif ev not in part.closed:
                part.replay_wait.setdefault(ev, []).append((offset, fb))
            return
        # New, or an orphan at the commit (unresolved then): resolved now.
        pend = part.pending.get(ev)
        if pend is not None:
            self._join(part, pend, offset, fb, False)
            return
        if ev in part.closed:
            self._dead_letter("", "late", "window already closed", key, value, part.p, offset)
            return
        part.orphans.setdefault(ev, []).append((offset, fb))
        heapq.heappush(part.fb_offsets, (offset, ev))
        heapq.heappush(part.orphan_heap, (ts + self.orphan_grace, offset, ev))

    def _join(self, part: _Part, pend: _Pending, offset: int, fb: _Fb, replay: bool) -> None:
        ev, arm, reward, ts, raw = fb
        exp = self._exps[pend.exp_id]
        cfg = exp.cfg
        slot = exp.slots.get(arm, -1)
        if slot not in pend.slots:  # (-1 never is)
            reason, detail = "invalid", f"arm {arm!r} was not shown in {ev!r}"
        elif not cfg.reward_min <= reward <= cfg.reward_max:
            reason = "invalid"
            detail = f"reward={reward!r} outside [{cfg.reward_min!r}, {cfg.reward_max!r}]"
        elif ts > pend.deadline:  # late whatever else came for this arm
            reason = "late"
            detail = f"timestamp {ts!r} after deadline {pend.deadline!r}"
        elif pend.rewarded >> slot & 1:
            reason, detail = "duplicate", f"({ev!r}, {arm!r}) already rewarded"
        else:
            pend.rewarded |= 1 << slot
            if pend.min_fb < 0 or offset < pend.min_fb:
                pend.min_fb = offset
                heapq.heappush(part.fb_offsets, (offset, ev))
            if not replay:
                self._batch[pend.exp_id].append((slot, pend.x, cfg.normalise_reward(reward)))
                self._batch_ts.append(ts)
                self._counters[(pend.exp_id, "rewards_applied")] += 1
            return
        if not replay:
            self._dead_letter(pend.exp_id, reason, detail, ev.encode(), raw, part.p, offset)

    def _bound(self, part: _Part, now: float) -> float:
        """How far the watermark may go: the clock, held back by a lagging log.

        While a topic-partition has a backlog, records older than the clock
        are still to come: windows may close only up to the newest reward
        time seen, and orphans expire only up to the newest decision time
        seen (each less ``lateness`` for producer skew). Otherwise a learner
        catching up after downtime would close windows before their rewards
        and call rewards unknown before their decisions.
        """
        bound = now - self.lateness
        consumer = self._consumer
        if consumer is None:
            return bound
        from aiokafka import TopicPartition

        s = self.settings
        hw = consumer.highwater(TopicPartition(s.decisions_topic, part.p))
        if hw is None or part.dec_next < hw:
            bound = min(bound, part.dec_time - self.lateness)
        fb = TopicPartition(s.feedback_topic, part.p)
        hw = consumer.highwater(fb)
        if hw is None or part.fb_next < hw or self._fb_unfetched(part, fb):
            bound = min(bound, part.fb_time - self.lateness)
        return bound

    def _fb_unfetched(self, part: _Part, fb: Any) -> bool:
        """Whether rewards may be in the log beyond the highwater we know: the
        consumer fetches no paused partition, so while the rewards are
        paused (``_flow``), and after they are resumed until a fetch of them
        answers, the highwater is stale. (Found in review: the windows
        closed on a stale highwater, and rewards written during the pause
        came in late.)"""
        c = self._consumer
        if fb in c.paused():
            return True
        if part.fb_resumed_ms:
            last = c.last_poll_timestamp(fb)
            if last is None or last < part.fb_resumed_ms:
                return True
            part.fb_resumed_ms = 0
        return False

    def _flow(self) -> None:
        """Hold back a partition's rewards while its decisions lag behind them.

        The consumer fetches the two topics independently; catching up on a
        backlog it may run far ahead in rewards, and each reward read before
        its decision waits as an orphan: memory, and a row in every commit
        (``HeldRewards``). In the feedback bench, 137,000 orphans at a commit
        made the learner 35% slower. So while the decisions of a partition
        have a backlog and more than ``_PAUSE_ORPHANS`` events wait for theirs,
        its rewards are paused, until no more than ``_RESUME_ORPHANS`` wait;
        decisions never are. (Record times cannot tell: a backlog written in a
        burst has the same times in both topics.) They are paused too while
        fetched rewards are held back (``_take_held``).
        """
        from aiokafka import TopicPartition

        c = self._consumer
        s = self.settings
        paused = c.paused()
        for p, part in self._parts.items():
            fb = TopicPartition(s.feedback_topic, p)
            hw = c.highwater(TopicPartition(s.decisions_topic, p))
            backlog = hw is not None and part.dec_next < hw
            many = backlog and len(part.orphans) > _PAUSE_ORPHANS
            if fb in paused:
                if not part.held and (not backlog or len(part.orphans) <= _RESUME_ORPHANS):
                    c.resume(fb)
                    part.fb_resumed_ms = int(time.time() * 1000)  # aiokafka's fetch clock
            elif part.held or many:
                c.pause(fb)  # while rewards are held, fetching more would only queue them

    def _advance(self, now: float) -> None:
        """Close windows and expire orphans up to each restored partition's watermark."""
        for part in self._parts.values():
            if not part.restored:
                continue
            if part.replay_wait:
                part.replay_wait.clear()  # their decisions are before the resume point
            part.watermark = max(part.watermark, self._bound(part, now))
            wm = part.watermark
            heap, queue = part.deadlines, part.deadline_queue
            while True:  # the two in deadline order
                if heap and heap[0][0] <= wm and (not queue or heap[0] <= queue[0]):
                    _, ev = heapq.heappop(heap)
                elif queue and queue[0][0] <= wm:
                    _, ev = queue.popleft()
                else:
                    break
                pend = part.pending.pop(ev, None)
                if pend is None:
                    continue
                cfg = self._exps[pend.exp_id].cfg
                r = cfg.normalise_reward(float(cfg.default_reward))  # type: ignore[arg-type]
                for s in pend.slots:
                    if not pend.rewarded >> s & 1:
                        self._batch[pend.exp_id].append((s, pend.x, r))
                        self._count(pend.exp_id, "rewards_defaulted")
                part.closed[ev] = pend.deadline
            while part.orphan_heap and part.orphan_heap[0][0] <= wm:
                _, offset, ev = heapq.heappop(part.orphan_heap)
                waiting = part.orphans.get(ev)
                if not waiting:
                    continue
                for i, (o, fb) in enumerate(waiting):
                    if o == offset:
                        del waiting[i]
                        part.unknown_new.append(o)
                        self._dead_letter(
                            "",
                            "unknown_event",
                            f"no decision {ev!r}",
                            ev.encode(),
                            fb[4],
                            part.p,
                            o,
                        )
                        break
                if not waiting:
                    del part.orphans[ev]
            if len(part.closed) > 100_000:
                horizon = wm - self.closed_retention
                part.closed = {e: d for e, d in part.closed.items() if d > horizon}

    def _count(self, exp_id: str, name: str, n: int = 1) -> None:
        self._counters[(exp_id, name)] += n

    def _dead_letter(
        self,
        exp_id: str,
        reason: str,
        detail: str,
        key: bytes | None,
        value: bytes | None,
        p: int,
        offset: int,
    ) -> None:
        self._count(exp_id, f"dead_{reason}")
        self._dead.append(
            (
                key,
                {
                    "reason": reason,
                    "detail": detail,
                    "partition": p,
                    "offset": offset,
                    "topic": self.settings.feedback_topic,
                    "payload": (value or b"").decode("utf-8", "replace")
                    if (value or b"")[:1] == b"{"
                    else (value or b"").hex(),
                },
            )
        )

    # ---------------------------------------------------------------- commit
    def _offsets(self) -> dict[int, LearnerOffsets]:
        out = {}
        for p, part in self._parts.items():
            c = part.committed
            dec_next = max(part.dec_next, c.dec_next)
            fb_next = max(part.fb_next, c.fb_next)
            # Until the replay caught up, part of the join state is still only
            # in the log: keep reading it from the committed resume points.
            dec_resume = dec_next if part.restored else min(c.dec_resume, dec_next)
            fb_resume = fb_next if part.restored else min(c.fb_resume, fb_next)
            dec_resume = min(dec_resume, part.oldest_decision())
            fb_resume = min(fb_resume, part.oldest_reward())
            out[p] = LearnerOffsets(dec_next, dec_resume, fb_next, fb_resume, part.watermark)
        return out

    def _held(self, offsets: dict[int, LearnerOffsets]) -> dict[int, HeldRewards]:
        """What the commit must store of the rewards a replay cannot resolve
        alone (``HeldRewards``); only the partitions where it changes."""
        out = {}
        for p, part in self._parts.items():
            orphans = tuple(o for waiting in part.orphans.values() for o, _ in waiting)
            if not part.restored:  # and the stored ones the replay has not reached
                orphans += tuple(o for o in part.held_orphans if o >= part.fb_next)
            unknown = tuple(part.unknown_new)
            part.unknown_new = []
            resume = offsets[p].fb_resume if p in offsets else -1
            stale = bool(part.held_unknown) and min(part.held_unknown) < resume
            if orphans or unknown or part.orphans_stored or stale:
                out[p] = HeldRewards(orphans, unknown)
        return out

    async def commit(self) -> bool:
        """Commit statistics, counters and offsets in one transaction (see
        ``_commit``), one commit at a time.

        Commits are serialised, and none runs after a failed one until the
        state is reloaded. Without this, a commit from the rebalance
        listener and one from the main loop could both be queued; if the
        first failed and the second succeeded, the second's offsets would
        skip the first one's rewards, and they would never be applied.
        """
        async with self._commit_lock:
            if self._need_reset:
                return False  # an earlier commit failed: the state is void until reset
            return await self._commit()

    async def _commit(self) -> bool:
        """Commit statistics, counters and offsets in one transaction.

        What was gathered so far is handed to the database thread and new
        records keep being processed meanwhile. If the transaction fails,
        nothing is known for sure (it may have committed before the link
        dropped), so the main loop reloads everything from the database.
        """
        offsets = self._offsets()
        held = self._held(offsets)
        parts = dict(self._parts)
        batch = {k: v for k, v in self._batch.items() if v}
        counters = dict(self._counters)
        if not offsets and not batch and not counters:
            return True
        batch_ts, dead = self._batch_ts, self._dead
        self._batch = defaultdict(list)
        self._counters = defaultdict(int)
        self._batch_ts, self._dead = [], []
        updates = {exp_id: self._updater(exp_id, events) for exp_id, events in batch.items()}
        t_commit = time.perf_counter()
        try:
            versions = await self._in_db(
                self.store.learner_commit,
                self.settings.group_id,
                updates,
                counters,
                offsets,
                self.clock(),
                held,
            )
        except Exception:
            log.exception("commit failed; reloading state from the database")
            self._need_reset = True
            return False
        for exp_id, v in versions.items():
            self._exps[exp_id].version = v
        for p, off in offsets.items():
            part = self._parts.get(p)
            if part is not None and part is parts[p]:  # not rebuilt meanwhile
                part.committed = off
                h = held.get(p)
                if h is not None:
                    part.orphans_stored = bool(h.orphans)
                    part.held_unknown.update(h.unknown)
                    part.held_unknown = {o for o in part.held_unknown if o >= off.fb_resume}
        self.commit_seconds.append(time.perf_counter() - t_commit)
        self.applied += sum(len(v) for v in batch.values())
        self.commits += 1
        done = self.clock()
        self.latency_ms.extend((done - t) * 1000.0 for t in batch_ts)
        if dead and self._producer is not None:
            for key, body in dead:
                try:
                    await self._producer.send(
                        self.settings.deadletter_topic, value=json.dumps(body).encode(), key=key
                    )
                except Exception as exc:  # counted already; the topic is best effort
                    log.warning("dead-letter produce failed: %s", exc)
        return True

    async def _settle(self) -> None:
        """Wait for the commit in flight; reload from the database if it failed."""
        if self._inflight is not None:
            await self._inflight
            self._inflight = None
        if self._need_reset:
            self._need_reset = False
            await self._reset()

    def _updater(
        self, exp_id: str, events: list[tuple[int, bytes, float]]
    ) -> Callable[[int, Callable[[], Snapshot | None]], dict[str, Any]]:
        exp = self._exps[exp_id]

        def update(version: int, load: Callable[[], Snapshot | None]) -> dict[str, Any]:
            if version != exp.version:  # another learner committed in between
                exp.policy = exp.cfg.make_policy()
                snap = load()
                if snap is not None:
                    exp.policy.load_state_dict(snap.state)
                self._sync_arms(exp, exp_id)
            slots = np.fromiter((e[0] for e in events), dtype=np.int64, count=len(events))
            # one copy: the contexts are float64 bytes, checked on arrival
            xs = np.frombuffer(b"".join([e[1] for e in events]), dtype="<f8").reshape(
                len(events), -1
            )
            rs = np.fromiter((e[2] for e in events), dtype=np.float64, count=len(events))
            exp.policy.update_batch(slots, xs, rs)
            return exp.policy.state_dict()

        return update

    def lag(self) -> tuple[int, float]:
        """Records not yet processed (both logs), and seconds behind the newest
        decision or reward time seen, per the consumer's last fetch."""
        if self._consumer is None:
            return 0, 0.0
        from aiokafka import TopicPartition

        records = 0
        behind = 0.0
        now = self.clock()
        for p, part in self._parts.items():
            for topic, nxt, seen in (
                (self.settings.decisions_topic, part.dec_next, part.dec_time),
                (self.settings.feedback_topic, part.fb_next, part.fb_time),
            ):
                hw = self._consumer.highwater(TopicPartition(topic, p))
                if hw is not None and hw > nxt:
                    records += hw - nxt
                    if seen > float("-inf"):
                        behind = max(behind, now - seen)
        return records, behind

    # ------------------------------------------------------------------- run
    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then commit and leave the group."""
        await ensure_topics(self.settings)
        wire.warm_up()
        # The join state keeps a few objects per pending decision, hundreds of
        # thousands under load, and the collector's default thresholds
        # (700, 10, 10) rescan them so often that collection took about 40%
        # of a decision's processing here (make bench, feedback section).
        # Fewer, larger young collections while the learner runs; the
        # process-wide setting is put back when it stops.
        saved_gc = gc.get_threshold()
        if self.gc_threshold is not None:
            gc.set_threshold(*self.gc_threshold)
        try:
            await self._run(stop)
        finally:
            gc.set_threshold(*saved_gc)

    async def _run(self, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
        from aiokafka.abc import ConsumerRebalanceListener
        from aiokafka.coordinator.assignors.range import RangePartitionAssignor

        s = self.settings
        self._producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=20)
        await self._producer.start()
        fetch.install()  # records in chunks, not one object each (see fetch)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap,
            value_deserializer=fetch.raw_values,
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
        learner = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                await learner._settle()
                if learner._parts:
                    await learner.commit()
                    await learner._settle()
                    # Records the main loop took in while that commit was on
                    # the database thread are in memory but not in it: start
                    # again from what is committed, so they are read again
                    # rather than counted twice or lost with the partition.
                    await learner._reset()
                for tp in revoked:
                    learner._parts.pop(tp.partition, None)

            async def on_partitions_assigned(self, assigned: Any) -> None:
                await learner._restore({tp.partition for tp in assigned})
                learner.ready.set()

        self._consumer.subscribe([s.decisions_topic, s.feedback_topic], listener=Listener())
        await self._consumer.start()
        try:
            while not stop.is_set():
                # (a chunk counts as one record here: the fetch size bounds it)
                batch = await self._consumer.getmany(timeout_ms=20, max_records=self.max_records)
                epoch = self._epoch
                for tp, records in sorted(
                    batch.items(), key=lambda kv: kv[0].topic != s.decisions_topic
                ):
                    part = self._parts.get(tp.partition)
                    if part is None or self._epoch != epoch:
                        continue  # not ours, or fetched before a rebuild: void
                    if tp.topic == s.decisions_topic:
                        await self._take_decisions(part, records)
                    else:
                        self._take_feedback(part, records)
                if self._epoch == epoch:
                    for part in self._parts.values():
                        self._take_held(part)  # those the decisions just read let through
                if self._need_reset:  # a commit failed: what was read since is void
                    await self._settle()
                    continue
                self._flow()
                now = self.clock()
                self._advance(now)
                in_flight = self._inflight is not None and not self._inflight.done()
                if not in_flight and now - self._last_commit >= self.commit_interval:
                    await self._settle()
                    if not self._need_reset:
                        self._inflight = asyncio.create_task(self.commit())
                    self._last_commit = now
            await self._settle()
            await self.commit()
            await self._settle()
        finally:
            await self._consumer.stop()
            await self._producer.stop()
            self._db.shutdown(wait=True)


def run_learner(
    store: MySQLStore,
    settings: KafkaSettings,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    **kw: Any,
) -> None:
    """Run a learner until SIGTERM/SIGINT (for ``bandit-engine learn``)."""
    import signal

    learner = Learner(store, settings, **kw)
    metrics = None
    if metrics_port is not None:
        from bandit_engine.server.metrics import Metrics

        metrics = Metrics()
        metrics.watch_learner(learner)
        metrics.serve(metrics_host, metrics_port)
        log.info("learner metrics on %s:%d/metrics", metrics_host, metrics.port)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await learner.run(stop)

    try:
        asyncio.run(main())
    finally:
        if metrics is not None:
            metrics.close()
