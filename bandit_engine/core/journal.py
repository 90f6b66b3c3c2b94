"""Open decisions of one experiment, in columns (embedded mode).

A decision stays open for its experiment's reward window; its row holds what
the reward join needs (the context, the shown arms and which of them have a
reward) and, until the decision writer has stored it, what the decision log
needs (time, deadline, model version, scores, propensities). Decision ``n``
(a running count) is row ``n % B`` of block ``n // B``, a float64 matrix of
``B`` rows (4,096 by default), so that a Recommend adds a decision by filling
one row in a kernel (``kernels.journal_put``) and two dict/list entries,
rather than a dozen Python objects that would stay alive for the whole
window (memory, and work for the garbage collector). Blocks are added as
decisions come and dropped once every row in them is closed and stored:
nothing is ever copied to grow, and memory follows the number of open
decisions.

Row layout (``META`` + ``dim`` + 5 x ``width`` columns; ``width`` per block)::

    created, deadline, model version, shown count, rewarded count, closed,
    x[0..dim), shown slots[0..width), scores[..), propensities[..),
    prefix propensities[..) (NaN: none), rewarded[..) (2: a click)

A block's ``width`` is the largest ``k`` (up to ``WIDE``) seen in the block
before it (at least 1), widened in place (one block's copy) when a wider
decision comes; a decision that shows more than ``WIDE`` arms keeps its five
per-arm vectors in ``side`` (rare: making every row that wide would cost
every decision the memory).

Threads: every method but the writer's (``unwritten``, ``mark_written``) is
called with the experiment's lock held. The writer reads rows ``[written,
tail)``; no one rewrites them but to set reward flags, and a block is
dropped only once ``written`` has passed it. Adding, widening and dropping
blocks also take ``lock``, which the writer holds while it copies its rows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from bandit_engine import kernels
from bandit_engine._exceptions import ResourceExhausted
from bandit_engine.core.ports import DecisionRow

__all__ = ["BLOCK_ROWS", "WIDE", "Block", "DecisionBatch", "Journal"]

META = kernels.JOURNAL_META
CREATED, DEADLINE, VERSION, NSHOWN, NREWARDED, CLOSED = range(META)
#: Per-arm vectors of a row, and where each starts (in widths past the context).
VECTORS = 5
SLOTS_V, SCORES_V, PROPS_V, PREFIX_V, REWARDED_V = range(VECTORS)
#: Decisions showing at most this many arms keep them in the row.
WIDE = 32
#: Rows per block.
BLOCK_ROWS = 4096


class Block:
    """``rows`` decisions' rows, ``width`` arms wide, and their event ids."""

    __slots__ = ("ids", "kmax", "rows", "width")

    def __init__(self, n_rows: int, dim: int, width: int) -> None:
        self.rows = np.zeros((n_rows, META + dim + VECTORS * width))
        self.width = width
        self.kmax = 0  # the largest k (<= WIDE) put in this block
        self.ids: list[str | None] = [None] * n_rows


@dataclass(frozen=True)
class DecisionBatch:
    """Decisions the writer takes from one experiment's journal, oldest first."""

    start: int  # running number of the first row
    end: int
    rows: list[DecisionRow]


