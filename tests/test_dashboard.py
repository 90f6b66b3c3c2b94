"""The dashboard's HTTP API (``serve --http-port``) against a live server:
the JSON holds the numbers GetExperiment, ListArms and GetReport return;
tokens guard reads and admin actions; promotion through it is recorded
under the token's name; a bad request names the bad value and changes
nothing; the rate history; the ``serve`` flags in a real process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serverutil import Running, make_experiment, start_server

from bandit_engine import Engine
from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine.core import ExperimentConfig
from bandit_engine.server.dashboard import RateHistory
from bandit_engine.server.dashboard.views import Z95
from bandit_engine.store import SQLiteStore

ADMIN = "admin-token-0123456789"
METRICS = "metrics-token-0123456789"
SERVE = "serve-token-0123456789"


def call(
    base: str, path: str, token: str | None = None, body: Any = None, ctype: str | None = None
) -> tuple[int, Any]:
    """(status, parsed JSON) of a GET, or of a POST when ``body`` is given."""
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = ctype or "application/json"
    req = urllib.request.Request(base.rstrip("/") + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def url(r: Running) -> str:
    return str(r.server.dashboard.url)


def traffic(r: Running, exp_id: str, n: int, reward: float = 1.0) -> None:
    for i in range(n):
        resp = r.stub.Recommend(
            pb.RecommendRequest(
                experiment_id=exp_id, context=pb.Features(dense=[0.5, -0.2 * (i % 3)]), k=1
            )
        )
        r.stub.Feedback(
            pb.FeedbackRequest(event_id=resp.event_id, arm_id=resp.arms[0].arm_id, reward=reward)
        )


def create(r: Running, exp_id: str, policy: pb.PolicyKind, metadata: Any) -> None:
    """An experiment of four arms, made with the admin token."""
    spec = pb.ExperimentSpec(experiment_id=exp_id, policy=policy, dim=8, dense_dim=2)
    r.stub.CreateExperiment(pb.CreateExperimentRequest(spec=spec), metadata=metadata)
    arms = [pb.ArmSpec(arm_id=a) for a in ("paris", "rome", "lisbon", "oslo")]
    r.stub.AddArms(pb.AddArmsRequest(experiment_id=exp_id, arms=arms), metadata=metadata)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Running]:
    r = start_server(tmp_path / "state", http_port=0)
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[Running, Any]]:
    """A server with tokens; its metadata for admin RPCs."""
    tokens = {
        ADMIN: frozenset({"admin"}),
        METRICS: frozenset({"metrics"}),
        SERVE: frozenset({"serve"}),
    }
    r = start_server(tmp_path / "state", http_port=0, tokens=tokens, token_names={ADMIN: "alice"})
    try:
        yield r, (("authorization", f"Bearer {ADMIN}"),)
    finally:
        r.stop()


@pytest.mark.parametrize("policy", [pb.BETA_TS, pb.LIN_TS_DISJOINT])
def test_numbers_equal_what_the_rpcs_return(live: Running, policy: int) -> None:
    make_experiment(live.stub, "trips", policy=policy)
    live.stub.AddChallenger(
        pb.AddChallengerRequest(
            experiment_id="trips", name="lin", settings=pb.PolicySettings(policy=pb.LIN_TS_DISJOINT)
        )
    )
    traffic(live, "trips", 40)
    live.stub.RetireArm(pb.RetireArmRequest(experiment_id="trips", arm_id="oslo"))
    status, doc = call(url(live), "/api/experiments/trips")
    assert status == 200
    exp = live.stub.GetExperiment(pb.GetExperimentRequest(experiment_id="trips"))
    assert doc["model_version"] == exp.model_version
    assert doc["champion"] == exp.champion == "initial"
    assert doc["counters"]["rewards_applied"] == exp.counters.rewards_applied == 40
    assert doc["counters"]["decisions"] == exp.counters.decisions
    assert [c["name"] for c in doc["challengers"]] == ["lin"]
    assert (doc["active_arms"], doc["total_arms"]) == (3, 4)
    arms = live.stub.ListArms(pb.ListArmsRequest(experiment_id="trips", include_retired=True)).arms
    assert [a["arm_id"] for a in doc["arms"]] == [a.arm_id for a in arms]
    assert sum(a["pulls"] for a in doc["arms"]) == 40
    for got, want in zip(doc["arms"], arms, strict=True):
        assert got["active"] == want.active
        assert got["mean"] == pytest.approx(want.posterior.mean, rel=1e-12)
        assert got["std"] == pytest.approx(want.posterior.std, rel=1e-12)
        assert got["pulls"] == want.posterior.pulls
        assert got["reward_sum"] == pytest.approx(want.posterior.reward_sum)
        low = want.posterior.mean - Z95 * want.posterior.std
        high = want.posterior.mean + Z95 * want.posterior.std
        if policy == pb.BETA_TS:  # a Beta posterior stays in the reward range
            low, high = max(low, 0.0), min(high, 1.0)
        assert got["low"] == pytest.approx(low) and got["high"] == pytest.approx(high)
        assert got["low"] < got["mean"] < got["high"]
    status, listed = call(url(live), "/api/experiments")
    assert status == 200 and [e["experiment_id"] for e in listed["experiments"]] == ["trips"]
    assert "arms" not in listed["experiments"][0]
    status, limited = call(url(live), "/api/experiments/trips?limit=2")
    assert [a["arm_id"] for a in limited["arms"]] == ["paris", "rome"]
    assert (limited["arms_shown"], limited["arms_listed"]) == (2, 4)

    status, report = call(url(live), "/api/report/trips")
    assert status == 200
    want_r = live.stub.GetReport(pb.GetReportRequest(experiment_id="trips"))
    assert report["champion"] == want_r.champion
    assert report["shadow_window"] == want_r.shadow_window
    assert [e["name"] for e in report["estimates"]] == [e.name for e in want_r.estimates]
    for got_e, want_e in zip(report["estimates"], want_r.estimates, strict=True):
        assert got_e["n"] == want_e.n and got_e["ess"] == pytest.approx(want_e.ess)
        for kind in ("ips", "snips", "dr"):
            w = getattr(want_e, kind)
            for part in ("value", "low", "high"):
                if w.HasField(part):
                    assert got_e[kind][part] == pytest.approx(getattr(w, part))
                else:
                    assert got_e[kind][part] is None
    assert (
        [(c["action"], c["name"], c["actor"]) for c in report["changes"]]
        == [(c.action, c.name, c.actor) for c in want_r.changes]
        == [("add", "lin", "anonymous")]
    )
    assert report["changes"][0]["settings"]["policy"] == "lin_ts_disjoint"


def test_reads_need_a_token_of_scope_admin_or_metrics(guarded: tuple[Running, Any]) -> None:
    r, admin = guarded
    create(r, "trips", pb.LIN_TS_DISJOINT, admin)
    for path in ("/api/experiments", "/api/experiments/trips", "/api/report/trips",
                 "/api/rates/trips"):  # fmt: skip
        status, body = call(url(r), path)
        assert (status, body["code"]) == (401, "UNAUTHENTICATED"), path
        status, body = call(url(r), path, token="wrong-token-0123456789")
        assert (status, body["error"]) == (401, "invalid token"), path
        status, body = call(url(r), path, token=SERVE)
        assert (status, body["code"]) == (403, "PERMISSION_DENIED"), path
        assert "admin or metrics" in body["error"]
        assert call(url(r), path, token=METRICS)[0] == 200, path
        assert call(url(r), path, token=ADMIN)[0] == 200, path
    # the page itself holds no data: it loads, then asks for a token
    with urllib.request.urlopen(url(r), timeout=10) as page:
        assert page.status == 200 and b"uPlot.iife.min.js" in page.read()


def test_admin_actions_need_the_admin_scope_and_record_the_token_name(
    guarded: tuple[Running, Any],
) -> None:
    r, admin = guarded
    create(r, "trips", pb.BETA_TS, admin)
    r.stub.AddChallenger(
        pb.AddChallengerRequest(
            experiment_id="trips", name="lin", settings=pb.PolicySettings(policy=pb.LIN_TS_DISJOINT)
        ),
        metadata=admin,
    )
    promote = "/api/promote/trips"
    for token, status in ((None, 401), (SERVE, 403), (METRICS, 403)):
        assert call(url(r), promote, token=token, body={"name": "lin"})[0] == status
        assert call(url(r), "/api/rollback/trips", token=token, body={})[0] == status
    exp = r.stub.GetExperiment(pb.GetExperimentRequest(experiment_id="trips"), metadata=admin)
    assert exp.champion == "initial"
    status, doc = call(url(r), promote, token=ADMIN, body={"name": "lin"})
    assert status == 200 and doc["champion"] == "lin" and doc["policy"] == "lin_ts_disjoint"
    exp = r.stub.GetExperiment(pb.GetExperimentRequest(experiment_id="trips"), metadata=admin)
    assert exp.champion == "lin"
    rep = r.stub.GetReport(pb.GetReportRequest(experiment_id="trips"), metadata=admin)
    assert [(c.action, c.name, c.actor, c.previous) for c in rep.changes][-1] == (
        "promote", "lin", "alice", "initial"
    )  # fmt: skip
    status, doc = call(url(r), "/api/rollback/trips", token=ADMIN, body={})
    assert status == 200 and doc["champion"] == "initial"
    _, report = call(url(r), "/api/report/trips", token=METRICS)
    assert [(c["action"], c["actor"]) for c in report["changes"]] == [
        ("add", "alice"), ("promote", "alice"), ("rollback", "alice")
    ]  # fmt: skip
    assert report["changes"][-1]["previous"] == "lin"


def test_bad_requests_name_the_value_and_change_nothing(live: Running) -> None:
    make_experiment(live.stub, "trips", policy=pb.BETA_TS)
    live.stub.AddChallenger(
        pb.AddChallengerRequest(
            experiment_id="trips", name="lin", settings=pb.PolicySettings(policy=pb.LIN_TS_DISJOINT)
        )
    )
    traffic(live, "trips", 5)
    before = live.stub.GetExperiment(pb.GetExperimentRequest(experiment_id="trips"))
    base = url(live)
    promote = "/api/promote/trips"
    cases: list[tuple[str, Any, str | None, int, str]] = [
        ("/api/experiments/nowhere", None, None, 404, "'nowhere'"),
        ("/api/report/nowhere", None, None, 404, "'nowhere'"),
        ("/api/rates/nowhere", None, None, 404, "'nowhere'"),
        ("/api/experiments/bad%20id", None, None, 400, "experiment_id"),
        ("/api/experiments/trips?limit=lots", None, None, 400, "'lots'"),
        ("/api/promote/nowhere", {"name": "lin"}, None, 404, "'nowhere'"),
        (promote, {"name": "zz"}, None, 404, "'zz'"),
        (promote, {"name": "bad name!"}, None, 404, "bad name!"),
        (promote, {"name": "initial"}, None, 409, "'initial'"),
        (promote, {}, None, 400, "'name'"),
        (promote, {"name": 7}, None, 400, "7"),
        (promote, b"{not json", None, 400, "not JSON"),
        (promote, b"[1]", None, 400, "JSON object"),
        (promote, {"name": "lin"}, "application/x-www-form-urlencoded", 415, "x-www-form"),
        ("/api/rollback/trips", {}, None, 409, "no promotion to roll back"),
        ("/api/nothing", None, None, 404, "/api/nothing"),
    ]
    for path, body, ctype, status, named in cases:
        got, doc = call(base, path, body=body, ctype=ctype)
        assert got == status, (path, body, doc)
        assert named in doc["error"], (path, doc)
        assert isinstance(doc["code"], str)
    after = live.stub.GetExperiment(pb.GetExperimentRequest(experiment_id="trips"))
    assert after == before
    report = live.stub.GetReport(pb.GetReportRequest(experiment_id="trips"))
    assert [c.action for c in report.changes] == ["add"]


def test_ids_that_hold_a_slash_reach_their_own_experiment(live: Running) -> None:
    """An id may end in an action's name: ``trips/report`` is an experiment."""
    lin = pb.PolicySettings(policy=pb.LIN_TS_DISJOINT)
    for exp_id in ("trips", "trips/report", "trips/promote"):
        make_experiment(live.stub, exp_id, policy=pb.BETA_TS)
        live.stub.AddChallenger(
            pb.AddChallengerRequest(experiment_id=exp_id, name="lin", settings=lin)
        )
    traffic(live, "trips/report", 3)
    base = url(live)
    for path in ("/api/experiments/trips/report", "/api/experiments/trips%2Freport"):
        status, doc = call(base, path)
        assert status == 200 and doc["experiment_id"] == "trips/report", path
        assert doc["counters"]["rewards_applied"] == 3
    status, report = call(base, "/api/report/trips%2Freport")
    assert status == 200 and report["experiment_id"] == "trips/report"
    status, doc = call(base, "/api/promote/trips/promote", body={"name": "lin"})
    assert status == 200 and doc["experiment_id"] == "trips/promote" and doc["champion"] == "lin"
    for exp_id, champion in (("trips", "initial"), ("trips/report", "initial")):
        exp = live.stub.GetExperiment(pb.GetExperimentRequest(experiment_id=exp_id))
        assert exp.champion == champion, exp_id


