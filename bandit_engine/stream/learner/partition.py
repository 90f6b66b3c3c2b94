"""The join state of one partition number, and the positions a commit stores.

A decision waiting for its window is one small list (``Pending``), found by
event id in ``pending`` and also held, in offset and deadline order, by the
queues that tell a commit where to resume and the watermark what to close.
A reward then costs one lookup in that dictionary: under load it holds
hundreds of thousands of decisions, and each lookup in a table of that
size is a few cache misses.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from typing import Any

from bandit_engine.store import HeldRewards, LearnerOffsets

__all__ = [
    "CLICKED",
    "DEADLINE",
    "EVENT",
    "EXPERIMENT",
    "FIRST_FB",
    "NO_OFFSET",
    "OFFSET",
    "OPEN",
    "REWARDED",
    "SHADOW",
    "SLOTS",
    "SOURCES",
    "Partition",
    "Pending",
    "Reward",
    "X",
]

#: A decision waiting for its window, a list indexed by the names below.
Pending = list[Any]
EVENT = 0  # event id
EXPERIMENT = 1  # experiment id
X = 2  # context, little-endian float64 bytes
SLOTS = 3  # shown slots (a tuple)
DEADLINE = 4
OFFSET = 5  # in the decisions log
REWARDED = 6  # bit s set: slot s has its reward
FIRST_FB = 7  # smallest feedback offset joined to it (-1: none)
OPEN = 8  # False once its window closed
SOURCES = 9  # the sources of the forwarded copies joined to it (a set, or None)
CLICKED = 10  # bit s set: slot s's reward was a click (above the default reward)
SHADOW = 11  # the challengers' shadow ranking (``ShadowRecord``), or None


#: A reward as the join keeps it: (event id, arm id, reward, timestamp, the
#: message as it came, for the dead-letter topic, the source of a forwarded
#: copy or None; see ``forward``).
Reward = tuple[str, str, float, float, bytes, bytes | None]

#: Larger than any offset: "none" for ``oldest_decision``/``oldest_reward``.
NO_OFFSET = 1 << 62


class Partition:
    """Join state of one partition number of the two logs.

    ``committed``: the positions of the last commit (or the loaded ones).
    ``dec_next``/``fb_next``: the next offsets not yet processed.
    ``watermark``: windows with a deadline at or before it are closed.
    ``dec_time``/``fb_time``: the newest decision and reward times seen;
    ``dec_log_ms``: the newest Kafka timestamp of a decision taken.
    """

    def __init__(self, p: int, committed: LearnerOffsets, held: HeldRewards) -> None:
        self.p = p
        self.committed = committed
        self.dec_next = committed.dec_resume
        self.fb_next = committed.fb_resume
        self.watermark = committed.watermark
        self.pending: dict[str, Pending] = {}
        # Pending decisions in deadline order while deadlines come in order
        # (the usual case), the others in a min-heap of (deadline, seq,
        # decision): ``due`` reads both.
        self.deadline_queue: deque[Pending] = deque()
        self.deadline_heap: list[tuple[float, int, Pending]] = []
        self._seq = 0
        self.closed: dict[str, float] = {}  # event -> deadline
        self.orphans: dict[str, list[tuple[int, Reward]]] = {}
        self.orphan_heap: list[tuple[float, int, str]] = []  # (expiry, offset, event)
        self.dec_time = float("-inf")
        self.fb_time = float("-inf")
        self.dec_log_ms = -NO_OFFSET
        # Replay (see HeldRewards): the committed orphans and unknown ones, the
        # replayed rewards that met no decision yet (resolved before the
        # commit, most by a decision the replay has not reached: they wait
        # for it, never expire, and are forgotten once the replay is done),
        # and the rewards dead-lettered as unknown since the last commit.
        self.held_orphans = frozenset(held.orphans)
        self.held_unknown = set(held.unknown)
        self.replay_wait: dict[str, list[tuple[int, Reward]]] = {}
        self.unknown_new: list[int] = []
        self.orphans_stored = bool(held.orphans)  # the store holds orphans for it
        # The offsets the join state still needs, emptied lazily, so a commit
        # costs O(log n) however many decisions wait for their windows: the
        # pending decisions in offset order; the first reward of each, while
        # those come in offset order (the usual case), and a min-heap of
        # (offset, event) for the others and for orphans.
        self.dec_queue: deque[Pending] = deque()
        self.fb_queue: deque[tuple[int, Pending]] = deque()
        self.fb_heap: list[tuple[int, str]] = []

    @property
    def restored(self) -> bool:
        """Whether the replay has caught up with the committed positions."""
        return self.dec_next >= self.committed.dec_next and self.fb_next >= self.committed.fb_next

    def add_pending(self, pend: Pending) -> bool:
        """Keep a decision until its window closes; False (and nothing kept)
        if its event is pending already."""
        if self.pending.setdefault(pend[EVENT], pend) is not pend:
            return False
        self.dec_queue.append(pend)  # offsets only grow
        queue = self.deadline_queue
        if not queue or pend[DEADLINE] >= queue[-1][DEADLINE]:
            queue.append(pend)
        else:
            self._seq += 1
            heapq.heappush(self.deadline_heap, (pend[DEADLINE], self._seq, pend))
        return True

    def mark_rewarded(self, pend: Pending, bits: int, offset: int) -> None:
        """Record that a reward at ``offset`` joined ``pend`` (its slot bits)."""
        pend[REWARDED] = bits
        first = pend[FIRST_FB]
        if first < 0 or offset < first:
            pend[FIRST_FB] = offset
            q = self.fb_queue
            if not q or offset > q[-1][0]:
                q.append((offset, pend))
            else:
                heapq.heappush(self.fb_heap, (offset, pend[EVENT]))

    def add_orphan(self, offset: int, fb: Reward, expiry: float) -> None:
        """Keep a reward whose decision has not been seen, until ``expiry``."""
        ev = fb[0]
        self.orphans.setdefault(ev, []).append((offset, fb))
        heapq.heappush(self.fb_heap, (offset, ev))
        heapq.heappush(self.orphan_heap, (expiry, offset, ev))

    def due(self, watermark: float) -> Iterator[Pending]:
        """Remove and yield the decisions whose deadline is at or before
        ``watermark``, in deadline order; each is then ``closed``."""
        heap, queue = self.deadline_heap, self.deadline_queue
        while True:
            if heap and heap[0][0] <= watermark and (not queue or heap[0][0] <= queue[0][DEADLINE]):
                pend = heapq.heappop(heap)[2]
            elif queue and queue[0][DEADLINE] <= watermark:
                pend = queue.popleft()
            else:
                return
            ev = pend[EVENT]
            del self.pending[ev]
            pend[OPEN] = False
            self.closed[ev] = pend[DEADLINE]
            yield pend

    def expired_orphans(self, watermark: float) -> Iterator[tuple[int, Reward]]:
        """Remove and yield the orphans whose expiry is at or before ``watermark``."""
        heap = self.orphan_heap
        while heap and heap[0][0] <= watermark:
            _, offset, ev = heapq.heappop(heap)
            waiting = self.orphans.get(ev)
            if not waiting:
                continue
            for i, (o, fb) in enumerate(waiting):
                if o == offset:
                    del waiting[i]
                    self.unknown_new.append(o)
                    yield o, fb
                    break
            if not waiting:
                del self.orphans[ev]

    def forget_closed(self, horizon: float) -> None:
        """Forget closed events whose deadline is at or before ``horizon``."""
        self.closed = {e: d for e, d in self.closed.items() if d > horizon}

    def oldest_decision(self) -> int:
        """Offset of the oldest decision still pending (``NO_OFFSET`` if none)."""
        q = self.dec_queue
        while q:
            if q[0][OPEN]:
                return int(q[0][OFFSET])
            q.popleft()
        return NO_OFFSET

    def oldest_reward(self) -> int:
        """Offset of the oldest reward the join state still needs (joined to
        a pending decision, or an orphan); ``NO_OFFSET`` if none."""
        q = self.fb_queue
        while q:
            off, pend = q[0]
            if pend[OPEN] and pend[FIRST_FB] == off:
                break
            q.popleft()
        oldest = q[0][0] if q else NO_OFFSET
        h = self.fb_heap
        while h and h[0][0] < oldest:
            off, ev = h[0]
            joined = self.pending.get(ev)
            if joined is not None and joined[FIRST_FB] == off:
                return off
            if any(o == off for o, _ in self.orphans.get(ev, ())):
                return off
            heapq.heappop(h)
        return oldest

    def positions(self) -> LearnerOffsets:
        """What a commit stores now: processed offsets, resume offsets, watermark."""
        c = self.committed
        dec_next = max(self.dec_next, c.dec_next)
        fb_next = max(self.fb_next, c.fb_next)
        # Until the replay caught up, part of the join state is still only in
        # the log: keep reading it from the committed resume points.
        restored = self.restored
        dec_resume = dec_next if restored else min(c.dec_resume, dec_next)
        fb_resume = fb_next if restored else min(c.fb_resume, fb_next)
        dec_resume = min(dec_resume, self.oldest_decision())
        fb_resume = min(fb_resume, self.oldest_reward())
        return LearnerOffsets(dec_next, dec_resume, fb_next, fb_resume, self.watermark)

    def take_held(self, fb_resume: int) -> HeldRewards | None:
        """What a commit with ``fb_resume`` must store of the rewards a replay
        cannot resolve alone (``HeldRewards``), or None if that is unchanged.
        The unknown ones since the last commit are handed over (once)."""
        orphans = tuple(o for waiting in self.orphans.values() for o, _ in waiting)
        if not self.restored:  # and the stored ones the replay has not reached
            orphans += tuple(o for o in self.held_orphans if o >= self.fb_next)
        unknown = tuple(self.unknown_new)
        self.unknown_new = []
        stale = bool(self.held_unknown) and min(self.held_unknown) < fb_resume
        if orphans or unknown or self.orphans_stored or stale:
            return HeldRewards(orphans, unknown)
        return None

    def committed_as(self, offsets: LearnerOffsets, held: HeldRewards | None) -> None:
        """Take ``offsets`` and ``held`` as committed."""
        self.committed = offsets
        if held is not None:
            self.orphans_stored = bool(held.orphans)
            self.held_unknown.update(held.unknown)
            self.held_unknown = {o for o in self.held_unknown if o >= offsets.fb_resume}
