"""Log retention (``serve --log-retention``): closed decisions and their
rewards leave the SQLite/MySQL log; nothing a restart or a retried Feedback
needs does, and the posterior does not move."""

from __future__ import annotations

import argparse
import random
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from harness.services import admin_connection
from test_engine import Clock, ctx, setup

from bandit_engine import Engine, InvalidArgument, NotFound
from bandit_engine.cli import duration
from bandit_engine.store import (
    DecisionRow,
    MySQLStore,
    RewardRow,
    Snapshot,
    SQLiteStore,
    Store,
    parse_dsn,
)

#: the schema versions of today's stores
SQLITE_SCHEMA, MYSQL_SCHEMA = 6, 8


def _decision(ev: str, deadline: float) -> DecisionRow:
    return DecisionRow(
        ev,
        "e",
        deadline - 60,
        deadline,
        1,
        np.array([1.0, 2.0]),
        ("a", "b"),
        (0.5, 0.4),
        (0.6, 0.4),
    )


def _reward(ev: str, arm: str, ts: float = 1.0) -> RewardRow:
    return RewardRow(
        ev, arm, "e", 0 if arm == "a" else 1, np.array([1.0, 2.0]), 1.0, 1.0, "feedback", ts
    )


def _snapshot(store: Store, last_seq: int) -> None:
    store.save_snapshot(Snapshot("e", last_seq, {"alpha": np.ones(2)}, {}, 0.0))


def _events(store: Store) -> tuple[set[str], set[tuple[str, str]]]:
    return {d.event_id for d in store.decisions()}, {
        (r.event_id, r.arm_id) for r in store.rewards()
    }


def test_store_prunes_closed_decisions_with_their_covered_rewards(store: Store) -> None:
    store.create_experiment("e", {}, 0.0)
    store.log_decisions(
        [
            _decision("old", 100.0),  # closed, past the horizon: goes with its rewards
            _decision("old_open", 100.0),  # deadline passed but not closed: stays
            _decision("recent", 900.0),  # closed after the horizon: stays
            _decision("uncovered", 100.0),  # a reward not in the snapshot: waits
            _decision("silent", 100.0),  # closed without any reward row: goes
        ]
    )
    seqs = store.commit_rewards(
        [
            _reward("old", "a"),
            _reward("old", "b"),
            _reward("old_open", "a"),
            _reward("recent", "a"),
        ],
        close_events=["old", "recent", "silent"],
    )
    last = max(s for s in seqs if s is not None)
    _snapshot(store, last)
    (late_seq,) = store.commit_rewards([_reward("uncovered", "a")], close_events=["uncovered"])
    assert late_seq is not None and late_seq > last

    assert store.prune_log(500.0, 10) == (2, 2)
    decisions, rewards = _events(store)
    assert decisions == {"old_open", "recent", "uncovered"}
    assert rewards == {("old_open", "a"), ("recent", "a"), ("uncovered", "a")}
    assert store.decision_status("old") is None
    # what a restart reloads is intact: the open decision and its rewarded arm
    assert [(d.event_id, set(arms)) for d, arms in store.open_decisions()] == [("old_open", {"a"})]
    assert store.prune_log(500.0, 10) == (0, 0)  # nothing else is due

    _snapshot(store, late_seq)  # the snapshot now includes the last reward
    assert store.prune_log(500.0, 10) == (1, 1)
    assert _events(store)[0] == {"old_open", "recent"}
    assert store.prune_log(1000.0, 10) == (1, 1)  # a later horizon takes "recent"
    assert _events(store) == ({"old_open"}, {("old_open", "a")})


def test_store_prunes_in_chunks_of_the_limit(store: Store) -> None:
    store.create_experiment("e", {}, 0.0)
    evs = [f"ev{i}" for i in range(7)]
    store.log_decisions([_decision(ev, 100.0 + i) for i, ev in enumerate(evs)])
    seqs = store.commit_rewards([_reward(ev, "a") for ev in evs], close_events=evs)
    _snapshot(store, max(s for s in seqs if s is not None))
    got = [store.prune_log(500.0, 3) for _ in range(4)]
    assert got == [(3, 3), (3, 3), (1, 1), (0, 0)]
    assert _events(store) == (set(), set())
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="limit"):
            store.prune_log(500.0, bad)  # type: ignore[arg-type]


