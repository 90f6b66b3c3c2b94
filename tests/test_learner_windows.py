"""Windows close in deadline order, once each, whichever way a decision came
in: record by record (a heap of deadlines) or in a chunk whose deadlines are
in order (a queue, ``Learner._decision_run``)."""

from __future__ import annotations

import asyncio

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_learner_replay import ARMS, GRACE, SETTINGS, T0, FakeConsumer, MemoryStore, _Rec
from test_wire import records_chunk

from bandit_engine._proto.bandit.v1 import log_pb2
from bandit_engine.stream.learner import Learner


def _decisions(deadlines: list[float]) -> list[_Rec]:
    out = []
    for i, d in enumerate(deadlines):
        rec = log_pb2.DecisionRecord(
            event_id=f"ev{i}",
            experiment_id="e",
            created_at=T0,
            deadline=T0 + d,
            x_f64=np.array([1.0, float(i + 1)]).astype("<f8").tobytes(),
            arms=[ARMS[0]],
            slots=[0],
        )
        out.append(_Rec(i, rec.SerializeToString(), timestamp=int(T0 * 1000)))
    return out


used_queue = [False]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(1, 30), min_size=1, max_size=40),
    st.lists(st.integers(1, 6), min_size=1, max_size=10),
    st.lists(st.booleans(), min_size=1, max_size=10),
    st.lists(st.floats(0.0, 12.0), min_size=1, max_size=8),
)
def test_each_window_closes_once_at_its_deadline(
    deadlines: list[int], sizes: list[int], as_chunk: list[bool], ticks: list[float]
) -> None:
    recs = _decisions([float(d) for d in deadlines])

    async def main() -> None:
        clock = [T0]
        lr = Learner(
            MemoryStore(),  # type: ignore[arg-type]
            SETTINGS,
            lateness=0.0,
            orphan_grace=GRACE,
            clock=lambda: clock[0],
            gc_threshold=None,
        )
        lr._consumer = FakeConsumer(0, 0)  # no backlog: the watermark is the clock
        await lr._restore({0})
        part = lr._parts[0]
        i = j = 0
        closed: list[tuple[float, str]] = []

        def advance() -> None:
            before = set(part.pending)
            lr._advance(clock[0])
            gone = before - set(part.pending)
            # each closed now, and none still open, is past the watermark
            assert all(part.closed[ev] <= clock[0] for ev in gone)
            assert all(p.deadline > clock[0] for p in part.pending.values())
            closed.extend((part.closed[ev], ev) for ev in gone)

        while i < len(recs):
            n = sizes[j % len(sizes)]
            batch = recs[i : i + n]
            chunked = as_chunk[j % len(as_chunk)]
            await lr._take_decisions(part, [records_chunk(batch)] if chunked else batch)
            used_queue[0] |= bool(part.deadline_queue)
            lr._consumer.end["d"] = i + len(batch)
            i += len(batch)
            clock[0] += ticks[j % len(ticks)]
            advance()
            j += 1
        clock[0] = T0 + 100.0
        advance()
        assert not part.pending and not part.deadlines and not part.deadline_queue
        assert sorted(ev for _, ev in closed) == sorted(f"ev{k}" for k in range(len(recs)))
        # every shown arm got the default reward once
        assert lr._counters[("e", "rewards_defaulted")] == len(recs)
        lr._db.shutdown(wait=True)

    asyncio.run(main())


def test_the_queue_was_used() -> None:
    """(The property above ran through the deadline queue, not only the heap.)"""
    if not used_queue[0]:
        test_each_window_closes_once_at_its_deadline()
    assert used_queue[0]