class Journal:
    def __init__(self, experiment_id: str, dim: int, block_rows: int = BLOCK_ROWS) -> None:
        if block_rows < 1 or block_rows & (block_rows - 1):
            raise ValueError(f"block_rows={block_rows!r} must be a power of two")
        self.experiment_id = experiment_id
        self.dim = dim
        self.shift = block_rows.bit_length() - 1
        self.bmask = block_rows - 1
        self.blocks: dict[int, Block] = {}
        self.index: dict[str, int] = {}  # open decisions: event id -> n
        self.candidates: dict[int, tuple[str, ...]] = {}  # n -> eligible arms, when given
        self.side: dict[int, np.ndarray] = {}  # n -> (VECTORS, k): a wide decision's vectors
        self.head = 0  # rows before head are closed and written (their blocks dropped)
        self.tail = 0  # the next decision's n
        self.written = 0  # rows before it are in the store
        self.swept = 0  # rows before it are closed (the windows' sweep pointer)
        self.last_deadline = -np.inf
        self.monotone = True  # open deadlines in row order (a constant window and clock)
        self.lock = threading.Lock()

    # ---------------------------------------------------------------- layout
    @property
    def slot_col(self) -> int:
        return META + self.dim

    def __len__(self) -> int:
        return len(self.index)

    def _loc(self, n: int) -> tuple[Block, int]:
        return self.blocks[n >> self.shift], n & self.bmask

    # ------------------------------------------------------------- adding
    def reserve(self, k: int, max_unwritten: int) -> None:
        """Make room for the next decision (showing ``k`` arms).

        Raises ResourceExhausted, having changed nothing, when the writer is
        ``max_unwritten`` decisions behind (the store is too slow).
        """
        n = self.tail
        if n - self.written >= max_unwritten:
            raise ResourceExhausted(
                f"decision log buffer full ({max_unwritten} rows unwritten); store too slow"
            )
        b = n >> self.shift
        blk = self.blocks.get(b)
        if blk is None:
            self.release()
            prev = self.blocks.get(b - 1)
            if prev is not None:
                width = max(1, prev.kmax)
            else:
                width = k if k <= WIDE else 1
            blk = Block(self.bmask + 1, self.dim, width)
            with self.lock:
                self.blocks[b] = blk
        if k <= WIDE:
            if k > blk.width:
                self._widen(b, blk, k)
            if k > blk.kmax:
                blk.kmax = k

    def put(
        self,
        x: np.ndarray,
        shown: np.ndarray,
        scores: np.ndarray,
        props: np.ndarray,
        created: float,
        deadline: float,
        version: int,
        prefix: np.ndarray | None = None,
    ) -> None:
        """Fill the reserved row (``prefix``: the prefix propensities, if any)."""
        n = self.tail
        blk, i = self._loc(n)
        k = shown.shape[0]
        if prefix is None:
            prefix = np.full(k, np.nan)
        if k > blk.width:
            self.side[n] = np.stack([shown.astype(np.float64), scores, props, prefix, np.zeros(k)])
        kernels.journal_put(
            blk.rows, i, blk.width, x, shown, scores, props, prefix, created, deadline, version
        )

    def commit(self, event_id: str, candidates: tuple[str, ...] = ()) -> None:
        """The reserved, filled row becomes an open decision."""
        n = self.tail
        blk, i = self._loc(n)
        blk.ids[i] = event_id
        self.index[event_id] = n
        if candidates:
            self.candidates[n] = candidates
        deadline = blk.rows[i, DEADLINE]
        if deadline < self.last_deadline:
            self.monotone = False
        else:
            self.last_deadline = deadline
        self.tail = n + 1

    def load(
        self,
        dec: DecisionRow,
        slots: np.ndarray,
        rewarded: set[int],
        clicked: set[int] = frozenset(),  # type: ignore[assignment]
    ) -> None:
        """An open decision read back from the store on start (already
        written), its rewarded and clicked arms' slots."""
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
            np.asarray(dec.prefix_propensities, dtype=np.float64)
            if dec.prefix_propensities
            else None,
        )
        n = self.tail
        for p in range(k):
            if int(slots[p]) in rewarded:
                self._set_rewarded(n, p, int(slots[p]) in clicked)
        self.commit(dec.event_id, tuple(dec.candidates))
        self.written = self.tail
        self.candidates.pop(n, None)

    def _widen(self, b: int, blk: Block, k: int) -> None:
        """Block ``b`` ``k`` wide (a copy of its rows in the new layout)."""
        old_w, so = blk.width, META + self.dim
        rows = np.zeros((blk.rows.shape[0], so + VECTORS * k))
        rows[:, :so] = blk.rows[:, :so]
        for part in range(VECTORS):
            rows[:, so + part * k : so + part * k + old_w] = blk.rows[
                :, so + part * old_w : so + (part + 1) * old_w
            ]
        with self.lock:
            blk.rows = rows
            blk.width = k

    def release(self) -> None:
        """Move ``head`` over the closed, written rows; drop the blocks it
        passed (on every new block, and on every sweep)."""
        stop = min(self.tail, self.written)
        while self.head < stop:
            b = self.head >> self.shift
            blk = self.blocks[b]
            lo = self.head & self.bmask
            hi = lo + min(stop - self.head, self.bmask + 1 - lo)
            open_rows = np.flatnonzero(blk.rows[lo:hi, CLOSED] == 0)
            if open_rows.shape[0]:
                self.head += int(open_rows[0])
                break
            self.head += hi - lo
            if hi == self.bmask + 1:
                with self.lock:
                    del self.blocks[b]
                if self.side:
                    for n in [m for m in list(self.side) if m < self.head]:
                        del self.side[n]
        self.swept = max(self.swept, self.head)

    # ------------------------------------------------------------- reading
    def event_id(self, n: int) -> str:
        blk, i = self._loc(n)
        ev = blk.ids[i]
        assert ev is not None
        return ev

    def deadline(self, n: int) -> float:
        blk, i = self._loc(n)
        return float(blk.rows[i, DEADLINE])

    def shown(self, n: int) -> np.ndarray:
        """The shown arms' slots, ranked."""
        side = self.side.get(n)
        if side is not None:
            return side[0].astype(np.int64)
        blk, i = self._loc(n)
        r = blk.rows[i]
        so = self.slot_col
        return r[so : so + int(r[NSHOWN])].astype(np.int64)

    def x(self, n: int) -> np.ndarray:
        blk, i = self._loc(n)
        return blk.rows[i, META : META + self.dim].copy()

    def position(self, n: int, slot: int) -> int:
        """Where ``slot`` was shown in decision ``n``; -1 if it was not."""
        hits = np.flatnonzero(self.shown(n) == slot)
        return int(hits[0]) if hits.shape[0] else -1

    def is_rewarded(self, n: int, p: int) -> bool:
        side = self.side.get(n)
        if side is not None:
            return bool(side[REWARDED_V, p])
        blk, i = self._loc(n)
        return bool(blk.rows[i, self.slot_col + REWARDED_V * blk.width + p])

    def rewarded_slots(self, n: int) -> list[int]:
        shown = self.shown(n)
        return [int(shown[p]) for p in range(shown.shape[0]) if self.is_rewarded(n, p)]

    def closes_with_one_more(self, n: int) -> bool:
        blk, i = self._loc(n)
        r = blk.rows[i]
        return bool(r[NREWARDED] + 1 == r[NSHOWN])

    # ------------------------------------------------------------- rewards
    def _set_rewarded(self, n: int, p: int, clicked: bool = False) -> None:
        blk, i = self._loc(n)
        side = self.side.get(n)
        flag = 2.0 if clicked else 1.0
        if side is not None:
            side[REWARDED_V, p] = flag
        else:
            blk.rows[i, self.slot_col + REWARDED_V * blk.width + p] = flag
        blk.rows[i, NREWARDED] += 1.0

    def set_rewarded(self, n: int, p: int, clicked: bool = False) -> None:
        """Shown position ``p`` has its Feedback (``clicked``: a reward above
        the default one, which click models read)."""
        if not self.is_rewarded(n, p):
            self._set_rewarded(n, p, clicked)

    def clicked(self, n: int) -> list[int]:
        """The shown positions whose Feedback was a click."""
        side = self.side.get(n)
        if side is not None:
            flags = side[REWARDED_V]
        else:
            blk, i = self._loc(n)
            r = blk.rows[i]
            c = self.slot_col + REWARDED_V * blk.width
            flags = r[c : c + int(r[NSHOWN])]
        return [p for p in range(flags.shape[0]) if flags[p] == 2.0]

    def close(self, n: int) -> None:
        blk, i = self._loc(n)
        blk.rows[i, CLOSED] = 1.0
        ev = blk.ids[i]
        if ev is not None:
            self.index.pop(ev, None)
        if n < self.written:
            self.side.pop(n, None)
        if not self.index:  # nothing open: deadlines start over in order
            self.monotone = True
            self.last_deadline = -np.inf

    def due(self, now: float) -> bool:
        """Whether a window may have closed by ``now``."""
        if not self.index:
            return False
        if not self.monotone:
            return True
        self._skip_closed()
        if self.swept >= self.tail:
            return False
        return self.deadline(self.swept) <= now

    def _skip_closed(self) -> None:
        self.swept = max(self.swept, self.head)
        while self.swept < self.tail:
            blk, i = self._loc(self.swept)
            if not blk.rows[i, CLOSED]:
                break
            self.swept += 1

    def expired(self, now: float, limit: int = 0) -> list[int]:
        """Open decisions whose window closed by ``now``, oldest first, at
        most ``limit`` of them (0: all). Not closed here: ``close`` each once
        its default rewards are committed."""
        if self.monotone:
            out: list[int] = []
            self._skip_closed()
            n = self.swept
            while n < self.tail and not (limit and len(out) >= limit):
                blk, i = self._loc(n)
                if blk.rows[i, DEADLINE] > now:
                    break
                if not blk.rows[i, CLOSED]:
                    out.append(n)
                n += 1
            return out
        # deadlines out of row order (the clock stepped back): scan the two
        # columns of every block with open rows
        found: list[int] = []
        for b in range(self.head >> self.shift, ((self.tail - 1) >> self.shift) + 1):
            blk = self.blocks[b]
            first = b << self.shift
            lo = max(self.head, first) - first
            hi = min(self.tail, first + self.bmask + 1) - first
            cols = blk.rows[lo:hi]
            due = np.flatnonzero((cols[:, DEADLINE] <= now) & (cols[:, CLOSED] == 0))
            found.extend((due + first + lo).tolist())
            if limit and len(found) >= limit:
                return found[:limit]
        return found

    def open_items(self) -> list[tuple[str, tuple[int, ...]]]:
        """(event id, rewarded slots) of every open decision (the checksum)."""
        return [(e, tuple(sorted(self.rewarded_slots(n)))) for e, n in list(self.index.items())]

    # ------------------------------------------------------------- writer
    def unwritten(self, arm_ids: list[str]) -> DecisionBatch | None:
        """The rows the store does not have yet, as log rows (writer thread)."""
        parts: list[tuple[int, np.ndarray, list[str | None], int]] = []
        with self.lock:
            start, end = self.written, self.tail
            if start == end:
                return None
            n = start
            while n < end:
                b = n >> self.shift
                blk = self.blocks[b]
                lo = n & self.bmask
                hi = lo + min(end - n, self.bmask + 1 - lo)
                parts.append((n, blk.rows[lo:hi].copy(), blk.ids[lo:hi], blk.width))
                n += hi - lo
            side = (
                {m: self.side[m] for m in range(start, end) if m in self.side} if self.side else {}
            )
        cands = self.candidates
        so = META + self.dim
        out = []
        for first, block, ids, width in parts:
            meta = block[:, :META].tolist()
            for j, ev in enumerate(ids):
                n = first + j
                m = meta[j]
                k = int(m[NSHOWN])
                s = side.get(n)
                if s is not None:
                    slots = s[SLOTS_V].astype(np.int64).tolist()
                    scores, props, prefix = s[SCORES_V], s[PROPS_V], s[PREFIX_V]
                else:
                    slots = block[j, so : so + k].astype(np.int64).tolist()
                    scores = block[j, so + width : so + width + k]
                    props = block[j, so + 2 * width : so + 2 * width + k]
                    prefix = block[j, so + 3 * width : so + 3 * width + k]
                assert ev is not None
                out.append(
                    DecisionRow(
                        ev,
                        self.experiment_id,
                        m[CREATED],
                        m[DEADLINE],
                        int(m[VERSION]),
                        block[j, META:so],
                        tuple([arm_ids[a] for a in slots]),
                        tuple(scores.tolist()),
                        tuple(props.tolist()),
                        cands.get(n, ()),
                        prefix_propensities=()
                        if k == 0 or np.isnan(prefix[0])
                        else tuple(prefix.tolist()),
                    )
                )
        return DecisionBatch(start, end, out)

    def mark_written(self, end: int) -> None:
        with self.lock:
            for n in [c for c in list(self.candidates) if c < end]:
                self.candidates.pop(n, None)
            self.written = max(self.written, end)