def test_engine_prune_keeps_posterior_restart_and_idempotence(tmp_path: Path) -> None:
    clock = Clock()
    e = Engine(SQLiteStore(tmp_path / "state.db"), seed=3, clock=clock, log_retention=3600.0)
    setup(e, "lin_ts_disjoint")
    rng = random.Random(2)
    old = [e.recommend("exp", ctx(rng), k=2) for _ in range(30)]
    for i, d in enumerate(old[:20]):
        e.feedback(d.event_id, d.arm_ids[i % 2], rng.choice([0.0, 5.0]))
    clock.t += 61.0
    e.sweep()  # the windows close: default rewards for the rest
    e.checkpoint()
    clock.t += 1800.0
    assert not e.prune_log()  # within the retention: nothing to delete
    assert e.pruned_decisions == 0
    clock.t += 1900.0  # the old windows closed more than an hour ago
    fresh = [e.recommend("exp", ctx(rng), k=2) for _ in range(5)]  # open
    e.flush()
    before = e.state_checksum()
    assert not e.prune_log(limit=7)  # done within the budget, several chunks
    assert (e.pruned_decisions, e.pruned_rewards) == (30, 60)
    assert e.state_checksum() == before
    assert {d.event_id for d in e.store.decisions()} == {d.event_id for d in fresh}
    # a retried Feedback for a deleted decision is refused, not applied
    with pytest.raises(NotFound, match=old[0].event_id):
        e.feedback(old[0].event_id, old[0].arm_ids[0], 5.0)
    assert e.state_checksum() == before
    e.close()

    e2 = Engine(SQLiteStore(tmp_path / "state.db"), seed=3, clock=clock, log_retention=3600.0)
    assert e2.state_checksum() == before  # snapshot + replay after it + open decisions
    assert e2.feedback(fresh[0].event_id, fresh[0].arm_ids[0], 5.0).outcome == "applied"
    assert e2.feedback(fresh[0].event_id, fresh[0].arm_ids[0], 5.0).outcome == "duplicate"
    e2.close()


def test_engine_without_retention_keeps_everything(tmp_path: Path) -> None:
    clock = Clock()
    e = Engine(SQLiteStore(tmp_path / "state.db"), seed=3, clock=clock)
    setup(e, "beta_ts")
    rng = random.Random(2)
    for _ in range(5):
        e.recommend("exp", ctx(rng), k=2)
    clock.t += 1e7
    e.sweep()
    e.checkpoint()
    assert not e.prune_log()
    assert len(list(e.store.decisions())) == 5
    e.close()


@pytest.mark.parametrize(
    "kw", [{"log_retention": -1.0}, {"log_retention": float("nan")}, {"prune_interval": 0.0}]
)
def test_engine_refuses_bad_retention_settings(tmp_path: Path, kw: dict[str, float]) -> None:
    name, value = next(iter(kw.items()))
    with pytest.raises(InvalidArgument, match=f"{name}={value!r}".replace("(", r"\(")):
        Engine(SQLiteStore(tmp_path / "s.db"), **kw)  # type: ignore[arg-type]


def test_duration_parsing() -> None:
    assert duration("90") == 90.0
    assert duration("15m") == 900.0
    assert duration("12h") == 43200.0
    assert duration("7d") == 604800.0
    assert duration("0") == 0.0
    for bad in ("soon", "7w", "-1h", "inf", ""):
        with pytest.raises(argparse.ArgumentTypeError, match=repr(bad).replace("(", r"\(")):
            duration(bad)


def _sql(where: str, *statements: str) -> list[tuple[object, ...]]:
    """Run statements on the store's database directly (a SQLite file, or a
    MySQL DSN), as an operator or an older version of the engine would;
    the rows of the last one."""
    rows: list[tuple[object, ...]] = []
    if not where.startswith("mysql://"):
        with sqlite3.connect(where) as db:
            for sql in statements:
                rows = list(db.execute(sql).fetchall())
        return rows
    conn = admin_connection(where)
    try:
        conn.select_db(parse_dsn(where)["database"])
        with conn.cursor() as c:
            for sql in statements:
                c.execute(sql)
                rows = list(c.fetchall())
    finally:
        conn.close()
    return rows


_INDEXES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'decisions'",
    "mysql": "SELECT index_name FROM information_schema.statistics "
    "WHERE table_schema = DATABASE() AND table_name = 'decisions'",
}


