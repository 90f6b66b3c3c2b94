"""Batched and streamed Recommend: each request its own decision, each bad
request refused in its place with its index and reason, the others served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from serverutil import Running, make_experiment, start_server

from bandit_engine import (
    BanditError,
    Context,
    Decision,
    Engine,
    ExperimentConfig,
    InvalidArgument,
    Limits,
    NotFound,
    RecommendItem,
    ResourceExhausted,
)
from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine.client import BanditClient
from bandit_engine.store import SQLiteStore

GOOD = RecommendItem("trips", Context(dense=[0.1, 0.2]), (), 2)
MIXED = [
    GOOD,
    RecommendItem("nowhere", None, (), 1),  # unknown experiment
    RecommendItem("trips", Context(dense=[0.1]), (), 1),  # dense of the wrong length
    RecommendItem("trips", None, ("paris", "rome"), 3),  # k above the candidates
    RecommendItem("trips", None, ("rome", "oslo"), 1),
]


def _engine(tmp_path: Path, **limits: int) -> Engine:
    e = Engine(SQLiteStore(tmp_path / "state.db"), seed=1, limits=Limits(**limits))
    e.create_experiment(ExperimentConfig("trips", dim=8, dense_dim=2))
    e.add_arms("trips", [(a, {}) for a in ("paris", "rome", "lisbon", "oslo")])
    return e


def _check_mixed(out: list[Decision | BanditError]) -> None:
    assert len(out) == 5
    first, unknown, dense, k, last = out
    assert isinstance(unknown, NotFound) and "'nowhere'" in str(unknown)
    assert isinstance(dense, InvalidArgument) and "dense" in str(dense)
    assert isinstance(k, InvalidArgument) and "k=3" in str(k)
    assert isinstance(first, Decision) and isinstance(last, Decision)
    assert len(first.arm_ids) == 2
    assert last.arm_ids[0] in ("rome", "oslo")
    assert first.event_id != last.event_id


def test_engine_batch_serves_each_item_on_its_own(tmp_path: Path) -> None:
    e = _engine(tmp_path)
    out = e.recommend_batch(MIXED)
    _check_mixed(out)
    served = [d for d in out if not isinstance(d, BanditError)]
    # each served item is a decision of its own: logged, and rewarded on its own
    for d in served:
        assert e.feedback(d.event_id, d.arm_ids[0], 1.0).outcome == "applied"
    e.flush()
    assert {r.event_id for r in e.store.decisions("trips")} == {d.event_id for d in served}
    e.close()


def test_a_batch_over_the_limit_serves_nothing(tmp_path: Path) -> None:
    e = _engine(tmp_path, max_batch=3)
    before = e.state_checksum()
    with pytest.raises(ResourceExhausted, match="4 requests in one batch; the limit is 3"):
        e.recommend_batch([GOOD] * 4)
    assert e.state_checksum() == before
    assert len(e.recommend_batch([GOOD] * 3)) == 3
    e.close()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    r = start_server(tmp_path)
    make_experiment(r.stub)
    try:
        yield r
    finally:
        r.stop()


def test_batch_over_grpc(running: Running) -> None:
    with BanditClient(f"127.0.0.1:{running.port}", timeout=10) as client:
        out = client.recommend_batch(MIXED)
    _check_mixed(out)
    resp = running.stub.RecommendBatch(
        pb.RecommendBatchRequest(
            requests=[pb.RecommendRequest(experiment_id="trips", k=1)] * 2
            + [pb.RecommendRequest(experiment_id="trips", k=99)]
        )
    )
    assert [r.index for r in resp.results] == [0, 1, 2]
    assert [r.WhichOneof("outcome") for r in resp.results] == ["response", "response", "error"]
    assert resp.results[2].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "k=99" in resp.results[2].error.message


def test_stream_answers_each_request_in_order_and_goes_on_after_errors(
    running: Running,
) -> None:
    call = running.channel.stream_stream(
        "/bandit.v1.BanditService/RecommendStream",
        request_serializer=None,  # raw bytes: one message protobuf cannot parse
        response_deserializer=pb.RecommendResult.FromString,
    )
    good = pb.RecommendRequest(experiment_id="trips", k=2).SerializeToString()
    requests = [
        good,
        pb.RecommendRequest(experiment_id="gone").SerializeToString(),
        b"\xff\xff\xff",
        good,
    ]
    results = list(call(iter(requests), timeout=10))
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert [r.WhichOneof("outcome") for r in results] == ["response", "error", "error", "response"]
    assert results[1].error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "'gone'" in results[1].error.message
    assert results[2].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "malformed RecommendRequest" in results[2].error.message
    ids = {results[0].response.event_id, results[3].response.event_id}
    assert len(ids) == 2
    # the stream's decisions are decisions like any other
    for ev in ids:
        arm = next(r.response.arms[0].arm_id for r in results if r.response.event_id == ev)
        fb = running.stub.Feedback(pb.FeedbackRequest(event_id=ev, arm_id=arm, reward=1))
        assert fb.outcome == pb.APPLIED


def test_batch_and_stream_need_the_serve_scope(tmp_path: Path) -> None:
    token = "s" * 32
    r = start_server(tmp_path, tokens={token: frozenset({"serve"})})
    try:
        meta = (("authorization", f"Bearer {token}"),)
        req = pb.RecommendRequest(experiment_id="nowhere")
        with pytest.raises(grpc.RpcError) as err:
            r.stub.RecommendBatch(pb.RecommendBatchRequest(requests=[req]))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            list(r.stub.RecommendStream(iter([req]), timeout=10))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        out = r.stub.RecommendBatch(pb.RecommendBatchRequest(requests=[req]), metadata=meta)
        assert out.results[0].error.code == grpc.StatusCode.NOT_FOUND.value[0]
        streamed = list(r.stub.RecommendStream(iter([req]), metadata=meta, timeout=10))
        assert streamed[0].error.code == grpc.StatusCode.NOT_FOUND.value[0]
    finally:
        r.stop()
