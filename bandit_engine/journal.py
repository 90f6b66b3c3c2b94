"""Open decisions of one experiment, in columns (embedded mode).

A decision stays open for its experiment's reward window; its row holds what
the reward join needs (the context, the shown arms and which of them have a
reward) and, until the decision writer has stored it, what the decision log
needs (time, deadline, model version, scores, propensities). Rows live in
one float64 matrix, a ring numbered by a running count ``n`` (row ``n`` at
``n & mask``), so that a Recommend adds a decision by filling one row in a
kernel (``fastpath.respond``) and two dict/list entries, instead of building
a dozen Python objects that stay alive for the whole window (1.5 kB per open
decision before, 0.6 kB now at d=33, k=10; and no garbage collector work).

Row layout (``META`` + ``dim`` + 4 x ``width`` columns)::

    created, deadline, model version, shown count, rewarded count, closed,
    x[0..dim), shown slots[0..width), scores[..), propensities[..), rewarded[..)

``width`` grows to the largest ``k`` served, up to ``WIDE``; a decision that
shows more arms keeps its four per-arm vectors in ``side`` (rare: a row per
open decision of that width would cost every decision the memory).

Threads: every method but the writer's (``unwritten``, ``mark_written``) is
called with the experiment's lock held. The writer reads rows ``[written,
tail)``, which no one rewrites until ``written`` has passed them (a row is
reused only once it is closed and written); ``lock`` makes its view of the
arrays consistent with a concurrent growth.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from . import fastpath
from ._exceptions import ResourceExhausted
from .store import DecisionRow

__all__ = ["WIDE", "DecisionBatch", "Journal"]

META = fastpath.JOURNAL_META
CREATED, DEADLINE, VERSION, NSHOWN, NREWARDED, CLOSED = range(META)
#: Decisions showing at most this many arms keep them in the row.
WIDE = 32


@dataclass(frozen=True)
class DecisionBatch:
    """Decisions the writer takes from one experiment's journal, oldest first."""

    start: int  # running number of the first row
    end: int
    rows: list[DecisionRow]


