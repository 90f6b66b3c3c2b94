"""TLS, mutual TLS and bearer-token scopes on a real server."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bandit_engine import InvalidArgument
from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc
from bandit_engine.server import ServerSettings, create_server, stop_server
from bandit_engine.server.security import TLSConfig, is_loopback, load_tokens, method_scope

SERVE = "serve-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    d = tmp_path_factory.mktemp("pki")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=bandit-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=d,
    )
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=d,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.cnf",
            "-out",
            f"{name}.pem",
            cwd=d,
        )
    return d


@pytest.fixture
def secured(pki: Path, tmp_path: Path) -> Iterator[int]:
    settings = ServerSettings(
        port=0,
        state_dir=tmp_path,
        seed=1,
        tokens={SERVE: frozenset({"serve"}), ADMIN: frozenset({"serve", "admin"})},
        tls=TLSConfig(pki / "server.pem", pki / "server.key", pki / "ca.pem"),
    )
    server, port, engine = create_server(settings)
    server.start()
    yield port
    stop_server(server, engine, 1.0)


def channel(pki: Path, port: int, client_cert: bool = True) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "client.key").read_bytes() if client_cert else None,
        certificate_chain=(pki / "client.pem").read_bytes() if client_cert else None,
    )
    return grpc.secure_channel(f"127.0.0.1:{port}", creds)


def md(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code()


def test_tokens_and_scopes_over_mutual_tls(pki: Path, secured: int) -> None:
    ch = channel(pki, secured)
    stub = pb_grpc.BanditServiceStub(ch)  # type: ignore[no-untyped-call]
    spec = pb.CreateExperimentRequest(
        spec=pb.ExperimentSpec(experiment_id="s", policy=pb.BETA_TS, dim=1)
    )
    # no token, a wrong token: UNAUTHENTICATED
    assert code_of(lambda: stub.CreateExperiment(spec)) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: stub.CreateExperiment(spec, metadata=md("x" * 30))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    # the serve scope may not administer
    assert code_of(lambda: stub.CreateExperiment(spec, metadata=md(SERVE))) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    stub.CreateExperiment(spec, metadata=md(ADMIN))
    stub.AddArms(
        pb.AddArmsRequest(experiment_id="s", arms=[pb.ArmSpec(arm_id="a")]), metadata=md(ADMIN)
    )
    # and may serve
    rec = stub.Recommend(pb.RecommendRequest(experiment_id="s"), metadata=md(SERVE))
    fb = stub.Feedback(
        pb.FeedbackRequest(event_id=rec.event_id, arm_id="a", reward=1), metadata=md(SERVE)
    )
    assert fb.outcome == pb.APPLIED
    assert code_of(lambda: stub.Recommend(pb.RecommendRequest(experiment_id="s"))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    # health needs no token
    health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    ch.close()


def test_mutual_tls_refuses_a_client_without_certificate(pki: Path, secured: int) -> None:
    ch = channel(pki, secured, client_cert=False)
    stub = pb_grpc.BanditServiceStub(ch)  # type: ignore[no-untyped-call]
    assert code_of(
        lambda: stub.ListExperiments(pb.ListExperimentsRequest(), metadata=md(ADMIN), timeout=5)
    ) == (grpc.StatusCode.UNAVAILABLE)
    ch.close()


def test_cli_client_with_tls_and_token(
    pki: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = ServerSettings(
        port=0,
        state_dir=tmp_path,
        tokens={ADMIN: frozenset({"admin"})},
        tls=TLSConfig(pki / "server.pem", pki / "server.key"),
    )
    server, port, engine = create_server(settings)
    server.start()
    try:
        base = [
            sys.executable,
            "-m",
            "bandit_engine",
            "experiments",
            "--target",
            f"127.0.0.1:{port}",
            "--tls-ca",
            str(pki / "ca.pem"),
        ]
        ok = subprocess.run([*base, "--token", ADMIN], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout) == {"experiments": []}
        denied = subprocess.run(base, capture_output=True, text=True, timeout=60)
        assert denied.returncode == 1 and "UNAUTHENTICATED" in denied.stderr
    finally:
        stop_server(server, engine, 1.0)
    assert all(ADMIN not in r.getMessage() for r in caplog.records), "a token was logged"


def test_token_sources_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text(f"# comment\n{SERVE} serve\n{ADMIN} serve,admin\n")
    assert load_tokens(f, env={}) == {SERVE: {"serve"}, ADMIN: {"serve", "admin"}}
    assert load_tokens(env={"BANDIT_AUTH_TOKENS": f"{SERVE}:serve;{ADMIN}:admin"}) == {
        SERVE: {"serve"},
        ADMIN: {"admin"},
    }
    assert load_tokens(env={}) == {}
    f.write_text(f"{SERVE} root\n")
    with pytest.raises(InvalidArgument, match="'root'"):
        load_tokens(f, env={})
    with pytest.raises(InvalidArgument, match="16 characters"):
        load_tokens(env={"BANDIT_AUTH_TOKENS": "short:serve"})
    assert method_scope("/bandit.v1.BanditService/Recommend") == "serve"
    assert method_scope("/bandit.v1.BanditService/AddArms") == "admin"
    assert method_scope("/grpc.health.v1.Health/Check") is None
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("10.0.0.1")
