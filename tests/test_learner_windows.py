"""Windows close in deadline order, once each, at their deadline, whatever
the order in which deadlines come and however decisions are batched."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from learner_world import ARMS, T0, Record, decision_value, record

from bandit_engine import ExperimentConfig
from bandit_engine.stream.learner import JoinState, decode_decisions
from bandit_engine.stream.learner.partition import DEADLINE


def _decisions(deadlines: list[float]) -> list[Record]:
    return [
        record("d", i, decision_value(f"ev{i}", [0], T0, T0 + d, np.array([1.0, i + 1.0])), None, 0)
        for i, d in enumerate(deadlines)
    ]


def _join() -> JoinState:
    join = JoinState(lateness=0.0)
    join.assign(0)
    cfg = ExperimentConfig("e", policy="lin_ts_disjoint", dim=2)
    join.set_experiment("e", cfg, {a: i for i, a in enumerate(ARMS)}, len(ARMS))
    return join


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(1, 30), min_size=1, max_size=40),
    st.lists(st.integers(1, 6), min_size=1, max_size=10),
    st.lists(st.floats(0.0, 12.0), min_size=1, max_size=8),
)
def test_each_window_closes_once_at_its_deadline(
    deadlines: list[int], sizes: list[int], ticks: list[float]
) -> None:
    recs = _decisions([float(d) for d in deadlines])
    join = _join()
    part = join.partitions[0]
    clock = T0
    closed: list[str] = []

    def advance() -> None:
        before = set(part.pending)
        join.advance(clock)  # no backlog: the watermark is the clock
        gone = before - set(part.pending)
        # each closed now, and none still open, is past the watermark
        assert all(part.closed[ev] <= clock for ev in gone)
        assert all(p[DEADLINE] > clock for p in part.pending.values())
        closed.extend(gone)

    i = j = 0
    while i < len(recs):
        batch = recs[i : i + sizes[j % len(sizes)]]
        assert join.take_decisions(0, decode_decisions(batch)) is None
        i += len(batch)
        clock += ticks[j % len(ticks)]
        advance()
        j += 1
    clock = T0 + 100.0
    advance()
    assert not part.pending
    assert sorted(closed) == sorted(f"ev{k}" for k in range(len(recs)))
    # every shown arm got the default reward once, and nothing else did
    cp = join.checkpoint()
    assert cp.counters[("e", "rewards_defaulted")] == len(recs)
    assert len(cp.events["e"]) == len(recs)
    assert ("e", "rewards_applied") not in cp.counters


def test_windows_close_in_deadline_order_whichever_order_they_came_in() -> None:
    deadlines = [5.0, 6.0, 7.0, 3.0, 9.0, 1.0, 8.0, 8.0, 2.0]
    join = _join()
    assert join.take_decisions(0, decode_decisions(_decisions(deadlines))) is None
    order = []
    for t in range(11):
        before = set(join.partitions[0].pending)
        join.advance(T0 + t)
        order += sorted(before - set(join.partitions[0].pending), key=lambda e: int(e[2:]))
    expect = sorted(range(len(deadlines)), key=lambda k: deadlines[k])
    assert order == [f"ev{k}" for k in expect]
