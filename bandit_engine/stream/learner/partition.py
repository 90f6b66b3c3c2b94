"""The join state of one partition number, and the positions a commit stores.

Kept as plain dictionaries, queues and heaps of tuples and strings: the
learner holds one entry per decision waiting for its window (hundreds of
thousands under load), and a tuple of numbers, strings and bytes is cheap
to build, and is left alone by the garbage collector once it has been seen.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator

from bandit_engine.store import HeldRewards, LearnerOffsets

__all__ = ["NO_OFFSET", "Partition", "Pending", "Reward"]

#: A decision waiting for its window: (experiment id, context as
#: little-endian float64 bytes, shown slots, deadline, offset in the
#: decisions log).
Pending = tuple[str, bytes, tuple[int, ...], float, int]

#: A reward as the join keeps it: (event id, arm id, reward, timestamp, the
#: message as it came, for the dead-letter topic).
Reward = tuple[str, str, float, float, bytes]

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
        self.rewarded: dict[str, int] = {}  # event -> bit mask of the slots rewarded
        self.first_fb: dict[str, int] = {}  # event -> smallest feedback offset joined to it
        # (deadline, event) in deadline order while deadlines come in order
        # (the usual case), the rest in a min-heap: ``due`` reads both
        self.deadline_queue: deque[tuple[float, str]] = deque()
        self.deadline_heap: list[tuple[float, str]] = []
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
        # costs O(log n) however many decisions wait for their windows: a
        # queue for decisions (taken in offset order), a min-heap for rewards.
        self.dec_offsets: deque[tuple[int, str]] = deque()
        self.fb_offsets: list[tuple[int, str]] = []

    @property
    def restored(self) -> bool:
        """Whether the replay has caught up with the committed positions."""
        return self.dec_next >= self.committed.dec_next and self.fb_next >= self.committed.fb_next

    def add_pending(self, event_id: str, pend: Pending) -> None:
        """Keep a decision until its window closes (its event is new here)."""
        self.pending[event_id] = pend
        self.dec_offsets.append((pend[4], event_id))  # offsets only grow
        deadline = pend[3]
        queue = self.deadline_queue
        if not queue or deadline >= queue[-1][0]:
            queue.append((deadline, event_id))
        else:
            heapq.heappush(self.deadline_heap, (deadline, event_id))

    def mark_rewarded(self, event_id: str, bits: int, offset: int) -> None:
        """Record that a reward at ``offset`` joined ``event_id`` (its slot bits)."""
        self.rewarded[event_id] = bits
        first = self.first_fb.get(event_id)
        if first is None or offset < first:
            self.first_fb[event_id] = offset
            heapq.heappush(self.fb_offsets, (offset, event_id))

    def add_orphan(self, offset: int, fb: Reward, expiry: float) -> None:
        """Keep a reward whose decision has not been seen, until ``expiry``."""
        ev = fb[0]
        self.orphans.setdefault(ev, []).append((offset, fb))
        heapq.heappush(self.fb_offsets, (offset, ev))
        heapq.heappush(self.orphan_heap, (expiry, offset, ev))

    def due(self, watermark: float) -> Iterator[tuple[str, Pending, int]]:
        """Remove and yield the decisions whose deadline is at or before
        ``watermark``, in deadline order, with the bit mask of their rewarded
        slots; each is then ``closed``."""
        heap, queue, pending = self.deadline_heap, self.deadline_queue, self.pending
        while True:
            if heap and heap[0][0] <= watermark and (not queue or heap[0] <= queue[0]):
                deadline, ev = heapq.heappop(heap)
            elif queue and queue[0][0] <= watermark:
                deadline, ev = queue.popleft()
            else:
                return
            pend = pending.get(ev)
            if pend is None or pend[3] != deadline:
                continue  # an entry of an earlier copy of this event
            del pending[ev]
            self.closed[ev] = deadline
            self.first_fb.pop(ev, None)
            yield ev, pend, self.rewarded.pop(ev, 0)

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
        q = self.dec_offsets
        while q:
            off, ev = q[0]
            pend = self.pending.get(ev)
            if pend is not None and pend[4] == off:
                return off
            q.popleft()
        return NO_OFFSET

    def oldest_reward(self) -> int:
        """Offset of the oldest reward the join state still needs (joined to
        a pending decision, or an orphan); ``NO_OFFSET`` if none."""
        h = self.fb_offsets
        while h:
            off, ev = h[0]
            if ev in self.pending and self.first_fb.get(ev) == off:
                return off
            if any(o == off for o, _ in self.orphans.get(ev, ())):
                return off
            heapq.heappop(h)
        return NO_OFFSET

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
