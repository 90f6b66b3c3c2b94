"""The ``LearnerStore`` contract, run against MySQL and the in-memory fake
(``tests/fakes.py``): what the learner's exactly-once rule relies on."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pymysql
import pytest
from fakes import FakeLearnerStore

from bandit_engine import ExperimentConfig
from bandit_engine.store import (
    ArmRow,
    HeldRewards,
    LearnerOffsets,
    LearnerStore,
    MySQLStore,
    Snapshot,
    SnapshotPart,
    parse_dsn,
)
from bandit_engine.store._codec import encode_state

G = "group-a"


@pytest.fixture(params=["fake", "mysql"])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A ``LearnerStore`` of each kind, empty (with the seeding methods of a
    ``Store``: create_experiment, upsert_arms, save_snapshot)."""
    if request.param == "fake":
        s: Any = FakeLearnerStore()
    else:
        s = MySQLStore(request.getfixturevalue("mysql_dsn"))
    yield s
    s.close()


def _off(dec: int, fb: int, wm: float = 1.0) -> LearnerOffsets:
    return LearnerOffsets(dec, dec // 2, fb, fb // 2, wm)


class _Update:
    """Adds ``delta`` to a one-number state; records how it was called."""

    def __init__(self, delta: float) -> None:
        self.delta = delta
        self.calls: list[tuple[int, Snapshot | None]] = []

    def __call__(
        self,
        version: int,
        load: Callable[[], Snapshot | None],
        parts: Sequence[dict[str, np.ndarray]] = (),
    ) -> dict[str, np.ndarray]:
        snap = load()
        self.calls.append((version, snap))
        self.parts = [float(p["v"][0]) for p in parts]
        base = 0.0 if snap is None else float(snap.state["v"][0])
        return {"v": np.array([base + self.delta + sum(self.parts)])}


def _both_implement_it(fake: FakeLearnerStore, mysql: MySQLStore) -> list[LearnerStore]:
    return [fake, mysql]  # (checked by mypy: each has every method of the protocol)


def test_a_fresh_store_has_nothing_for_a_group(store: LearnerStore) -> None:
    assert store.learner_offsets(G) == {}
    assert store.learner_held(G) == {}
    assert store.learner_counters() == {}
    assert store.load_experiments() == []
    assert store.load_snapshot("e") is None


def test_experiments_arms_and_snapshots_read_back(store: Any) -> None:
    cfg = ExperimentConfig("e", dim=3).to_dict()
    store.create_experiment("e", cfg, 1.0)
    store.create_experiment("f", ExperimentConfig("f", dim=2).to_dict(), 2.0)
    store.upsert_arms([ArmRow("e", "b", 1, {}, True), ArmRow("e", "a", 0, {}, True)])
    exps = store.load_experiments()
    assert [e for e, _, _ in exps] == ["e", "f"]  # in creation order
    assert exps[0][1] == cfg and exps[0][2] == 2  # two arm changes
    assert [(r.arm_id, r.slot) for r in store.load_arms("e")] == [("a", 0), ("b", 1)]
    assert store.load_arms("f") == []
    store.save_snapshot(Snapshot("e", 7, {"v": np.array([1.5, 2.5])}, {}, 3.0))
    snap = store.load_snapshot("e")
    assert snap is not None and snap.last_seq == 7
    np.testing.assert_array_equal(snap.state["v"], [1.5, 2.5])


def test_offsets_replace_counters_add_and_groups_are_apart(store: LearnerStore) -> None:
    assert store.learner_commit(G, {}, {("e", "decisions"): 3}, {0: _off(4, 6)}, 1.0) == {}
    store.learner_commit(
        G, {}, {("e", "decisions"): 2, ("", "dead_malformed"): 1}, {1: _off(2, 2)}, 2.0
    )
    store.learner_commit("group-b", {}, {}, {0: _off(100, 100)}, 3.0)
    assert store.learner_offsets(G) == {0: _off(4, 6), 1: _off(2, 2)}
    store.learner_commit(G, {}, {}, {0: _off(9, 8, 5.0)}, 4.0)
    assert store.learner_offsets(G) == {0: _off(9, 8, 5.0), 1: _off(2, 2)}
    assert store.learner_offsets("group-b") == {0: _off(100, 100)}
    assert store.learner_counters() == {("e", "decisions"): 5, ("", "dead_malformed"): 1}
    assert store.learner_counters("e") == {("e", "decisions"): 5}


def test_held_rewards_replace_and_unknown_ones_drop_behind_the_resume_point(
    store: LearnerStore,
) -> None:
    """Waiting ones are replaced at each commit; unknown ones are added and
    dropped once ``fb_resume`` passes them; other partitions are untouched."""
    off = {0: LearnerOffsets(5, 0, 40, 2, 1.0), 1: LearnerOffsets(1, 0, 9, 0, 1.0)}
    orphans = (30, 7, 8, 9, 12, 31, 32)
    held = {0: HeldRewards(orphans, (3, 25)), 1: HeldRewards((4,), ())}
    store.learner_commit(G, {}, {}, off, 1.0, held)
    got = store.learner_held(G)
    assert got[0] == HeldRewards((7, 8, 9, 12, 30, 31, 32), (3, 25))
    assert got[1] == HeldRewards((4,), ())
    off[0] = LearnerOffsets(6, 0, 50, 10, 2.0)  # fb_resume 10 passes unknown 3
    store.learner_commit(G, {}, {}, off, 2.0, {0: HeldRewards((45,), (41,))})
    got = store.learner_held(G)
    assert got[0] == HeldRewards((45,), (25, 41))
    assert got[1] == HeldRewards((4,), ())  # absent from the commit: kept
    store.learner_commit(G, {}, {}, off, 3.0, {1: HeldRewards((), ())})
    assert 1 not in store.learner_held(G)  # nothing held there any more
    assert store.learner_held("another-group") == {}


def test_updates_get_the_stored_version_and_store_the_next(store: Any) -> None:
    first = _Update(1.0)
    assert store.learner_commit(G, {"e": first}, {}, {}, 1.0) == {"e": 1}
    assert first.calls == [(0, None)]
    second, other = _Update(2.0), _Update(5.0)
    assert store.learner_commit(G, {"e": second, "f": other}, {}, {}, 2.0) == {"e": 2, "f": 1}
    version, loaded = second.calls[0]
    assert version == 1 and loaded is not None and loaded.last_seq == 1
    snap = store.load_snapshot("e")
    assert snap is not None and snap.last_seq == 2
    np.testing.assert_array_equal(snap.state["v"], [3.0])
    store.save_snapshot(Snapshot("e", 10, {"v": np.array([0.5])}, {}, 3.0))  # another writer
    third = _Update(1.0)
    assert store.learner_commit(G, {"e": third}, {}, {}, 4.0) == {"e": 11}
    assert third.calls[0][0] == 10


def test_a_commit_whose_update_raises_stores_nothing(store: LearnerStore) -> None:
    store.learner_commit(G, {"e": _Update(1.0)}, {("e", "n"): 1}, {0: _off(2, 2)}, 1.0)

    def broken(
        version: int, load: Callable[[], Snapshot | None], parts: Sequence[Any]
    ) -> dict[str, np.ndarray]:
        raise ValueError(f"version={version!r}: no state")

    with pytest.raises(ValueError, match="version=1"):
        store.learner_commit(
            G,
            {"a": _Update(1.0), "e": broken},
            {("e", "n"): 5},
            {0: _off(9, 9)},
            2.0,
            {0: HeldRewards((8,), (7,))},
        )
    assert store.learner_offsets(G) == {0: _off(2, 2)}
    assert store.learner_counters() == {("e", "n"): 1}
    assert store.learner_held(G) == {}
    assert store.load_snapshot("a") is None
    snap = store.load_snapshot("e")
    assert snap is not None and snap.last_seq == 1


def _part(v: float, n: int) -> SnapshotPart:
    return SnapshotPart({"v": np.array([v])}, {"rewards": n})


def test_parts_wait_beside_the_snapshot_until_an_update_absorbs_them(store: Any) -> None:
    store.learner_commit(G, {"e": _Update(1.0)}, {("e", "rewards"): 1}, {}, 1.0)
    store.learner_commit(G, {}, {}, {0: _off(4, 4)}, 2.0, None, {"e": _part(10.0, 3)})
    store.learner_commit(G, {}, {}, {1: _off(6, 6)}, 3.0, None, {"e": _part(20.0, 5)})
    assert store.pending_parts() == {"e": 2}
    snap = store.load_snapshot("e")
    assert snap.last_seq == 1 and float(snap.state["v"][0]) == 1.0  # not yet absorbed
    assert store.learner_counters() == {("e", "rewards"): 1}
    assert store.learner_offsets(G) == {0: _off(4, 4), 1: _off(6, 6)}
    update = _Update(100.0)
    assert store.learner_commit(G, {"e": update}, {}, {}, 4.0) == {"e": 2}
    assert update.parts == [10.0, 20.0]  # oldest first
    assert float(store.load_snapshot("e").state["v"][0]) == 131.0
    assert store.learner_counters() == {("e", "rewards"): 9}
    assert store.pending_parts() == {}


def test_absorbing_parts_alone_stores_a_version_only_when_one_waits(store: Any) -> None:
    assert store.absorb_parts("e", _Update(0.0), 1.0) == 0
    store.learner_commit(G, {}, {}, {}, 1.0, None, {"e": _part(2.0, 1), "f": _part(3.0, 1)})
    first = _Update(0.0)
    assert store.absorb_parts("e", first, 2.0) == 1
    assert first.calls == [(0, None)] and first.parts == [2.0]
    assert store.pending_parts() == {"f": 1}
    assert store.absorb_parts("e", _Update(0.0), 3.0) == 1  # nothing waits: no new version
    assert store.learner_counters() == {("e", "rewards"): 1}
    assert float(store.load_snapshot("e").state["v"][0]) == 2.0


def test_absorbing_parts_does_not_wait_for_a_held_row(store: Any) -> None:
    store.learner_commit(G, {"e": _Update(1.0)}, {}, {}, 1.0, None, {"e": _part(2.0, 1)})
    store.learner_commit(G, {}, {}, {}, 2.0, None, {"e": _part(4.0, 1)})
    with _holding_row(store, "e"):
        t0 = time.monotonic()
        assert store.absorb_parts("e", _Update(0.0), 3.0) is None
        assert time.monotonic() - t0 < 1.0
        # a part goes in while the row is held
        store.learner_commit(G, {}, {}, {0: _off(1, 1)}, 3.0, None, {"e": _part(8.0, 1)})
    assert store.pending_parts() == {"e": 3}  # an update absorbs the parts stored before it
    assert store.absorb_parts("e", _Update(0.0), 4.0) == 2
    assert float(store.load_snapshot("e").state["v"][0]) == 15.0


@contextlib.contextmanager
def _holding_row(store: Any, experiment_id: str) -> Iterator[None]:
    """Another transaction holds the experiment's snapshot row meanwhile."""
    if isinstance(store, FakeLearnerStore):
        store.busy.add(experiment_id)
        try:
            yield
        finally:
            store.busy.discard(experiment_id)
        return
    conn = pymysql.connect(**parse_dsn(store.dsn), autocommit=False)
    try:
        with conn.cursor() as c:
            c.execute(
                "SELECT 1 FROM snapshots WHERE experiment_id = %s FOR UPDATE", (experiment_id,)
            )
            yield
        conn.rollback()
    finally:
        conn.close()


def test_absorbing_parts_does_not_wait_for_a_part_being_stored(mysql_dsn: str) -> None:
    """A part inserted by a transaction still open is left for a later
    absorb; the absorb neither waits for it nor blocks it."""
    store = MySQLStore(mysql_dsn)
    try:
        store.learner_commit(G, {}, {}, {}, 1.0, None, {"e": _part(2.0, 1)})
        conn = pymysql.connect(**parse_dsn(store.dsn), autocommit=False)
        try:
            with conn.cursor() as c:
                c.execute(
                    "INSERT INTO snapshot_parts (experiment_id, counters, state, created_at) "
                    "VALUES ('e', %s, %s, 2.0)",
                    ('{"rewards": 1}', encode_state({"v": np.array([2.0])})),
                )
                t0 = time.monotonic()
                assert store.absorb_parts("e", _Update(0.0), 3.0) == 1
                assert time.monotonic() - t0 < 0.5
            conn.commit()
        finally:
            conn.close()
        assert store.pending_parts() == {"e": 1}
        assert store.absorb_parts("e", _Update(0.0), 4.0) == 2
        assert float(store.load_snapshot("e").state["v"][0]) == 4.0
    finally:
        store.close()
