"""Flow control: which rewards to take now, which to hold, when to pause.

The consumer fetches the two topics independently. Catching up on a
backlog it runs far ahead in rewards: a fetch of rewards (about 40 bytes
each) holds ten times as many records as one of decisions (about 330), and
each reward taken before its decision waits as an orphan: memory, an entry
in the join state, and a row in every commit (``HeldRewards``). So:

- Fetched rewards logged after the newest decision taken (by Kafka
  timestamp) wait here, as fetched, while the partition's decisions have a
  backlog (``take_rewards``, ``release``): such a reward very likely
  belongs to a decision not read yet. This only orders the work: a
  deferred reward is not processed (its offset is not committed as read),
  and is never dropped, only taken later, and after ``HOLD_MAX_S`` seconds
  it is taken anyway (say the decision log's start was deleted while the
  learner was down, and no decision comes to move it on).
- A partition's rewards are paused while rewards wait here, or while its
  decisions have a backlog and more than ``PAUSE_ORPHANS`` events wait for
  theirs; resumed when none wait here and no more than ``RESUME_ORPHANS``
  events wait (or the decisions caught up). Decisions are never paused.
  (Record times cannot tell: a backlog written in a burst has the same
  times in both topics.)
- The consumer fetches no paused partition, so while the rewards are
  paused, and after they are resumed until a fetch of them answers, their
  highwater is stale: ``behind`` then counts them as behind, so windows do
  not close on a stale highwater.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bandit_engine.stream.learner.decode import LogRecord
from bandit_engine.stream.learner.join import JoinState

__all__ = ["HOLD_MAX_S", "PAUSE_ORPHANS", "RESUME_ORPHANS", "ConsumerView", "FlowControl"]

PAUSE_ORPHANS = 2000
RESUME_ORPHANS = 200
HOLD_MAX_S = 5.0


class ConsumerView(Protocol):
    """What flow control needs of the consumer (aiokafka's ``AIOKafkaConsumer``).

    Partitions are ``aiokafka.TopicPartition`` (a named tuple of topic and
    partition number)."""

    def highwater(self, tp: Any) -> int | None: ...

    def last_poll_timestamp(self, tp: Any) -> int | None:  # wall clock, ms
        ...

    def paused(self) -> set[Any]: ...

    def pause(self, *tps: Any) -> None: ...

    def resume(self, *tps: Any) -> None: ...


class _Deferred:
    __slots__ = ("batches", "since")

    def __init__(self) -> None:
        self.batches: deque[Sequence[LogRecord]] = deque()
        self.since: float | None = None  # clock when rewards began to wait


class FlowControl:
    """Flow control of one consumer over the partitions of a ``JoinState``.

    ``hold_rewards``: False takes every fetched reward at once. ``clock``:
    the learner's clock (for ``HOLD_MAX_S``); ``wall_ms``: the consumer's
    (its fetch times, in ms).
    """

    def __init__(
        self,
        consumer: ConsumerView,
        join: JoinState,
        decisions_topic: str,
        feedback_topic: str,
        *,
        hold_rewards: bool = True,
        clock: Callable[[], float] = time.time,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        from aiokafka import TopicPartition

        self._tp = TopicPartition
        self.consumer = consumer
        self.join = join
        self.decisions_topic = decisions_topic
        self.feedback_topic = feedback_topic
        self.hold_rewards = hold_rewards
        self.clock = clock
        self.wall_ms = wall_ms
        self._deferred: dict[int, _Deferred] = {}
        self._resumed_ms: dict[int, int] = {}  # partition -> when its rewards resumed

    def _tps(self, p: int) -> tuple[Any, Any]:
        return self._tp(self.decisions_topic, p), self._tp(self.feedback_topic, p)

    # ------------------------------------------------------------- deferral
    def take_rewards(self, p: int, records: Sequence[LogRecord]) -> list[Sequence[LogRecord]]:
        """Queue a fetched batch of partition ``p``'s rewards; return the
        batches to take now (in offset order)."""
        d = self._deferred.get(p)
        if d is None:
            d = self._deferred[p] = _Deferred()
        d.batches.append(records)
        return self.release(p)

    def release(self, p: int) -> list[Sequence[LogRecord]]:
        """The queued rewards of partition ``p`` that may be taken now, in
        offset order: up to the first logged after the newest decision
        taken while the decisions have a backlog, all of them otherwise."""
        d = self._deferred.get(p)
        if d is None or not d.batches:
            return []
        cutoff = self._cutoff(p, d)
        out: list[Sequence[LogRecord]] = []
        q = d.batches
        while q:
            batch = q[0]
            k = 0
            if cutoff is None:
                k = len(batch)
            else:
                n = len(batch)
                while k < n and batch[k].timestamp <= cutoff:
                    k += 1
            if k == len(batch):
                out.append(q.popleft())
                continue
            if k:
                out.append(batch[:k])
                q[0] = batch[k:]
            return out
        d.since = None
        return out

    def _cutoff(self, p: int, d: _Deferred) -> int | None:
        """Newest decision timestamp taken (ms) if partition ``p``'s decisions
        have a backlog, else None (no limit). None too once rewards have
        waited ``HOLD_MAX_S`` seconds."""
        part = self.join.partitions.get(p)
        if not self.hold_rewards or part is None:
            return None
        hw = self.consumer.highwater(self._tps(p)[0])
        if hw is not None and part.dec_next >= hw:
            return None
        now = self.clock()
        if d.since is None:
            d.since = now
        elif now - d.since > HOLD_MAX_S:
            return None
        return part.dec_log_ms

    def deferred(self, p: int) -> int:
        """Records of partition ``p`` fetched and not taken yet."""
        d = self._deferred.get(p)
        return 0 if d is None else sum(len(b) for b in d.batches)

    def forget(self, p: int) -> None:
        """Drop what waits for partition ``p`` (the consumer reads it again)."""
        self._deferred.pop(p, None)
        self._resumed_ms.pop(p, None)

    # ------------------------------------------------------ pause and resume
    def regulate(self) -> None:
        """Pause or resume each partition's rewards (see the module docstring)."""
        c = self.consumer
        paused = c.paused()
        for p, part in self.join.partitions.items():
            dec, fb = self._tps(p)
            hw = c.highwater(dec)
            backlog = hw is not None and part.dec_next < hw
            waiting = len(part.orphans)
            d = self._deferred.get(p)
            held = d is not None and bool(d.batches)
            if fb in paused:
                if not held and (not backlog or waiting <= RESUME_ORPHANS):
                    c.resume(fb)
                    self._resumed_ms[p] = self.wall_ms()
            elif held or (backlog and waiting > PAUSE_ORPHANS):
                c.pause(fb)  # while rewards wait here, fetching more would only queue them

    def behind(self, p: int) -> tuple[bool, bool]:
        """Whether partition ``p``'s decisions, and its rewards, have records
        still to come (``JoinState.advance``)."""
        part = self.join.partitions[p]
        c = self.consumer
        dec, fb = self._tps(p)
        hw = c.highwater(dec)
        dec_behind = hw is None or part.dec_next < hw
        hw = c.highwater(fb)
        fb_behind = hw is None or part.fb_next < hw or self._stale(p, fb)
        return dec_behind, fb_behind

    def _stale(self, p: int, fb: Any) -> bool:
        """Whether rewards may be in the log beyond the highwater known."""
        c = self.consumer
        if fb in c.paused():
            return True
        resumed = self._resumed_ms.get(p)
        if resumed is not None:
            last = c.last_poll_timestamp(fb)
            if last is None or last < resumed:
                return True
            del self._resumed_ms[p]
        return False

    def lag(self) -> tuple[int, float]:
        """Records not yet processed (both logs), and seconds behind the
        newest decision or reward time seen, per the consumer's last fetch."""
        records = 0
        behind = 0.0
        now = self.clock()
        for p, part in self.join.partitions.items():
            dec, fb = self._tps(p)
            for tp, nxt, seen in (
                (dec, part.dec_next, part.dec_time),
                (fb, part.fb_next, part.fb_time),
            ):
                hw = self.consumer.highwater(tp)
                if hw is not None and hw > nxt:
                    records += hw - nxt
                    if seen > float("-inf"):
                        behind = max(behind, now - seen)
        return records, behind
