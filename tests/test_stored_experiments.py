"""A stored experiment that cannot be loaded does not stop the others.

The rows are damaged directly in SQLite and MySQL (as an older server with
other limits, a hand edit or a bad disk would leave them); the engine then
starts, logs one ERROR naming the experiment and why, serves the others,
and answers the damaged one FAILED_PRECONDITION with the reason.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from fakes import RecordingEventLog
from harness.services import admin_connection
from serverutil import start_server

from bandit_engine import (
    AlreadyExists,
    Engine,
    ExperimentConfig,
    FailedPrecondition,
)
from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine.store import MySQLStore, SQLiteStore, Store

GOOD = ExperimentConfig("good", dim=3)
BAD = ExperimentConfig("bad", dim=3)

# (what is damaged, the SQL's table and column, the new value, the reason's text)
DAMAGE: list[tuple[str, str, str, Any, str]] = [
    (
        "dim over max_dim",
        "experiments",
        "config",
        json.dumps({**BAD.to_dict(), "dim": 1_000_000}),
        "dim=1000000 is over the limit max_dim=4096",
    ),
    (
        "decay out of range",
        "experiments",
        "config",
        json.dumps({**BAD.to_dict(), "decay": -2.0}),
        "decay=-2.0",
    ),
    ("config not JSON", "experiments", "config", "{oops", "not JSON"),
    ("config not an object", "experiments", "config", "[3]", "not a JSON object"),
    ("snapshot unreadable", "snapshots", "state", b"garbage", "snapshot state of 7 bytes"),
    ("arm features not JSON", "arms", "features", "{", "JSONDecodeError"),
]


def _populate(store: Store) -> None:
    e = Engine(store, seed=1)
    for cfg in (GOOD, BAD):
        e.create_experiment(cfg)
        e.add_arms(cfg.experiment_id, [("a", None), ("b", None)])
        for _ in range(3):
            d = e.recommend(cfg.experiment_id, np.array([1.0, 0.5, -0.5]))
            e.feedback(d.event_id, d.arm_ids[0], 1.0)
    e.close()  # a snapshot of each


@pytest.fixture(params=["sqlite", "mysql"])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    """A populated store of each kind; ``reopen(table, column, value)`` damages
    the bad experiment's rows, ``reopen()`` opens an engine over them."""
    opened: list[Engine] = []
    if request.param == "sqlite":
        path = tmp_path / "state.db"

        def store() -> Store:
            return SQLiteStore(path)

        def damage(table: str, column: str, value: Any) -> None:
            db = sqlite3.connect(path)
            db.execute(f"UPDATE {table} SET {column} = ? WHERE experiment_id = 'bad'", (value,))
            db.commit()
            db.close()
    else:
        dsn = request.getfixturevalue("mysql_dsn")

        def store() -> Store:
            return MySQLStore(dsn)

        def damage(table: str, column: str, value: Any) -> None:
            conn = admin_connection(dsn)
            with conn.cursor() as cur:
                cur.execute(f"USE `{dsn.rsplit('/', 1)[1]}`")
                cur.execute(
                    f"UPDATE {table} SET {column} = %s WHERE experiment_id = 'bad'", (value,)
                )
            conn.close()

    _populate(store())

    def reopen(*change: Any, **kw: Any) -> Engine:
        if change:
            damage(*change)
        e = Engine(store(), seed=1, **kw)
        opened.append(e)
        return e

    reopen.kind = request.param  # type: ignore[attr-defined]
    reopen.dsn = None if request.param == "sqlite" else dsn  # type: ignore[attr-defined]
    reopen.state_dir = tmp_path  # type: ignore[attr-defined]
    yield reopen
    for e in opened:
        e.close()


