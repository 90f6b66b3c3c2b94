"""Checks at the edge: Feedback dated before its decision, and range errors
that name the feature the caller gave."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from fakes import RecordingEventLog
from serverutil import Running, make_experiment, start_server

from bandit_engine import Context, Engine, ExperimentConfig, InvalidArgument, Limits
from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine.core.event_ids import event_time
from bandit_engine.features import FeatureSpace, feature_hash
from bandit_engine.store import SQLiteStore

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _engine(tmp_path: Path, clock: Clock, **kw: object) -> Engine:
    e = Engine(SQLiteStore(tmp_path / "state.db"), clock=clock, **kw)  # type: ignore[arg-type]
    e.create_experiment(ExperimentConfig("e", policy="beta_ts", dim=1, reward_window_s=60.0))
    e.add_arms("e", [("a", None), ("b", None)])
    return e


@pytest.mark.parametrize(
    ("timestamp", "needles"),
    [
        (1.0, ("timestamp=1.0", "1700000000.0", "1 s")),
        (-5.0, ("timestamp=-5.0", "positive")),
        (0.0, ("timestamp=0.0", "positive")),
        (T0 - 2.0, ("timestamp=1699999998.0", "1700000000.0")),
    ],
)
def test_embedded_feedback_before_its_decision_is_refused(
    tmp_path: Path, timestamp: float, needles: tuple[str, ...]
) -> None:
    clock = Clock()
    e = _engine(tmp_path, clock)
    d = e.recommend("e", k=2)
    clock.now += 5
    before = e.state_checksum()
    with pytest.raises(InvalidArgument) as info:
        e.feedback(d.event_id, "a", 1.0, timestamp=timestamp)
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    assert e.state_checksum() == before
    assert e.get_experiment("e").counters["rewards_applied"] == 0
    # within the clock-skew tolerance (Limits.max_clock_skew_s): applied
    assert e.feedback(d.event_id, "a", 1.0, timestamp=T0 - 0.5).outcome == "applied"
    e.close()


def test_embedded_feedback_for_a_closed_decision_checks_its_event_time(tmp_path: Path) -> None:
    clock = Clock()
    clock.now = float(int(__import__("time").time()))  # the event ids' wall clock
    e = _engine(tmp_path, clock)
    d = e.recommend("e", k=2)
    clock.now += 120
    e.sweep()  # the window closed: default rewards
    before = e.state_checksum()
    with pytest.raises(InvalidArgument, match=r"timestamp=1\.0 is before"):
        e.feedback(d.event_id, "a", 1.0, timestamp=1.0)
    assert e.state_checksum() == before
    assert e.feedback(d.event_id, "a", 1.0).outcome == "late"
    e.close()


def test_custom_clock_skew(tmp_path: Path) -> None:
    clock = Clock()
    e = _engine(tmp_path, clock, limits=Limits(max_clock_skew_s=10.0))
    d = e.recommend("e", k=2)
    assert e.feedback(d.event_id, "a", 1.0, timestamp=T0 - 9.0).outcome == "applied"
    with pytest.raises(InvalidArgument, match="clock skew of 10 s"):
        e.feedback(d.event_id, "b", 1.0, timestamp=T0 - 11.0)
    e.close()


@pytest.mark.parametrize("offset", [-1e9, -2.0, None])
def test_kafka_mode_edge_refuses_feedback_before_the_event_ids_time(
    tmp_path: Path, offset: float | None
) -> None:
    log = RecordingEventLog()
    e = _engine(tmp_path, Clock(), event_log=log)
    d = e.recommend("e", k=2)
    at = event_time(d.event_id)
    assert at == T0  # the id carries the decision's time on the engine's clock
    for ts in (-5.0, 0.0, 1.0, at + offset if offset is not None else -math.inf):
        with pytest.raises(InvalidArgument) as info:
            e.feedback(d.event_id, "a", 1.0, timestamp=ts)
        assert f"timestamp={ts!r}" in str(info.value)
    assert log.feedback_events() == []  # nothing reached the log
    assert e.feedback(d.event_id, "a", 1.0, timestamp=at - 0.5).outcome == "queued"
    assert e.feedback(d.event_id, "b", 1.0).outcome == "queued"
    assert len(log.feedback_events()) == 2
    e.close()


def test_event_time_reads_only_event_ids() -> None:
    assert event_time("0192d7f8a1b2" + "0" * 20) == int("0192d7f8a1b2", 16) / 1000
    for bad in ("", "xyz", "0192d7f8a1b2", "G" * 32, "0192D7F8A1B2" + "0" * 20, " " * 32):
        assert event_time(bad) is None


# ----------------------------------------------------------------- gRPC edge
@pytest.fixture
def live(tmp_path: Path) -> Iterator[Running]:
    r = start_server(tmp_path / "state")
    make_experiment(r.stub, "trips", dim=8, dense_dim=2)
    try:
        yield r
    finally:
        r.stop()


def _refused(r: Running, call: object, request: object, *needles: str) -> None:
    before = r.engine.state_checksum()
    with pytest.raises(grpc.RpcError) as info:
        call(request)  # type: ignore[operator]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    for needle in needles:
        assert needle in info.value.details(), info.value.details()
    assert r.engine.state_checksum() == before


def test_grpc_feedback_before_its_decision(live: Running) -> None:
    d = live.stub.Recommend(pb.RecommendRequest(experiment_id="trips", k=2))
    for ts in (1.0, -5.0, 0.0):
        _refused(
            live,
            live.stub.Feedback,
            pb.FeedbackRequest(
                event_id=d.event_id, arm_id=d.arms[0].arm_id, reward=1, timestamp=ts
            ),
            f"timestamp={ts!r}",
        )
    ok = live.stub.Feedback(
        pb.FeedbackRequest(event_id=d.event_id, arm_id=d.arms[0].arm_id, reward=1)
    )
    assert ok.outcome == pb.APPLIED


def _colliding(space: FeatureSpace) -> tuple[str, str]:
    """Two feature names that hash into one bucket with the same sign."""
    seen: dict[tuple[int, int], str] = {}
    for i in range(10_000):
        h = feature_hash(f"f{i}")
        key = (h % space.hashed_size, (h >> 62) & 1)
        if key in seen:
            return seen[key], f"f{i}"
        seen[key] = f"f{i}"
    raise AssertionError("no collision")


def test_range_errors_name_the_feature(live: Running) -> None:
    rec = live.stub.Recommend

    def req(**f: object) -> pb.RecommendRequest:
        return pb.RecommendRequest(experiment_id="trips", context=pb.Features(**f))  # type: ignore[arg-type]

    _refused(live, rec, req(numeric={"nights": 2e6}), "'nights'", "2000000.0", "1e+06")
    _refused(live, rec, req(numeric={"price": -math.inf}), "'price'", "-inf")
    _refused(live, rec, req(dense=[0.0, 5e7]), "dense[1]", "50000000.0")
    _refused(live, rec, req(dense=[math.nan, 0.0]), "dense[0]", "nan")
    a, b = _colliding(FeatureSpace(8, 2))
    _refused(live, rec, req(numeric={a: 7e5, b: 7e5}), repr(a), repr(b), "1400000.0")
    for where in ("index", "event 0"):
        with pytest.raises(grpc.RpcError) as info:
            rec(req(numeric={"nights": 2e6}))
        assert where not in info.value.details()


def test_ready_vector_errors_say_what_the_position_holds(tmp_path: Path) -> None:
    e = Engine(SQLiteStore(tmp_path / "s.db"))
    e.create_experiment(ExperimentConfig("v", dim=6, dense_dim=2))
    e.add_arms("v", [("a", None)])
    cases = [
        ([1.0, 0.0, 2e6, 0.0, 0.0, 0.0], "x[2] (dense feature dense[1]) is 2000000.0"),
        ([math.inf, 0.0, 0.0, 0.0, 0.0, 0.0], "x[0] (the intercept) is inf"),
        ([1.0, 0.0, 0.0, 0.0, math.nan, 0.0], "x[4] (hashed feature bucket 1) is nan"),
    ]
    for x, needle in cases:
        with pytest.raises(InvalidArgument) as info:
            e.recommend("v", np.array(x))
        assert needle in str(info.value)
    with pytest.raises(InvalidArgument, match="'nights'"):
        e.recommend("v", Context(numeric={"nights": 1e7}))
    e.close()
