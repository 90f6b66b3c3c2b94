"""The server's edge under callers it does not know: made-up methods, more
calls than the cap, health probes during overload, /metrics access, and
token files written wrong."""

from __future__ import annotations

import http.client
import re
import ssl
import threading
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serverutil import Running, make_experiment, start_server

from bandit_engine import InvalidArgument
from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine.server.metrics import OTHER_METHOD
from bandit_engine.server.security import load_tokens

SERVE = "serve-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"
METRICS = "metrics-token-0123456789abcdef"
TOKENS = {
    SERVE: frozenset({"serve"}),
    ADMIN: frozenset({"serve", "admin"}),
    METRICS: frozenset({"metrics"}),
}


def scrape(port: int, token: str | None = None) -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.read().decode())


def series(text: str, name: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        m = re.match(rf"^{name}(\{{[^}}]*\}}) ([0-9.e+-]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def call_made_up(r: Running, name: str, token: str | None = None) -> grpc.StatusCode:
    rpc = r.channel.unary_unary(f"/bandit.v1.BanditService/{name}")
    md = [("authorization", f"Bearer {token}")] if token else None
    with pytest.raises(grpc.RpcError) as info:
        rpc(b"", timeout=5, metadata=md)
    return info.value.code()


@pytest.mark.parametrize("tokens", [{}, TOKENS], ids=["no-auth", "auth"])
def test_made_up_method_names_add_no_series(
    tmp_path: Path, tokens: dict[str, frozenset[str]]
) -> None:
    r = start_server(tmp_path, metrics_port=0, tokens=tokens)
    try:
        port = r.server.metrics.port
        token = METRICS if tokens else None
        before = series(scrape(port, token), "bandit_rpc_requests_total")
        codes = Counter(call_made_up(r, f"Made{i}Up") for i in range(40))
        codes[call_made_up(r, "Recommend2", SERVE if tokens else None)] += 1
        after = series(scrape(port, token), "bandit_rpc_requests_total")
    finally:
        r.stop()
    methods = {re.search(r'method="([^"]*)"', k).group(1) for k in after}  # type: ignore[union-attr]
    assert not {m for m in methods if "Made" in m or m == "Recommend2"}, methods
    assert len(after) - len(before) <= 2, sorted(set(after) - set(before))
    other = sum(v for k, v in after.items() if f'method="{OTHER_METHOD}"' in k)
    assert other == 41 and sum(codes.values()) == 41
    if tokens:
        assert codes == {
            grpc.StatusCode.UNAUTHENTICATED: 40,
            grpc.StatusCode.PERMISSION_DENIED: 1,  # a serve token on a non-serve path
        }
    else:
        assert codes == {grpc.StatusCode.UNIMPLEMENTED: 41}


def test_shed_calls_are_counted_and_health_answers(tmp_path: Path) -> None:
    r = start_server(tmp_path, metrics_port=0, max_concurrent_rpcs=2)
    try:
        make_experiment(r.stub, "busy", arms=tuple(f"a{i}" for i in range(3000)))
        health = health_pb2_grpc.HealthStub(r.channel)
        req = pb.RecommendRequest(experiment_id="busy", k=200)
        seen: Counter[grpc.StatusCode] = Counter()
        probes: Counter[object] = Counter()
        lock = threading.Lock()

        def recommend() -> None:
            for _ in range(15):
                try:
                    r.stub.Recommend(req, timeout=30)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    code = exc.code()
                with lock:
                    seen[code] += 1

        def probe() -> None:
            for _ in range(40):
                try:
                    status: object = health.Check(
                        health_pb2.HealthCheckRequest(), timeout=30
                    ).status
                except grpc.RpcError as exc:
                    status = exc.code()
                with lock:
                    probes[status] += 1

        threads = [threading.Thread(target=recommend) for _ in range(16)]
        threads.append(threading.Thread(target=probe))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        text = scrape(r.server.metrics.port)
    finally:
        r.stop()
    assert set(seen) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, seen
    assert seen[grpc.StatusCode.RESOURCE_EXHAUSTED] > 0, "the load never reached the cap"
    counted = series(text, "bandit_rpc_requests_total")
    assert (
        counted['{code="RESOURCE_EXHAUSTED",method="Recommend"}']
        == seen[grpc.StatusCode.RESOURCE_EXHAUSTED]
    )
    assert counted['{code="OK",method="Recommend"}'] == seen[grpc.StatusCode.OK]
    assert probes == Counter({health_pb2.HealthCheckResponse.SERVING: 40}), probes


def test_health_list_answers_every_service(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = start_server(tmp_path)
    try:
        got = health_pb2_grpc.HealthStub(r.channel).List(health_pb2.HealthListRequest(), timeout=5)
    finally:
        r.stop()
    statuses = {name: s.status for name, s in got.statuses.items()}
    serving = health_pb2.HealthCheckResponse.SERVING
    assert statuses == {"": serving, "bandit.v1.BanditService": serving}
    assert not [rec for rec in caplog.records if rec.levelname == "ERROR"]


def test_metrics_need_a_token_of_scope_metrics_or_admin(tmp_path: Path) -> None:
    r = start_server(tmp_path, metrics_port=0, tokens=TOKENS)
    try:
        port = r.server.metrics.port
        for token, status in ((None, 401), ("x" * 20, 401), (SERVE, 403)):
            with pytest.raises(urllib.error.HTTPError) as info:
                scrape(port, token)
            assert info.value.code == status
            assert b"bandit_" not in info.value.read()
        assert "bandit_rpc_requests_total" in scrape(port, METRICS)
        assert "bandit_rpc_requests_total" in scrape(port, ADMIN)
    finally:
        r.stop()


def test_metrics_bind_loopback_by_default(tmp_path: Path) -> None:
    from bandit_engine.server import ServerSettings, create_server, stop_server

    settings = ServerSettings(host="0.0.0.0", port=0, state_dir=tmp_path, metrics_port=0)
    server, _, engine = create_server(settings)
    try:
        assert server.metrics.http.server_address[0] == "127.0.0.1"
    finally:
        stop_server(server, engine, 1.0)


def test_token_file_in_the_wrong_order_does_not_print_the_token(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text(f"serve {SERVE}\n")
    with pytest.raises(InvalidArgument, match="comes first") as info:
        load_tokens(f, env={})
    assert SERVE not in str(info.value)
    f.write_text(f"{SERVE} {ADMIN}\n")  # two tokens on a line
    with pytest.raises(InvalidArgument, match="not shown") as info:
        load_tokens(f, env={})
    assert ADMIN not in str(info.value) and SERVE not in str(info.value)
    f.write_text(f"{SERVE} serve extra-field-0123456789\n")
    with pytest.raises(InvalidArgument, match="3 fields") as info:
        load_tokens(f, env={})
    assert SERVE not in str(info.value)
    with pytest.raises(InvalidArgument, match="comes first") as info:
        load_tokens(env={"BANDIT_AUTH_TOKENS": f"serve:{SERVE}"})
    assert SERVE not in str(info.value)


def test_metrics_over_https_with_tls(tmp_path: Path) -> None:
    import subprocess

    d = tmp_path / "pki"
    d.mkdir()
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", "server.key", "-out", "server.pem",
        ],
        cwd=d, check=True, capture_output=True,
    )  # fmt: skip
    from bandit_engine.server.security import TLSConfig

    r_settings = {"tls": TLSConfig(d / "server.pem", d / "server.key"), "metrics_port": 0}
    from bandit_engine.server import ServerSettings, create_server, stop_server

    server, _, engine = create_server(
        ServerSettings(host="127.0.0.1", port=0, state_dir=tmp_path, **r_settings)  # type: ignore[arg-type]
    )
    server.start()
    try:
        port = server.metrics.port
        ctx = ssl.create_default_context(cafile=str(d / "server.pem"))
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/metrics", context=ctx, timeout=10
        ) as resp:
            assert b"# HELP bandit_rpc_requests_total" in resp.read()
        with pytest.raises((OSError, http.client.HTTPException)):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        stop_server(server, engine, 1.0)