@pytest.mark.parametrize(
    ("what", "table", "column", "value", "reason"), DAMAGE, ids=[d[0] for d in DAMAGE]
)
def test_a_bad_experiment_is_refused_and_the_others_served(
    reopen: Callable[..., Engine],
    caplog: pytest.LogCaptureFixture,
    what: str,
    table: str,
    column: str,
    value: Any,
    reason: str,
) -> None:
    with caplog.at_level(logging.ERROR, logger="bandit_engine"):
        e = reopen(table, column, value)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "bad" in errors[0] and reason in errors[0], errors[0]
    # the good one is served, with its posterior
    assert list(e.experiments()) == ["good"]
    assert e.get_experiment("good").model_version == 2 + 3
    d = e.recommend("good", np.array([1.0, 0.0, 1.0]))
    assert e.feedback(d.event_id, d.arm_ids[0], 0.0).outcome == "applied"
    # the bad one: FAILED_PRECONDITION, naming why; its id stays taken
    for call in (
        lambda: e.get_experiment("bad"),
        lambda: e.recommend("bad", np.array([1.0, 0.0, 1.0])),
        lambda: e.add_arms("bad", [("c", None)]),
        lambda: e.retire_arm("bad", "a"),
        lambda: e.list_arms("bad"),
    ):
        with pytest.raises(FailedPrecondition) as info:
            call()
        assert "'bad'" in str(info.value) and reason in str(info.value)
    with pytest.raises(AlreadyExists):
        e.create_experiment(BAD)
    assert [i.config.experiment_id for i in e.list_experiments()] == ["good"]


def test_grpc_answers_failed_precondition_for_the_bad_one(
    reopen: Callable[..., Engine],
) -> None:
    reopen("experiments", "config", json.dumps({**BAD.to_dict(), "dim": 4294967295}))
    kw: dict[str, Any] = {}
    if reopen.kind == "mysql":  # type: ignore[attr-defined]
        kw["mysql_dsn"] = reopen.dsn  # type: ignore[attr-defined]
    r = start_server(reopen.state_dir, **kw)  # type: ignore[attr-defined]
    try:
        ctx = pb.Features(dense=[], numeric={"x": 1.0})
        assert r.stub.Recommend(pb.RecommendRequest(experiment_id="good", context=ctx)).arms
        for call, request in (
            (r.stub.GetExperiment, pb.GetExperimentRequest(experiment_id="bad")),
            (r.stub.Recommend, pb.RecommendRequest(experiment_id="bad")),
            (r.stub.ListArms, pb.ListArmsRequest(experiment_id="bad")),
        ):
            with pytest.raises(grpc.RpcError) as info:
                call(request)
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "'bad'" in info.value.details() and "dim=4294967295" in info.value.details()
        listed = r.stub.ListExperiments(pb.ListExperimentsRequest())
        assert [x.spec.experiment_id for x in listed.experiments] == ["good"]
    finally:
        r.stop()


def test_kafka_mode_refresh_sets_a_new_bad_experiment_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.db"
    e = Engine(SQLiteStore(path), event_log=RecordingEventLog())
    e.create_experiment(GOOD)
    other = SQLiteStore(path)  # another server writes a config this one refuses
    other.create_experiment("bad", {**BAD.to_dict(), "dim": 10**9}, 0.0)
    other.close()
    with caplog.at_level(logging.ERROR, logger="bandit_engine"):
        e.refresh()
        e.refresh()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "bad" in errors[0] and "max_dim" in errors[0]
    with pytest.raises(FailedPrecondition, match="dim=1000000000"):
        e.get_experiment("bad")
    assert list(e.experiments()) == ["good"]
    e.close()


def test_a_config_stored_before_exploration_keeps_its_draws(tmp_path: Path) -> None:
    """A lin_ts_disjoint config written before ``exploration`` and the learned
    noise scale existed (``noise_scale`` 0.25, no ``exploration``) loads with
    exploration 1.0: its draws keep the spread they had."""
    old = {k: v for k, v in GOOD.to_dict().items() if k != "exploration"}
    old["noise_scale"] = 0.25
    store = SQLiteStore(tmp_path / "state.db")
    store.create_experiment("good", old, 0.0)
    store.close()
    engine = Engine(SQLiteStore(tmp_path / "state.db"), seed=0)
    try:
        cfg = engine.get_experiment("good").config
        assert (cfg.noise_scale, cfg.exploration) == (0.25, 1.0)
        fresh = ExperimentConfig("new", dim=3)
        assert (fresh.noise_scale, fresh.exploration) == (None, 0.5)
    finally:
        engine.close()