def test_the_rate_history_differences_the_counters(tmp_path: Path) -> None:
    engine = Engine(SQLiteStore(":memory:"), seed=0)
    engine.create_experiment(ExperimentConfig("clicks", policy="beta_ts"))
    engine.add_arms("clicks", [("a", None), ("b", None)])
    now = [1000.0]
    rates = RateHistory(engine, interval=2.0, points=3, clock=lambda: now[0])
    assert rates.window_seconds == 6.0
    rates.sample()
    for reward in (1.0, 0.0, 1.0, 1.0):
        d = engine.recommend("clicks", None, (), 1)
        engine.feedback(d.event_id, d.arm_ids[0], reward)
    now[0] += 2.0
    rates.sample()
    (point,) = rates.series("clicks")
    assert point == {"t": 1002.0, "decisions_per_s": 2.0, "rewards_per_s": 2.0, "mean_reward": 0.75}
    now[0] += 4.0
    rates.sample()  # nothing happened: no mean reward, rates 0
    assert rates.series("clicks")[-1] == {
        "t": 1006.0, "decisions_per_s": 0.0, "rewards_per_s": 0.0, "mean_reward": None
    }  # fmt: skip
    for _ in range(2):
        now[0] += 2.0
        rates.sample()
    assert len(rates.series("clicks")) == 2  # three samples kept: two differences
    assert rates.series("nowhere") == []
    engine.close()


