"""One contract, every store: SQLite and MySQL pass the same tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pymysql
import pytest

from bandit_engine import StoreError
from bandit_engine.store import (
    ArmRow,
    DecisionRow,
    MySQLStore,
    RewardRow,
    Snapshot,
    SQLiteStore,
    Store,
    parse_dsn,
)


def decision(ev: str, exp: str = "e", arms: tuple[str, ...] = ("a", "b")) -> DecisionRow:
    return DecisionRow(
        ev, exp, 10.0, 70.0, 3, np.array([1.0, 0.5, -2.0]), arms, (0.9, 0.1), (0.7, 0.3), ("a", "b")
    )


def reward(ev: str, arm: str = "a", r: float = 1.0, source: str = "feedback") -> RewardRow:
    return RewardRow(ev, arm, "e", 0, np.array([1.0, 0.5, -2.0]), r, r, source, 12.0)


def test_experiments_and_arms(store: Store) -> None:
    store.create_experiment("e", {"policy": "beta_ts", "dim": 1}, 1.0)
    store.create_experiment("f", {"policy": "lin_ts_disjoint", "dim": 4}, 2.0)
    assert store.load_experiments() == [
        ("e", {"policy": "beta_ts", "dim": 1}, 0),
        ("f", {"policy": "lin_ts_disjoint", "dim": 4}, 0),
    ]
    feats = {"numeric": {"stars": 4.0}, "categorical": ["country=FR"]}
    store.upsert_arms([ArmRow("e", "a", 0, feats, True), ArmRow("e", "b", 1, {}, True)])
    store.upsert_arms([ArmRow("e", "a", 0, feats, False)])
    assert store.load_arms("e") == [
        ArmRow("e", "a", 0, feats, False),
        ArmRow("e", "b", 1, {}, True),
    ]
    assert store.load_experiments()[0][2] == 3  # arm changes counted


def test_rewards_are_unique_per_event_and_arm(store: Store) -> None:
    store.create_experiment("e", {}, 1.0)
    store.log_decisions([decision("ev1"), decision("ev2")])
    s1 = store.commit_rewards([reward("ev1"), reward("ev1", "b", 0.0)])
    assert all(isinstance(s, int) for s in s1) and s1[0] < s1[1]  # type: ignore[operator]
    again = store.commit_rewards([reward("ev1", r=0.5), reward("ev2")], close_events=["ev1"])
    assert again[0] is None and isinstance(again[1], int)
    assert store.reward_source("ev1", "a") == "feedback"
    assert store.reward_source("ev2", "b") is None
    assert store.decision_status("ev1") == ("e", True)
    assert store.decision_status("ev2") == ("e", False)
    assert store.decision_status("nope") is None
    rows = list(store.rewards_after("e", s1[0]))  # type: ignore[arg-type]
    assert [(r.event_id, r.arm_id) for r in rows] == [("ev1", "b"), ("ev2", "a")]
    np.testing.assert_array_equal(rows[0].x, [1.0, 0.5, -2.0])
    assert [r.event_id for r in store.rewards()] == ["ev1", "ev1", "ev2"]


def test_decisions_round_trip_and_open_set(store: Store) -> None:
    store.create_experiment("e", {}, 1.0)
    store.log_decisions([decision("ev1"), decision("ev2")])
    store.log_decisions([decision("ev1")])  # a re-sent batch is ignored
    got = list(store.decisions("e"))
    assert [d.event_id for d in got] == ["ev1", "ev2"]
    d = got[0]
    assert (d.arms, d.scores, d.propensities, d.candidates) == (
        ("a", "b"),
        (0.9, 0.1),
        (0.7, 0.3),
        ("a", "b"),
    )
    store.commit_rewards([reward("ev2", "b")], close_events=["ev1"])
    open_ = list(store.open_decisions())
    assert [(o.event_id, r) for o, r in open_] == [("ev2", {"b": 1.0})]


def test_snapshots(store: Store) -> None:
    state = {"A": np.eye(3) * 2.5, "b": np.arange(3.0), "pulls": np.array([1, 2], dtype=np.int64)}
    assert store.load_snapshot("e") is None
    store.save_snapshot(Snapshot("e", 7, state, {"decisions": 4}, 5.0))
    store.save_snapshot(Snapshot("e", 9, state, {"decisions": 5}, 6.0))
    snap = store.load_snapshot("e")
    assert snap is not None and snap.last_seq == 9 and snap.counters == {"decisions": 5}
    for k, v in state.items():
        np.testing.assert_array_equal(snap.state[k], v)
        assert snap.state[k].dtype == v.dtype


def test_mysql_survives_killed_connection(mysql_dsn: str) -> None:
    store = MySQLStore(mysql_dsn)
    store.create_experiment("e", {}, 1.0)
    store.log_decisions([decision("ev1"), decision("ev2")])
    args = parse_dsn(mysql_dsn)
    admin = pymysql.connect(
        host=args["host"], port=args["port"], user=args["user"], password=args["password"]
    )
    with admin.cursor() as cur:
        cur.execute(f"KILL {store.connection_id()}")
    # the next call finds the link dead, reconnects, and applies exactly once
    assert isinstance(store.commit_rewards([reward("ev1")])[0], int)
    assert store.commit_rewards([reward("ev1")]) == [None]
    assert [r.event_id for r in store.rewards()] == ["ev1"]
    admin.close()
    store.close()


def test_mysql_retry_recognises_its_own_lost_commit(mysql_dsn: str) -> None:
    """A commit that landed but whose reply was lost is ours, not a duplicate."""
    store = MySQLStore(mysql_dsn)
    store.create_experiment("e", {}, 1.0)
    store.log_decisions([decision("ev1")])
    calls = {"n": 0}

    class Flaky:
        def __init__(self, conn: object) -> None:
            self._conn = conn

        def __getattr__(self, name: str) -> object:
            return getattr(self._conn, name)

        def commit(self) -> None:
            self._conn.commit()  # type: ignore[attr-defined]
            calls["n"] += 1
            if calls["n"] == 1:
                raise pymysql.err.OperationalError(2013, "Lost connection during query")

    store._conn = Flaky(store._connect())
    seqs = store.commit_rewards([reward("ev1")])
    assert isinstance(seqs[0], int), "the store's own committed row comes back as applied"
    assert len(list(store.rewards())) == 1


def test_mysql_bad_dsn_and_unreachable() -> None:
    with pytest.raises(Exception, match="mysql://"):
        parse_dsn("postgres://x/y")
    with pytest.raises(Exception, match="names no database"):
        parse_dsn("mysql://root@127.0.0.1:3306")
    with pytest.raises(StoreError, match="cannot connect"):
        MySQLStore("mysql://root@127.0.0.1:1/x?connect_timeout=1")


def test_mysql_learner_held_rewards_round_trip(mysql_dsn: str) -> None:
    """The rewards a learner's replay cannot rebuild alone, stored with its
    offsets: waiting ones replaced at each commit (kept as runs), unknown ones
    added and dropped once fb_resume passes them; other partitions untouched."""
    from bandit_engine.store import HeldRewards, LearnerOffsets

    store = MySQLStore(mysql_dsn)
    try:
        g = "held-test"
        off = {0: LearnerOffsets(5, 0, 40, 2, 1.0), 1: LearnerOffsets(1, 0, 9, 0, 1.0)}
        orphans = (30, 7, 8, 9, 12, 31, 32)
        store.learner_commit(
            g,
            {},
            {},
            off,
            1.0,
            {0: HeldRewards(orphans, (3, 25)), 1: HeldRewards((4,), ())},
        )
        held = store.learner_held(g)
        assert held[0] == HeldRewards((7, 8, 9, 12, 30, 31, 32), (3, 25))
        assert held[1] == HeldRewards((4,), ())
        off[0] = LearnerOffsets(6, 0, 50, 10, 2.0)  # fb_resume 10 passes unknown 3
        store.learner_commit(g, {}, {}, off, 2.0, {0: HeldRewards((45,), (41,))})
        held = store.learner_held(g)
        assert held[0] == HeldRewards((45,), (25, 41))
        assert held[1] == HeldRewards((4,), ())  # absent from the commit: kept
        assert store.learner_held("another-group") == {}
    finally:
        store.close()


def test_sqlite_decision_rows_in_either_encoding_load(tmp_path: Path) -> None:
    """Scores and propensities as JSON text (files written before schema 3)
    and as float64 blobs (written now) read back the same."""
    import sqlite3

    path = tmp_path / "state.db"
    store = SQLiteStore(path)
    row = DecisionRow("e0", "exp", 1.0, 2.0, 3, np.arange(3.0), ("a", "b"), (0.1, -2.5), (0.9, 0.0))
    store.log_decisions([row])
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO decisions (event_id, experiment_id, created_at, deadline, model_version,"
            " x, arms, scores, propensities, candidates) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                "e1",
                "exp",
                1.0,
                2.0,
                3,
                np.arange(3.0).tobytes(),
                '["a", "b"]',
                "[0.1, -2.5]",
                "[0.9, 0.0]",
                "[]",
            ),
        )
        kinds = [k for (k,) in db.execute("SELECT typeof(scores) FROM decisions ORDER BY seq")]
    assert kinds == ["blob", "text"]
    back = list(store.decisions("exp"))
    assert [(r.scores, r.propensities) for r in back] == [((0.1, -2.5), (0.9, 0.0))] * 2
    store.close()