class Journal:
    def __init__(self, experiment_id: str, dim: int, capacity: int = 1024) -> None:
        assert capacity & (capacity - 1) == 0, "capacity must be a power of two"
        self.experiment_id = experiment_id
        self.dim = dim
        self.width = 0
        self.cap = capacity
        self.mask = capacity - 1
        self.rows = np.zeros((capacity, META + dim))
        self.event_ids: list[str | None] = [None] * capacity
        self.index: dict[str, int] = {}  # open decisions: event id -> n
        self.candidates: dict[int, tuple[str, ...]] = {}  # n -> eligible arms, when given
        self.side: dict[int, np.ndarray] = {}  # n -> (4, k): slots, scores, props, rewarded
        self.head = 0  # rows before head are closed, written and reusable
        self.tail = 0  # the next decision's n
        self.written = 0  # rows before it are in the store
        self.swept = 0  # rows before it are closed (the windows' sweep pointer)
        self.last_deadline = -np.inf
        self.monotone = True  # deadlines so far in row order (a constant window and clock)
        self.lock = threading.Lock()

    # ---------------------------------------------------------------- layout
    @property
    def x_col(self) -> int:
        return META

    @property
    def slot_col(self) -> int:
        return META + self.dim

    def __len__(self) -> int:
        return len(self.index)

    # ------------------------------------------------------------- adding
    def reserve(self, k: int, max_unwritten: int) -> int:
        """Make room for the next decision (showing ``k`` arms); its index.

        Raises ResourceExhausted, having changed nothing, when the writer is
        ``max_unwritten`` decisions behind (the store is too slow).
        """
        n = self.tail
        if n - self.written >= max_unwritten:
            raise ResourceExhausted(
                f"decision log buffer full ({max_unwritten} rows unwritten); store too slow"
            )
        if self.width < k <= WIDE:
            self._widen(k)
        if n - self.head >= self.cap:
            self._make_room()
        return n & self.mask

    def put(
        self,
        x: np.ndarray,
        shown: np.ndarray,
        scores: np.ndarray,
        props: np.ndarray,
        created: float,
        deadline: float,
        version: int,
    ) -> None:
        """Fill the reserved row (the message path; the wire path fills it in
        ``fastpath.respond``)."""
        n = self.tail
        k = shown.shape[0]
        if k > self.width:
            self.side[n] = np.stack([shown.astype(np.float64), scores, props, np.zeros(k)])
        fastpath.journal_put(
            self.rows,
            n & self.mask,
            self.width,
            x,
            shown,
            scores,
            props,
            created,
            deadline,
            version,
        )

    def commit(self, event_id: str, candidates: tuple[str, ...] = ()) -> None:
        """The reserved, filled row becomes an open decision."""
        n = self.tail
        idx = n & self.mask
        self.event_ids[idx] = event_id
        self.index[event_id] = n
        if candidates:
            self.candidates[n] = candidates
        deadline = self.rows[idx, DEADLINE]
        if deadline < self.last_deadline:
            self.monotone = False
        else:
            self.last_deadline = deadline
        self.tail = n + 1

    def load(
        self, dec: DecisionRow, slots: np.ndarray, rewarded: set[int], version: int = 0
    ) -> None:
        """An open decision read back from the store on start (already written)."""
        k = slots.shape[0]
        self.reserve(k, 1 << 62)
        self.put(
            dec.x,
            slots,
            np.asarray(dec.scores, dtype=np.float64),
            np.asarray(dec.propensities, dtype=np.float64),
            dec.created_at,
            dec.deadline,
            dec.model_version,
        )
        n = self.tail
        for p in range(k):
            if int(slots[p]) in rewarded:
                self._set_rewarded(n, p)
        self.commit(dec.event_id, tuple(dec.candidates))
        self.written = self.tail
        self.candidates.pop(n, None)

    def _widen(self, k: int) -> None:
        """Rows ``k`` wide (a copy of the open rows in the new layout)."""
        old_w, dim = self.width, self.dim
        rows = np.zeros((self.cap, META + dim + 4 * k))
        rows[:, : META + dim] = self.rows[:, : META + dim]
        so = META + dim
        for part in range(4):
            rows[:, so + part * k : so + part * k + old_w] = self.rows[
                :, so + part * old_w : so + (part + 1) * old_w
            ]
        with self.lock:
            self.rows = rows
            self.width = k

    def _make_room(self) -> None:
        """Pass over the closed, written rows at the head; grow if none."""
        rows, mask = self.rows, self.mask
        head, stop = self.head, min(self.tail, self.written)
        while head < stop and rows[head & mask, CLOSED]:
            self.event_ids[head & mask] = None
            if self.side:
                self.side.pop(head, None)
            head += 1
        self.head = head
        if self.tail - head < self.cap:
            return
        cap = self.cap * 2
        ns = np.arange(head, self.tail, dtype=np.int64)
        grown = np.zeros((cap, rows.shape[1]))
        grown[ns & (cap - 1)] = rows[ns & mask]
        ids: list[str | None] = [None] * cap
        for n in range(head, self.tail):
            ids[n & (cap - 1)] = self.event_ids[n & mask]
        with self.lock:
            self.rows, self.event_ids, self.cap, self.mask = grown, ids, cap, cap - 1

    # ------------------------------------------------------------- reading
    def deadline(self, n: int) -> float:
        return float(self.rows[n & self.mask, DEADLINE])

    def shown(self, n: int) -> np.ndarray:
        """The shown arms' slots, ranked."""
        side = self.side.get(n)
        if side is not None:
            return side[0].astype(np.int64)
        r = self.rows[n & self.mask]
        k = int(r[NSHOWN])
        so = self.slot_col
        return r[so : so + k].astype(np.int64)

    def x(self, n: int) -> np.ndarray:
        return self.rows[n & self.mask, META : META + self.dim].copy()

    def position(self, n: int, slot: int) -> int:
        """Where ``slot`` was shown in decision ``n``; -1 if it was not."""
        hits = np.flatnonzero(self.shown(n) == slot)
        return int(hits[0]) if hits.shape[0] else -1

    def is_rewarded(self, n: int, p: int) -> bool:
        side = self.side.get(n)
        if side is not None:
            return bool(side[3, p])
        return bool(self.rows[n & self.mask, self.slot_col + 3 * self.width + p])

    def rewarded_slots(self, n: int) -> list[int]:
        shown = self.shown(n)
        return [int(shown[p]) for p in range(shown.shape[0]) if self.is_rewarded(n, p)]

    def closes_with_one_more(self, n: int) -> bool:
        r = self.rows[n & self.mask]
        return bool(r[NREWARDED] + 1 == r[NSHOWN])

    # ------------------------------------------------------------- rewards
    def _set_rewarded(self, n: int, p: int) -> None:
        r = self.rows[n & self.mask]
        side = self.side.get(n)
        if side is not None:
            side[3, p] = 1.0
        else:
            r[self.slot_col + 3 * self.width + p] = 1.0
        r[NREWARDED] += 1.0

    def set_rewarded(self, n: int, p: int) -> None:
        if not self.is_rewarded(n, p):
            self._set_rewarded(n, p)

    def close(self, n: int) -> None:
        idx = n & self.mask
        self.rows[idx, CLOSED] = 1.0
        ev = self.event_ids[idx]
        if ev is not None:
            self.index.pop(ev, None)
        if n < self.written:
            self.side.pop(n, None)

    def due(self, now: float) -> bool:
        """Whether a window may have closed by ``now``."""
        if not self.index:
            return False
        if not self.monotone:
            return True
        self._skip_closed()
        return self.swept < self.tail and self.rows[self.swept & self.mask, DEADLINE] <= now

    def _skip_closed(self) -> None:
        rows, mask = self.rows, self.mask
        self.swept = max(self.swept, self.head)  # rows before head are reused
        while self.swept < self.tail and rows[self.swept & mask, CLOSED]:
            self.swept += 1

    def expired(self, now: float) -> list[int]:
        """Open decisions whose window closed by ``now`` (not closed here:
        ``close`` each once its default rewards are committed)."""
        rows, mask = self.rows, self.mask
        if self.monotone:
            out = []
            n = self.swept = max(self.swept, self.head)
            while n < self.tail and rows[n & mask, DEADLINE] <= now:
                if not rows[n & mask, CLOSED]:
                    out.append(n)
                n += 1
            return out
        ns = np.arange(self.head, self.tail, dtype=np.int64)
        r = rows[ns & mask]
        due = (r[:, DEADLINE] <= now) & (r[:, CLOSED] == 0)
        return ns[due].tolist()

    def open_items(self) -> list[tuple[str, tuple[int, ...]]]:
        """(event id, rewarded slots) of every open decision (the checksum)."""
        return [(e, tuple(sorted(self.rewarded_slots(n)))) for e, n in list(self.index.items())]

    # ------------------------------------------------------------- writer
    def unwritten(self, arm_ids: list[str]) -> DecisionBatch | None:
        """The rows the store does not have yet, as log rows (writer thread)."""
        with self.lock:
            start, end = self.written, self.tail
            if start == end:
                return None
            ns = np.arange(start, end, dtype=np.int64)
            block = self.rows[ns & self.mask]
            ids = [self.event_ids[i] for i in (ns & self.mask).tolist()]
            width = self.width
            side = (
                {n: self.side[n] for n in range(start, end) if n in self.side} if self.side else {}
            )
            cands = self.candidates
        dim = self.dim
        so = META + dim
        out = []
        meta = block[:, :META].tolist()
        for i, (n, ev) in enumerate(zip(range(start, end), ids, strict=True)):
            m = meta[i]
            k = int(m[NSHOWN])
            s = side.get(n)
            if s is not None:
                slots, scores, props = s[0].astype(np.int64).tolist(), s[1], s[2]
            else:
                slots = block[i, so : so + k].astype(np.int64).tolist()
                scores = block[i, so + width : so + width + k]
                props = block[i, so + 2 * width : so + 2 * width + k]
            assert ev is not None
            out.append(
                DecisionRow(
                    ev,
                    self.experiment_id,
                    m[CREATED],
                    m[DEADLINE],
                    int(m[VERSION]),
                    block[i, META:so],
                    tuple([arm_ids[a] for a in slots]),
                    tuple(scores.tolist()),
                    tuple(props.tolist()),
                    cands.get(n, ()),
                )
            )
        return DecisionBatch(start, end, out)

    def mark_written(self, end: int) -> None:
        with self.lock:
            for n in [c for c in list(self.candidates) if c < end]:
                self.candidates.pop(n, None)
            self.written = max(self.written, end)

    def memory_bytes(self) -> int:
        """Bytes held for open decisions (arrays, ids, index; approximate)."""
        per_id = 81 + 8 + 100  # a 32-character str, its list slot, a dict entry and int
        extra = sum(a.nbytes for a in list(self.side.values()))
        return int(self.rows.nbytes + per_id * len(self.index) + extra)