def test_the_live_rates_endpoint_fills_in(tmp_path: Path) -> None:
    r = start_server(tmp_path / "state", http_port=0)
    try:
        r.server.dashboard.rates.interval = 0.2  # samples every 0.2 s for the test
        make_experiment(r.stub, "trips")
        deadline = time.monotonic() + 20
        points: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            traffic(r, "trips", 3, reward=0.5)
            _, doc = call(url(r), "/api/rates/trips")
            points = [p for p in doc["points"] if p["mean_reward"] is not None]
            if points:
                break
            time.sleep(0.1)
        assert points, "no point with a mean reward"
        assert points[-1]["mean_reward"] == pytest.approx(0.5)
        assert points[-1]["rewards_per_s"] > 0
        assert doc["interval_seconds"] == 0.2 and doc["window_seconds"] == pytest.approx(60.0)
    finally:
        r.stop()


def test_a_taken_http_port_fails_the_start_naming_the_address(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            start_server(tmp_path / "state", http_port=port)


def test_serve_flags_start_the_dashboard(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        http_port = s.getsockname()[1]
    bin_ = Path(sys.executable).parent / "bandit-engine"
    proc = subprocess.Popen(
        [str(bin_), "serve", "--port", "0", "--state-dir", ":memory:",
         "--http-port", str(http_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        for _ in range(50):
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("dashboard on"):
                break
        assert lines[-1].strip() == f"dashboard on http://127.0.0.1:{http_port}/", lines
        status, doc = call(f"http://127.0.0.1:{http_port}", "/api/experiments")
        assert (status, doc) == (200, {"experiments": []})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0
    bad = subprocess.run(
        [str(bin_), "serve", "--state-dir", ":memory:", "--http-port", "70000"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode != 0 and "--http-port 70000" in bad.stderr


def test_a_loopback_dashboard_answers_loopback_host_names_only(live: Running) -> None:
    """A page of another site whose name resolves to 127.0.0.1 (DNS
    rebinding) sends its own name as Host: refused."""
    port = live.server.dashboard.port
    for host, status in (("evil.example", 400), (f"evil.example:{port}", 400),
                         (f"127.0.0.1:{port}", 200), (f"localhost:{port}", 200)):  # fmt: skip
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/experiments", headers={"Host": host}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                got = r.status
        except urllib.error.HTTPError as e:
            got = e.code
        assert got == status, host


def test_the_core_imports_no_http_framework() -> None:
    code = (
        "import sys, bandit_engine.core, bandit_engine.policies\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_kafka_mode_a_promotion_on_one_dashboard_shows_on_the_other(
    kafka_settings: Any, mysql_dsn: str
) -> None:
    """Two Kafka-mode servers with dashboards: the learner's counts appear on
    both, and a promotion made through one reaches the other's page data
    within the refresh interval."""
    from bandit_engine.server import ServerSettings, create_server, stop_server

    def settings(**kw: Any) -> ServerSettings:
        return ServerSettings(port=0, state_dir=None, seed=1, mysql_dsn=mysql_dsn,
                              kafka=kafka_settings, refresh_interval=0.2, http_port=0,
                              **kw)  # fmt: skip

    servers: list[Any] = []
    try:
        a = create_server(settings(learner_options={"commit_interval": 0.05}))
        servers.append(a)
        b = create_server(settings(learner=False))
        servers.append(b)
        for server, _, _ in servers:
            server.start()
        url_a, url_b = (str(s.dashboard.url) for s, _, _ in servers)
        engine_a = a[2]
        engine_a.create_experiment(ExperimentConfig("k", policy="beta_ts", half_life_s=0))
        engine_a.add_arms("k", [("x", None), ("y", None)])
        engine_a.challengers.add("k", "lin", {"policy": "lin_ts_disjoint"}, "ops")

        def until(cond: Any, what: str, timeout: float = 60.0) -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if cond():
                    return
                time.sleep(0.1)
            raise AssertionError(f"timed out waiting for {what}")

        until(lambda: call(url_b, "/api/experiments/k")[0] == 200, "b to load k")
        engine_b = b[2]
        for _ in range(10):
            d = engine_b.recommend("k", None, (), 1)
            assert engine_b.feedback(d.event_id, d.arm_ids[0], 1.0).outcome == "queued"
        for base in (url_a, url_b):
            until(
                lambda base=base: (
                    call(base, "/api/experiments/k")[1]["counters"]["rewards_applied"] == 10
                ),
                f"10 rewards on {base}",
            )
        status, doc = call(url_a, "/api/promote/k", body={"name": "lin"})
        assert status == 200 and doc["champion"] == "lin"
        until(lambda: call(url_b, "/api/experiments/k")[1]["champion"] == "lin", "b's champion")
        _, report = call(url_b, "/api/report/k")
        assert [(c["action"], c["name"]) for c in report["changes"]] == [
            ("add", "lin"), ("promote", "lin")
        ]  # fmt: skip
    finally:
        for server, _, engine in reversed(servers):
            stop_server(server, engine, 1.0)