@pytest.mark.parametrize("kind", ["sqlite", "mysql"])
def test_older_schema_gains_the_retention_index(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A store made by the previous schema version (index on ``closed`` alone)
    is migrated on open: the index gains the deadline, the rows stay."""
    store: Store
    if kind == "sqlite":
        where = str(tmp_path / "state.db")
        store = SQLiteStore(where)
        store.log_decisions([_decision("d1", 100.0)])
        store.close()
        _sql(
            where,
            "DROP INDEX decisions_closed",
            "CREATE INDEX decisions_open ON decisions (closed)",
            "ALTER TABLE rewards DROP COLUMN weight",
            "DROP TABLE policy_changes",
            "UPDATE schema_version SET version = 1",
        )
        store = SQLiteStore(where)
        want = SQLITE_SCHEMA
    else:
        where = request.getfixturevalue("mysql_dsn")
        store = MySQLStore(where)
        store.log_decisions([_decision("d1", 100.0)])
        store.close()
        _sql(
            where,
            "ALTER TABLE decisions DROP KEY decisions_closed, ADD KEY decisions_open (closed)",
            "ALTER TABLE rewards DROP COLUMN weight",
            "DROP TABLE policy_changes",
            "DROP TABLE snapshot_parts",
            "UPDATE schema_version SET version = 3",
        )
        store = MySQLStore(where)
        want = MYSQL_SCHEMA
    assert _sql(where, "SELECT version FROM schema_version")[0][0] == want
    idx = {str(r[0]) for r in _sql(where, _INDEXES[kind])}
    assert "decisions_closed" in idx and "decisions_open" not in idx
    # rewards gained their click-model weight, 1 for the rows before it
    assert _sql(where, "SELECT COUNT(weight) FROM rewards")[0][0] == 0
    assert [d.event_id for d in store.decisions()] == ["d1"]
    assert store.policy_changes() == []  # the table is there again, empty
    if kind == "mysql":
        assert store.pending_parts() == {}  # so is snapshot_parts
    store.close()


def test_served_engine_prunes_through_its_maintenance_loop(tmp_path: Path) -> None:
    """``serve --log-retention`` end to end: a real server on port 0 closes the
    windows, snapshots, deletes the closed decisions; the posterior served
    over the wire does not move, and a retried Feedback is NOT_FOUND."""
    import grpc
    from serverutil import make_experiment, start_server
    from test_metrics import scrape

    from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb

    r = start_server(
        tmp_path / "state",
        log_retention=0.3,
        prune_interval=0.1,
        checkpoint_interval=0.1,
        metrics_port=0,
    )
    try:
        make_experiment(r.stub, reward_window_seconds=0.2, default_reward=0.0)
        context = pb.Features(dense=[0.5, -1.0], categorical=["country=NL"])
        events = []
        for i in range(10):
            resp = r.stub.Recommend(
                pb.RecommendRequest(experiment_id="trips", context=context, k=2)
            )
            events.append((resp.event_id, resp.arms[0].arm_id))
            if i % 3 == 0:
                r.stub.Feedback(
                    pb.FeedbackRequest(event_id=resp.event_id, arm_id=resp.arms[0].arm_id, reward=1)
                )

        def posteriors() -> list[pb.ArmPosterior]:
            return [
                r.stub.GetArm(
                    pb.GetArmRequest(experiment_id="trips", arm_id=a, context=context)
                ).posterior
                for a in ("paris", "rome", "lisbon", "oslo")
            ]

        deadline = time.time() + 15
        while time.time() < deadline and r.engine.pruned_decisions < 10:
            time.sleep(0.05)
        assert (r.engine.pruned_decisions, r.engine.pruned_rewards) == (10, 20)
        assert sum(p.pulls for p in posteriors()) == 20  # 4 clicks + 16 defaults
        assert list(r.engine.store.decisions()) == []
        before = posteriors()
        with pytest.raises(grpc.RpcError) as err:
            r.stub.Feedback(
                pb.FeedbackRequest(event_id=events[0][0], arm_id=events[0][1], reward=1)
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert events[0][0] in (err.value.details() or "")
        assert posteriors() == before
        metrics = scrape(r.server.metrics.port)
        assert metrics['bandit_log_pruned_rows_total{table="decisions"}'] == 10
        assert metrics['bandit_log_pruned_rows_total{table="rewards"}'] == 20
    finally:
        r.stop()
