"""Prometheus /metrics shows the listed series, moving under load."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from grpc import RpcError
from serverutil import make_experiment, start_server

from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def test_metrics_move_under_load(tmp_path: Path) -> None:
    r = start_server(tmp_path, metrics_port=0)
    try:
        port = r.server.metrics.port
        make_experiment(r.stub, "m", reward_window_seconds=3600)
        before = scrape(port)
        for i in range(12):
            rec = r.stub.Recommend(pb.RecommendRequest(experiment_id="m", k=2))
            r.stub.Feedback(
                pb.FeedbackRequest(event_id=rec.event_id, arm_id=rec.arms[0].arm_id, reward=1)
            )
            if i % 4 == 0:
                r.stub.Feedback(
                    pb.FeedbackRequest(event_id=rec.event_id, arm_id=rec.arms[0].arm_id, reward=1)
                )
        try:
            r.stub.Recommend(pb.RecommendRequest(experiment_id="nope"))
        except RpcError:
            pass
        after = scrape(port)
        key = 'bandit_rpc_requests_total{code="OK",method="Recommend"}'
        assert after[key] - before.get(key, 0) == 12
        assert after['bandit_rpc_requests_total{code="NOT_FOUND",method="Recommend"}'] == 1
        assert after['bandit_rpc_latency_seconds_count{method="Feedback"}'] == 15
        assert after['bandit_decisions_total{experiment="m"}'] == 12
        assert after['bandit_rewards_total{experiment="m",outcome="applied"}'] == 12
        assert after['bandit_rewards_total{experiment="m",outcome="duplicate"}'] == 3
        assert (
            after['bandit_model_version{experiment="m"}']
            > before['bandit_model_version{experiment="m"}']
        )
        assert after["bandit_pending_decisions"] == 12
    finally:
        r.stop()


def test_health_follows_the_store(tmp_path: Path) -> None:
    """NOT_SERVING while the store is unreachable, SERVING again when it is back."""
    import time

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from bandit_engine import StoreError

    r = start_server(tmp_path, health_interval=0.05)
    health = health_pb2_grpc.HealthStub(r.channel)

    def status() -> int:
        return health.Check(health_pb2.HealthCheckRequest()).status

    def wait(want: int) -> None:
        deadline = time.time() + 5
        while time.time() < deadline and status() != want:
            time.sleep(0.02)
        assert status() == want

    store = r.engine.store
    real_ping = store.ping

    def broken() -> None:
        raise StoreError("disk gone (test)")

    try:
        wait(health_pb2.HealthCheckResponse.SERVING)
        store.ping = broken  # type: ignore[method-assign]
        wait(health_pb2.HealthCheckResponse.NOT_SERVING)
        assert "store unreachable" in r.server.health_monitor.reason
        store.ping = real_ping  # type: ignore[method-assign]
        wait(health_pb2.HealthCheckResponse.SERVING)
    finally:
        store.ping = real_ping  # type: ignore[method-assign]
        r.stop()
