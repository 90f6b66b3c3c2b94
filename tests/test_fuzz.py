"""Fuzzing a live server: random requests and raw bytes never crash it.

Every well-formed request gets OK or a client-error status, never UNKNOWN or
INTERNAL; a rejected one leaves the state checksum as it was; raw bytes that
do not decode get a status too (grpc answers INTERNAL for those); and the
server still reports SERVING afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serverutil import Running, make_experiment, start_server

from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine.core.config import Limits

CLIENT_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ALREADY_EXISTS,
}

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    r = start_server(
        Path(tmp_path_factory.mktemp("fuzz")), limits=Limits(max_candidates=20, max_features=16)
    )
    make_experiment(r.stub, "e", dim=6, dense_dim=2)
    r.event = r.stub.Recommend(pb.RecommendRequest(experiment_id="e", k=2))  # type: ignore[attr-defined]
    yield r
    health = health_pb2_grpc.HealthStub(r.channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    r.stop()


ids = st.one_of(
    st.sampled_from(["e", "paris", "rome", "lisbon", "oslo", "", "nope"]), st.text(max_size=40)
)
floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
features = st.builds(
    pb.Features,
    dense=st.lists(floats, max_size=4),
    numeric=st.dictionaries(st.text(max_size=12), floats, max_size=18),
    categorical=st.lists(st.text(max_size=12), max_size=18),
)
recommends = st.builds(
    pb.RecommendRequest,
    experiment_id=ids,
    context=features,
    candidates=st.lists(ids, max_size=22),
    k=st.integers(0, 2**32 - 1),
)


def check(live: Running, call: Any, request: Any) -> None:
    before = live.engine.state_checksum()
    try:
        call(request, timeout=10)
    except grpc.RpcError as exc:
        assert exc.code() in CLIENT_ERRORS, (exc.code(), exc.details(), request)
        assert live.engine.state_checksum() == before, request


@FUZZ
@given(req=recommends)
def test_recommend(live: Running, req: pb.RecommendRequest) -> None:
    check(live, live.stub.Recommend, req)


@FUZZ
@given(
    event=st.one_of(st.just("known"), ids), arm=ids, reward=floats, ts=st.one_of(st.none(), floats)
)
def test_feedback(live: Running, event: str, arm: str, reward: float, ts: float | None) -> None:
    ev = live.event.event_id if event == "known" else event  # type: ignore[attr-defined]
    req = pb.FeedbackRequest(event_id=ev, arm_id=arm, reward=reward)
    if ts is not None:
        req.timestamp = ts
    check(live, live.stub.Feedback, req)


@FUZZ
@given(
    spec=st.builds(
        pb.ExperimentSpec,
        experiment_id=ids,
        policy=st.integers(0, 6),
        dim=st.integers(0, 70),
        dense_dim=st.integers(0, 70),
        reward_min=floats,
        reward_max=floats,
        decay=floats,
        prior_precision=floats,
        propensity_draws=st.integers(0, 2_000_000),
    )
)
def test_create_experiment(live: Running, spec: pb.ExperimentSpec) -> None:
    check(live, live.stub.CreateExperiment, pb.CreateExperimentRequest(spec=spec))


@FUZZ
@given(arms=st.lists(st.builds(pb.ArmSpec, arm_id=ids, features=features), max_size=4), exp=ids)
def test_add_arms(live: Running, arms: list[pb.ArmSpec], exp: str) -> None:
    check(live, live.stub.AddArms, pb.AddArmsRequest(experiment_id=exp, arms=arms))


@FUZZ
@given(
    method=st.sampled_from(
        ["Recommend", "Feedback", "CreateExperiment", "AddArms", "GetArm", "RetireArm", "ListArms"]
    ),
    raw=st.binary(max_size=200),
)
def test_raw_bytes(live: Running, method: str, raw: bytes) -> None:
    call = live.channel.unary_unary(f"/bandit.v1.BanditService/{method}")
    before = live.engine.state_checksum()
    try:
        call(raw, timeout=10)
    except grpc.RpcError as exc:
        assert exc.code() != grpc.StatusCode.UNKNOWN, (exc.details(), raw)
        assert exc.code() in CLIENT_ERRORS | {grpc.StatusCode.INTERNAL}, (exc.details(), raw)
        assert live.engine.state_checksum() == before
