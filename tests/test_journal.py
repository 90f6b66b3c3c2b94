"""The open-decision journal (embedded mode's reward join, in columns).

The journal adds, widens and drops blocks of rows; an engine whose blocks
hold two rows must behave exactly as one that never leaves its first block:
same answers to every Feedback, same pending counts, same posteriors, same
logged rows, across restarts, wide decisions (more arms than a row holds) and
a clock that steps back.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bandit_engine import BanditError, Context, Engine, ExperimentConfig, Limits
from bandit_engine.core.journal import WIDE, Journal
from bandit_engine.store import SQLiteStore

N_ARMS = WIDE + 8  # decisions wider than a row hold their arms aside
WINDOW = 10.0


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def _open(path: Path, clock: Clock, block_rows: int | None = None) -> Engine:
    store = SQLiteStore(path / "state.db")
    if block_rows is None:
        return Engine(store, seed=5, clock=clock)
    return Engine(store, seed=5, clock=clock, journal_block_rows=block_rows)


def _create(e: Engine) -> None:
    e.create_experiment(
        ExperimentConfig(
            "exp",
            policy="lin_ts_disjoint",
            dim=4,
            dense_dim=3,
            reward_window_s=WINDOW,
            reward_min=0.0,
            reward_max=1.0,
            propensity_draws=50,
        )
    )
    e.add_arms("exp", [(f"a{i:02d}", {}) for i in range(N_ARMS)])


class Twin:
    """An engine and what it answered, driven by operations on decision numbers."""

    def __init__(self, path: Path, block_rows: int | None) -> None:
        self.path = path
        self.block_rows = block_rows
        self.clock = Clock()
        self.events: list[tuple[str, tuple[str, ...]]] = []
        self.e = self._engine()
        _create(self.e)

    def _engine(self) -> Engine:
        return _open(self.path, self.clock, self.block_rows)

    def run(self, op: tuple[Any, ...]) -> Any:
        kind = op[0]
        e = self.e
        try:
            if kind == "rec":
                _, k, dense, as_vector = op
                # the same context as features or as a ready vector (intercept first)
                context = np.array([1.0, *dense]) if as_vector else Context(dense=dense)
                d = e.recommend("exp", context, k=k)
                ev, arms, scores = d.event_id, d.arm_ids, tuple(d.scores.tolist())
                self.events.append((ev, arms))
                return ("rec", arms, scores)
            if kind == "fb":
                _, i, p, r = op
                if not self.events:
                    return None
                ev, arms = self.events[i % len(self.events)]
                arm = arms[p % len(arms)] if p >= 0 else "a00"
                return ("fb", e.feedback(ev, arm, r).outcome)
            if kind == "tick":
                self.clock.t += op[1]
                return ("tick", e.sweep())
            if kind == "flush":
                return ("flush", e.flush())
            if kind == "restart":
                e.close()
                self.e = self._engine()
                return ("restart",)
        except BanditError as exc:
            return (type(exc).__name__, str(exc).replace(self._ev_text(str(exc)), "EV"))
        raise AssertionError(op)  # pragma: no cover

    def _ev_text(self, msg: str) -> str:
        for ev, _ in self.events:
            if ev in msg:
                return ev
        return "\0"

    def state(self) -> tuple[Any, ...]:
        e = self.e
        pol = {k: v.tolist() for k, v in sorted(e.posterior_state("exp").items())}
        e.flush()
        rows = [
            (r.created_at, r.deadline, r.model_version, r.x.tolist(), r.arms, r.scores)
            for r in e.store.decisions("exp")
        ]
        rewards = [(r.arm_id, r.arm_slot, r.reward, r.source, r.ts) for r in e.store.rewards("exp")]
        counters = e.get_experiment("exp").counters
        return (e.pending_count(), counters, pol, rows, rewards)


DENSE = st.lists(st.floats(-3, 3, allow_nan=False, width=32), min_size=3, max_size=3)
REC = st.tuples(
    st.just("rec"), st.sampled_from([1, 2, 3, 1, 2, WIDE, WIDE + 3]), DENSE, st.booleans()
)
FB = st.tuples(
    st.just("fb"), st.integers(0, 80), st.integers(-1, 50), st.sampled_from([0.0, 1.0, 0.5])
)
OPS = st.lists(
    st.one_of(
        REC,
        REC,
        REC,
        FB,
        FB,
        st.tuples(st.just("tick"), st.sampled_from([1.0, 4.0, 11.0, -6.0])),
        st.tuples(st.just("flush")),
        st.tuples(st.just("restart")),
    ),
    min_size=10,
    max_size=80,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=OPS)
def test_a_two_row_journal_behaves_as_a_large_one(ops: list[tuple[Any, ...]]) -> None:
    base = Path(tempfile.mkdtemp())
    runs: list[tuple[list[Any], tuple[Any, ...]]] = []
    try:
        for name, rows in (("small", 2), ("large", None)):
            (base / name).mkdir()
            twin = Twin(base / name, rows)
            answers = []
            for op in ops:
                answers.append(twin.run(op))
                answers.append(twin.e.pending_count())
            runs.append((answers, twin.state()))
            twin.e.close()
    finally:
        shutil.rmtree(base)
    (small, small_state), (large, large_state) = runs
    for i, (a, b) in enumerate(zip(small, large, strict=True)):
        assert a == b, (i, ops[i // 2])
    assert small_state == large_state


def test_blocks_are_added_and_dropped_once_closed_and_written() -> None:
    j = Journal("exp", 2, block_rows=4)
    x = np.array([1.0, 2.0])
    shown = np.array([3, 1], dtype=np.int64)

    def add(ev: str, t: float) -> int:
        j.reserve(2, 1000)
        n = j.tail
        j.put(x, shown, np.array([0.5, 0.25]), np.array([0.7, 0.3]), t, t + 10.0, 7)
        j.commit(ev)
        return n

    for i in range(4):
        add(f"e{i}", float(i))
    assert sorted(j.blocks) == [0]
    assert j.expired(12.5) == [0, 1, 2]  # deadlines 10, 11, 12
    for n in (0, 1, 2):
        j.close(n)
    add("e4", 4.0)  # block 1; nothing written yet, so block 0 stays
    assert sorted(j.blocks) == [0, 1] and j.head == 0
    batch = j.unwritten(["s0", "s1", "s2", "s3"])
    assert batch is not None and [r.event_id for r in batch.rows] == [f"e{i}" for i in range(5)]
    assert batch.rows[0].arms == ("s3", "s1") and batch.rows[0].scores == (0.5, 0.25)
    assert batch.rows[4].x.tolist() == [1.0, 2.0] and batch.rows[4].deadline == 14.0
    j.mark_written(batch.end)
    assert j.expired(13.5) == [3]
    j.close(3)
    for i in range(5, 9):
        add(f"e{i}", float(i))  # e8 opens block 2: block 0 is closed and written
    assert sorted(j.blocks) == [1, 2] and j.head == 4 and j.swept == 4
    assert sorted(j.index) == [f"e{i}" for i in range(4, 9)]
    assert j.index["e8"] == 8 and j.event_id(8) == "e8"
    assert j.deadline(4) == 14.0 and j.shown(8).tolist() == [3, 1]
    assert j.x(8).tolist() == [1.0, 2.0]


def test_a_wider_decision_widens_its_block_only() -> None:
    j = Journal("exp", 1, block_rows=2)
    for k, ev in ((2, "a"), (5, "b"), (3, "c")):
        j.reserve(k, 10)
        j.put(np.ones(1), np.arange(k, dtype=np.int64), np.ones(k), np.ones(k), 0.0, 1.0, 1)
        j.commit(ev)
    # block 0 (a, b) widened to 5 in place; block 1 starts at its kmax
    assert j.blocks[0].width == 5 and j.blocks[1].width == 5
    assert j.shown(0).tolist() == [0, 1] and j.shown(1).tolist() == list(range(5))
    j.set_rewarded(0, 1)
    assert j.rewarded_slots(0) == [1] and j.rewarded_slots(1) == []
    for k, ev in ((1, "d"), (1, "e")):
        j.reserve(k, 10)
        j.put(np.ones(1), np.zeros(k, dtype=np.int64), np.ones(k), np.ones(k), 0.0, 1.0, 1)
        j.commit(ev)
    assert j.blocks[2].width == 3  # block 1's largest k: widths follow the traffic


def test_a_clock_step_back_is_swept_and_forgotten_once_all_is_closed() -> None:
    j = Journal("exp", 1, block_rows=2)
    for ev, t in (("a", 100.0), ("b", 50.0), ("c", 120.0)):
        j.reserve(1, 10)
        j.put(np.ones(1), np.zeros(1, dtype=np.int64), np.ones(1), np.ones(1), t, t + 10, 1)
        j.commit(ev)
    assert not j.monotone
    assert j.due(70.0) and j.expired(70.0) == [1]  # b, behind a in row order
    j.close(1)
    assert j.expired(200.0) == [0, 2]
    j.close(0)
    j.close(2)
    assert j.monotone and not j.due(1e9)


def test_wide_decisions_keep_their_arms_aside() -> None:
    j = Journal("exp", 1, block_rows=2)
    k = WIDE + 1
    shown = np.arange(k, dtype=np.int64)[::-1].copy()
    j.reserve(k, 10)
    j.put(np.ones(1), shown, np.linspace(1, 0, k), np.full(k, 1 / k), 0.0, 1.0, 1)
    j.commit("w")
    assert j.blocks[0].width == 1 and j.shown(0).tolist() == shown.tolist()
    p = j.position(0, int(shown[5]))
    assert p == 5 and not j.is_rewarded(0, p)
    j.set_rewarded(0, p)
    j.set_rewarded(0, p)  # once
    assert j.rewarded_slots(0) == [int(shown[5])] and not j.closes_with_one_more(0)
    batch = j.unwritten([f"s{i}" for i in range(k)])
    assert batch is not None and len(batch.rows[0].arms) == k


def test_a_full_writer_backlog_refuses_and_changes_nothing() -> None:
    j = Journal("exp", 1, block_rows=2)
    for i in range(3):
        j.reserve(1, 3)
        j.put(np.ones(1), np.zeros(1, dtype=np.int64), np.ones(1), np.ones(1), 0.0, 1.0, 1)
        j.commit(f"e{i}")
    before = (j.tail, sorted(j.blocks), dict(j.index))
    with pytest.raises(BanditError, match="3 rows unwritten"):
        j.reserve(1, 3)
    assert (j.tail, sorted(j.blocks), dict(j.index)) == before


def test_a_decision_closes_when_every_shown_arm_has_its_reward(tmp_path: Path) -> None:
    clock = Clock()
    e = _open(tmp_path, clock)
    _create(e)
    d = e.recommend("exp", Context(dense=[0.1, 0.2, 0.3]), k=2)
    assert e.pending_count() == 1
    assert e.feedback(d.event_id, d.arm_ids[1], 1.0).outcome == "applied"
    assert e.pending_count() == 1  # one shown arm still waits
    assert e.feedback(d.event_id, d.arm_ids[0], 0.0).outcome == "applied"
    assert e.pending_count() == 0
    assert e.store.decision_status(d.event_id) == ("exp", True)  # closed in the store
    assert e.feedback(d.event_id, d.arm_ids[0], 1.0).outcome == "duplicate"
    clock.t += 2 * WINDOW
    assert e.sweep() == 0  # nothing left to default
    e.close()


class _RefusingStore(SQLiteStore):
    """Refuses the decision rows of one experiment."""

    refuse = "bad"

    def log_decisions(self, rows: Any) -> None:
        if any(r.experiment_id == self.refuse for r in rows):
            raise OSError(f"rows of {self.refuse!r} refused")
        super().log_decisions(rows)

    def commit_rewards(self, rows: Any, close_events: Any = (), decisions: Any = ()) -> Any:
        if any(r.experiment_id == self.refuse for r in decisions):
            raise OSError(f"rows of {self.refuse!r} refused")
        return super().commit_rewards(rows, close_events, decisions)


def test_a_store_refusing_one_experiment_does_not_stall_the_others(tmp_path: Path) -> None:
    clock = Clock()
    e = Engine(_RefusingStore(tmp_path / "state.db"), seed=5, clock=clock)
    for name in ("bad", "good"):
        e.create_experiment(
            ExperimentConfig(
                name,
                policy="lin_ts_disjoint",
                dim=4,
                dense_dim=3,
                reward_window_s=WINDOW,
                propensity_draws=50,
            )
        )
        e.add_arms(name, [(f"a{i}", {}) for i in range(3)])
    bad = e.recommend("bad", Context(dense=[0.1, 0.2, 0.3]), k=1)
    good = e.recommend("good", Context(dense=[0.1, 0.2, 0.3]), k=1)
    late = e.recommend("good", Context(dense=[0.3, 0.2, 0.1]), k=2)
    with pytest.raises(OSError, match="'bad' refused"):
        e.flush()
    assert e.store.decision_status(good.event_id) == ("good", False)  # written all the same
    assert e.feedback(good.event_id, good.arm_ids[0], 1.0).outcome == "applied"
    assert e.store.decision_status(good.event_id) == ("good", True)
    clock.t += 2 * WINDOW
    with pytest.raises(OSError, match="'bad' refused"):  # raised once all were swept
        e.sweep()
    # late's two arms defaulted all the same; bad's row cannot close unwritten
    assert e.get_experiment("good").counters["rewards_defaulted"] == 2
    assert e.store.decision_status(late.event_id) == ("good", True)
    assert e.pending_count() == 1 and e.store.decision_status(bad.event_id) is None
    _RefusingStore.refuse = "nothing"
    assert e.sweep() == 1  # written, then closed
    assert e.pending_count() == 0 and e.store.decision_status(bad.event_id) == ("bad", True)
    e.close()


def _sweep_run(path: Path, chunk: int, step_back: bool) -> tuple[Any, ...]:
    """Decisions, some Feedback, two sweeps (part of the windows, then the
    rest) with ``Limits(sweep_chunk=chunk)``: what each sweep applied, the
    open decisions after each, the posterior and the counters."""
    clock = Clock()
    e = Engine(
        SQLiteStore(path / "state.db"),
        seed=5,
        clock=clock,
        limits=Limits(sweep_chunk=chunk),
        journal_block_rows=4,
    )
    _create(e)
    rng = np.random.default_rng(3)
    for i in range(23):
        clock.t += 0.5 if not (step_back and i == 11) else -3.0
        d = e.recommend("exp", Context(dense=rng.normal(size=3).tolist()), k=1 + i % 3)
        if i % 4 == 0:
            e.feedback(d.event_id, d.arm_ids[-1], float(rng.random() < 0.5))
    clock.t += WINDOW - 4.0  # some windows have closed, not all
    first = (e.sweep(), e.pending_count())
    clock.t += 2 * WINDOW
    second = (e.sweep(), e.pending_count())
    state = e.posterior_state("exp")
    counters = e.get_experiment("exp").counters
    e.close()
    return first, second, state, counters


@pytest.mark.parametrize("step_back", [False, True])
def test_a_sweep_in_chunks_closes_the_same_windows_with_the_same_rewards(
    tmp_path: Path, step_back: bool
) -> None:
    """``sweep_chunk`` bounds each hold of the lock; the result is the same."""
    want = _sweep_run(tmp_path / "all", 0, step_back)
    assert 0 < want[0][0] and want[0][1] > 0  # the first sweep closed some, left some
    assert want[1][1] == 0
    for chunk in (1, 3, 32):
        got = _sweep_run(tmp_path / f"c{chunk}", chunk, step_back)
        assert got[:2] == want[:2], chunk
        assert got[2].keys() == want[2].keys()
        for key in want[2]:
            np.testing.assert_array_equal(got[2][key], want[2][key], err_msg=f"{chunk} {key}")
        assert got[3] == want[3], chunk


def test_sweep_chunk_must_be_a_count() -> None:
    for bad in (-1, 2.5, "8"):
        with pytest.raises(BanditError, match="sweep_chunk"):
            Engine(SQLiteStore(":memory:"), limits=Limits(sweep_chunk=bad))  # type: ignore[arg-type]
