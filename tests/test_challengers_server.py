"""Challengers over gRPC: the admin RPCs, the actor recorded from the
token's name, the report, the Prometheus series; policy changes in both
stores."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import grpc
import pytest
from serverutil import make_experiment, start_server

from bandit_engine import InvalidArgument
from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc
from bandit_engine.cli.challengers import format_report
from bandit_engine.core.ports import PolicyChange
from bandit_engine.server.security import load_tokens, token_name
from bandit_engine.store import Store

ADMIN = "admin-token-0123456789"
OTHER = "other-admin-token-0123"


def scrape(port: int, token: str) -> dict[str, float]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    text = urllib.request.urlopen(req, timeout=10).read().decode()
    found = (
        re.match(r"^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", line) for line in text.splitlines()
    )
    return {m.group(1): float(m.group(2)) for m in found if m}


def test_policy_changes_round_trip(store: Store) -> None:
    assert store.policy_changes() == []
    a = PolicyChange("e1", "add", "lin", {"policy": "lin_ts_disjoint"}, "alice", 10.0, 7)
    b = PolicyChange("e2", "add", "beta", {"policy": "beta_ts"}, "bob", 11.0, 0)
    c = PolicyChange("e1", "promote", "lin", {"previous": "initial"}, "carol", 12.0, 9)
    seqs = [store.record_policy_change(x) for x in (a, b, c)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    got = store.policy_changes("e1")
    assert got == [
        PolicyChange(**{**a.__dict__, "seq": seqs[0]}),
        PolicyChange(**{**c.__dict__, "seq": seqs[2]}),
    ]
    assert [x.experiment_id for x in store.policy_changes()] == ["e1", "e2", "e1"]


def test_admin_rpcs_record_the_token_name_and_export_series(tmp_path: Path) -> None:
    names: dict[str, str] = {}
    tokens = load_tokens(env={"BANDIT_AUTH_TOKENS": f"{ADMIN}:serve,admin@alice;{OTHER}:admin"},
                         names=names)  # fmt: skip
    assert names == {ADMIN: "alice"}
    r = start_server(tmp_path, tokens=tokens, token_names=names, metrics_port=0)
    try:
        md = (("authorization", f"Bearer {ADMIN}"),)
        other = (("authorization", f"Bearer {OTHER}"),)
        stub = r.stub

        def call(method: str, req: object, metadata: tuple[tuple[str, str], ...] = md) -> object:
            return getattr(stub, method)(req, metadata=metadata)

        class Authed:
            def __getattr__(self, name: str) -> object:
                return lambda req: call(name, req)

        make_experiment(Authed(), "x", policy=pb.BETA_TS, shadow_rate=1.0)  # type: ignore[arg-type]
        settings = pb.PolicySettings(policy=pb.LIN_TS_DISJOINT, exploration=1.0)
        exp = call("AddChallenger", pb.AddChallengerRequest(experiment_id="x", name="lin",
                                                            settings=settings))  # fmt: skip
        assert isinstance(exp, pb.Experiment)
        assert exp.champion == "initial"
        assert [(c.name, c.settings.policy, c.settings.exploration) for c in exp.challengers] == [
            ("lin", pb.LIN_TS_DISJOINT, 1.0)
        ]
        got = call("GetExperiment", pb.GetExperimentRequest(experiment_id="x"))
        assert isinstance(got, pb.Experiment) and got.challengers[0].name == "lin"
        with pytest.raises(grpc.RpcError) as err:
            call("AddChallenger", pb.AddChallengerRequest(experiment_id="x", name="b"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "challenger policy=0 must be one of" in str(err.value.details())
        with pytest.raises(grpc.RpcError) as err:
            call("PromoteChallenger", pb.PromoteChallengerRequest(experiment_id="x", name="zz"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "'zz'" in str(err.value.details())
        # a serve-only call without a token is refused before any change
        with pytest.raises(grpc.RpcError) as err:
            stub.RemoveChallenger(pb.RemoveChallengerRequest(experiment_id="x", name="lin"))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        for _ in range(30):
            rec = stub.Recommend(pb.RecommendRequest(experiment_id="x"), metadata=md)
            stub.Feedback(
                pb.FeedbackRequest(event_id=rec.event_id, arm_id=rec.arms[0].arm_id, reward=1),
                metadata=md,
            )
        series = scrape(r.server.metrics.port, ADMIN)
        assert series['bandit_challenger_rows{challenger="lin",experiment="x"}'] == 30
        assert 'bandit_challenger_snips_low{challenger="lin",experiment="x"}' in series
        assert series['bandit_champion_value{experiment="x"}'] == 1.0
        call("PromoteChallenger", pb.PromoteChallengerRequest(experiment_id="x", name="lin"),
             other)  # fmt: skip
        rep = call("GetReport", pb.GetReportRequest(experiment_id="x"))
        assert isinstance(rep, pb.Report)
        assert rep.champion == "lin" and [e.name for e in rep.estimates] == ["lin", "initial"]
        actors = [(c.action, c.actor) for c in rep.changes]
        assert actors == [("add", "alice"), ("promote", token_name(OTHER, names))]
        assert token_name(OTHER, names).startswith("token-")
        assert rep.changes[1].previous == "initial"
        text = format_report(rep)
        assert "champion lin" in text and "alice" in text and "previous champion initial" in text
    finally:
        r.stop()


def test_report_rpc_without_auth_and_unknown_experiment(tmp_path: Path) -> None:
    r = start_server(tmp_path)
    try:
        stub: pb_grpc.BanditServiceStub = r.stub
        make_experiment(stub, "y")
        rep = stub.GetReport(pb.GetReportRequest(experiment_id="y"))
        assert [(e.name, e.n, e.ips.HasField("value")) for e in rep.estimates] == [
            ("initial", 0, False)
        ]
        with pytest.raises(grpc.RpcError) as err:
            stub.GetReport(pb.GetReportRequest(experiment_id="nope"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        exp = stub.AddChallenger(
            pb.AddChallengerRequest(
                experiment_id="y", name="b", settings=pb.PolicySettings(policy=pb.BETA_TS)
            )
        )
        rep = stub.GetReport(pb.GetReportRequest(experiment_id="y"))
        assert exp.challengers[0].name == "b" and rep.changes[0].actor == "anonymous"
    finally:
        r.stop()


def test_token_names_from_a_file(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text(f"{ADMIN} admin name=carol@example.org\n{OTHER} serve\n")
    names: dict[str, str] = {}
    assert load_tokens(f, env={}, names=names) == {ADMIN: {"admin"}, OTHER: {"serve"}}
    assert names == {ADMIN: "carol@example.org"}
    f.write_text(f"{ADMIN} admin name=\n")
    with pytest.raises(InvalidArgument, match="token name ''"):
        load_tokens(f, env={})
    with pytest.raises(InvalidArgument, match="token name 'a b'"):
        load_tokens(env={"BANDIT_AUTH_TOKENS": f"{ADMIN}:admin@a b"})
