"""The durable feedback loop on real services: Kafka (Tansu or BANDIT_TEST_KAFKA) and MySQL."""

from __future__ import annotations

import asyncio
import functools
import json
import random
import time
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import pytest
from services import wait_until_learned_to_the_end

from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc
from bandit_engine.policies import PRIOR_MEAN
from bandit_engine.server import ServerSettings, create_server, stop_server
from bandit_engine.store import MySQLStore
from bandit_engine.stream import KafkaEventLog, KafkaSettings


def produce(settings: KafkaSettings, records: list[tuple[bytes, bytes]]) -> None:
    """Write records to the feedback topic with a plain aiokafka producer."""
    from aiokafka import AIOKafkaProducer

    async def main() -> None:
        p = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
        await p.start()
        try:
            for key, value in records:
                await p.send_and_wait(settings.feedback_topic, value=value, key=key)
        finally:
            await p.stop()

    asyncio.run(main())


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def counters(store: MySQLStore, exp: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for (e, name), n in store.learner_counters().items():
        if e in (exp, ""):
            out[name] = out.get(name, 0) + n
    return out


def closed_form(events: list[tuple[int, np.ndarray, float]], n_arms: int, d: int) -> Any:
    a = np.stack([np.eye(d) for _ in range(n_arms)])
    b = np.zeros((n_arms, d))
    for slot, x, r in events:
        a[slot] += np.outer(x, x)
        b[slot] += (r - PRIOR_MEAN) * x  # lin_ts_disjoint learns centred rewards
    return a, b


def test_end_to_end_grpc_and_json_rewards(kafka_settings: KafkaSettings, mysql_dsn: str) -> None:
    settings = ServerSettings(
        port=0,
        state_dir=None,
        seed=1,
        mysql_dsn=mysql_dsn,
        kafka=kafka_settings,
        refresh_interval=0.2,
        learner_options={"commit_interval": 0.05},
        metrics_port=0,
    )
    server, port, engine = create_server(settings)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.BanditServiceStub(channel)  # type: ignore[no-untyped-call]
    store = MySQLStore(mysql_dsn)
    try:
        stub.CreateExperiment(
            pb.CreateExperimentRequest(
                spec=pb.ExperimentSpec(
                    experiment_id="e2e",
                    policy=pb.LIN_TS_DISJOINT,
                    dim=4,
                    dense_dim=3,
                    reward_window_seconds=3600,
                    half_life_seconds=0,  # the closed form below: whole events
                )
            )
        )
        arms = ["a", "b", "c"]
        stub.AddArms(
            pb.AddArmsRequest(experiment_id="e2e", arms=[pb.ArmSpec(arm_id=a) for a in arms])
        )
        rng = random.Random(0)
        events: list[tuple[int, np.ndarray, float]] = []
        json_records = []
        for i in range(60):
            dense = [rng.uniform(-1, 1) for _ in range(3)]
            resp = stub.Recommend(
                pb.RecommendRequest(experiment_id="e2e", context=pb.Features(dense=dense), k=2)
            )
            arm = resp.arms[i % 2].arm_id
            r = rng.choice([0.0, 0.5, 1.0])
            events.append((arms.index(arm), np.array([1.0, *dense]), r))
            if i % 2:
                fb = stub.Feedback(pb.FeedbackRequest(event_id=resp.event_id, arm_id=arm, reward=r))
                assert fb.outcome == pb.QUEUED
                # a client retry: dead-lettered as a duplicate, not applied
                if i % 10 == 1:
                    stub.Feedback(pb.FeedbackRequest(event_id=resp.event_id, arm_id=arm, reward=r))
            else:
                body = {"event_id": resp.event_id, "arm_id": arm, "reward": r}
                json_records.append((resp.event_id.encode(), json.dumps(body).encode()))
        json_records.append((b"x", b'{"event_id": "x", "reward": 1}'))  # malformed: no arm_id
        json_records.append((b"y", b"not json at all \xff"))  # malformed
        produce(kafka_settings, json_records)

        wait_for(
            lambda: counters(store, "e2e").get("rewards_applied", 0) >= 60, 60, "60 rewards applied"
        )
        c = counters(store, "e2e")
        assert c["rewards_applied"] == 60
        assert c["decisions"] == 60
        assert c["dead_duplicate"] == 6
        assert c["dead_malformed"] == 2
        snap = store.load_snapshot("e2e")
        assert snap is not None
        a_ref, b_ref = closed_form(events, 3, 4)
        np.testing.assert_allclose(snap.state["A"], a_ref, rtol=1e-9)
        np.testing.assert_allclose(snap.state["b"], b_ref, rtol=1e-9, atol=1e-12)
        assert snap.state["pulls"].sum() == 60
        # GetExperiment reports the learner's exact counts in Kafka mode.
        info = stub.GetExperiment(pb.GetExperimentRequest(experiment_id="e2e")).counters
        assert (info.rewards_applied, info.rewards_duplicate, info.decisions) == (60, 6, 60)
        # The learner's series are on /metrics.
        import urllib.request

        text = (
            urllib.request.urlopen(
                f"http://127.0.0.1:{server.metrics.port}/metrics",
                timeout=10,
            )
            .read()
            .decode()
        )
        commits = [ln for ln in text.splitlines() if ln.startswith("bandit_learner_commits_total")]
        assert commits and float(commits[0].split()[-1]) > 0
        assert "bandit_learner_lag_records" in text
        assert 'bandit_learner_checkpoint_seconds{quantile="0.99"}' in text
        # The server picks up the learner's posterior within the refresh bound.
        wait_for(
            lambda: (
                sum(
                    stub.GetArm(pb.GetArmRequest(experiment_id="e2e", arm_id=a)).posterior.pulls
                    for a in arms
                )
                == 60
            ),
            5,
            "server refresh",
        )
    finally:
        channel.close()
        stop_server(server, engine, 1.0)
        store.close()


def test_two_serving_only_servers_follow_one_learner(
    kafka_settings: KafkaSettings, mysql_dsn: str
) -> None:
    """Two --no-learner servers plus one learner: both serve the learner's posterior."""
    from bandit_engine.server import LearnerThread
    from bandit_engine.stream.learner import Learner

    refresh = 0.3
    servers = []
    for _ in range(2):
        st = ServerSettings(
            port=0,
            state_dir=None,
            seed=2,
            mysql_dsn=mysql_dsn,
            kafka=kafka_settings,
            learner=False,
            refresh_interval=refresh,
        )
        server, port, engine = create_server(st)
        server.start()
        ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        servers.append((server, engine, ch, pb_grpc.BanditServiceStub(ch)))  # type: ignore[no-untyped-call]
    assert all(getattr(s[0], "learner_thread", None) is None for s in servers)
    learner = LearnerThread(mysql_dsn, kafka_settings, commit_interval=0.05)
    assert isinstance(learner.learner, Learner)
    try:
        a, b = servers[0][3], servers[1][3]
        a.CreateExperiment(
            pb.CreateExperimentRequest(
                spec=pb.ExperimentSpec(
                    experiment_id="pair", policy=pb.BETA_TS, dim=1, half_life_seconds=0
                )
            )
        )
        a.AddArms(
            pb.AddArmsRequest(experiment_id="pair", arms=[pb.ArmSpec(arm_id=x) for x in ("x", "y")])
        )
        # server B learns of the experiment created through A
        wait_for(lambda: _has_experiment(b, "pair"), 5 * refresh + 2, "experiment on B")
        n = 0
        for i in range(40):
            stub = (a, b)[i % 2]
            resp = stub.Recommend(pb.RecommendRequest(experiment_id="pair"))
            if resp.arms[0].arm_id == "x":
                stub.Feedback(pb.FeedbackRequest(event_id=resp.event_id, arm_id="x", reward=1))
                n += 1
        assert n > 0
        store = MySQLStore(mysql_dsn)
        wait_for(lambda: counters(store, "pair").get("rewards_applied", 0) == n, 30, "learner")
        committed = time.time()
        for stub in (a, b):

            def served(stub: Any = stub) -> bool:
                arm = stub.GetArm(pb.GetArmRequest(experiment_id="pair", arm_id="x"))
                return bool(arm.posterior.pulls == n)

            wait_for(
                served,
                refresh + 1.0,
                "refresh within the bound",
            )
        assert time.time() - committed < 2 * (refresh + 1.0)
        p = a.GetArm(pb.GetArmRequest(experiment_id="pair", arm_id="x")).posterior
        assert p.reward_sum == n and p.mean == pytest.approx((1 + n) / (2 + n))
        store.close()
    finally:
        learner.stop()
        for server, engine, ch, _ in servers:
            ch.close()
            stop_server(server, engine, 1.0)


def _has_experiment(stub: pb_grpc.BanditServiceStub, exp: str) -> bool:
    try:
        return stub.GetExperiment(pb.GetExperimentRequest(experiment_id=exp)).active_arms == 2
    except grpc.RpcError:
        return False


def test_learner_catching_up_on_an_old_backlog(
    kafka_settings: KafkaSettings, mysql_dsn: str
) -> None:
    """Records older than orphan_grace and lateness, rewards ahead of their decisions:
    a learner that starts late still joins every reward (none called unknown)."""
    from bandit_engine._proto.bandit.v1 import log_pb2
    from bandit_engine.core.config import ExperimentConfig
    from bandit_engine.server import LearnerThread
    from bandit_engine.store import ArmRow

    store = MySQLStore(mysql_dsn)
    cfg = ExperimentConfig("old", policy="beta_ts", dim=1, reward_window_s=3600.0)
    store.create_experiment("old", cfg.to_dict(), time.time())
    store.upsert_arms([ArmRow("old", a, i, {}, True) for i, a in enumerate("ab")])
    t0 = time.time() - 300.0
    rewards, decisions = [], []
    for i in range(600):
        ev = f"old-{i}"
        arm = "ab"[i % 2]
        rewards.append(
            (
                ev.encode(),
                json.dumps(
                    {"event_id": ev, "arm_id": arm, "reward": 1.0, "timestamp": t0 + 1}
                ).encode(),
            )
        )
        decisions.append(
            (
                ev.encode(),
                log_pb2.DecisionRecord(
                    event_id=ev,
                    experiment_id="old",
                    created_at=t0,
                    deadline=t0 + 3600,
                    arms=[arm],
                    slots=[i % 2],
                    scores=[0.0],
                    propensities=[0.5],
                    x=[1.0],
                ).SerializeToString(),
            )
        )
    produce(kafka_settings, rewards)  # the rewards first, then their decisions
    from aiokafka import AIOKafkaProducer

    async def send_decisions() -> None:
        p = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap)
        await p.start()
        for key, value in decisions:
            await p.send(kafka_settings.decisions_topic, value=value, key=key)
        await p.stop()

    asyncio.run(send_decisions())
    # small polls, so rewards are read while their decisions are still a backlog
    learner = LearnerThread(
        mysql_dsn,
        kafka_settings,
        commit_interval=0.05,
        orphan_grace=1.0,
        lateness=0.5,
        max_records=40,
    )
    try:
        wait_for(
            lambda: counters(store, "old").get("rewards_applied", 0) == 600,
            60,
            "600 rewards applied",
        )
        wait_until_learned_to_the_end(mysql_dsn, kafka_settings, 30)
        c = counters(store, "old")
        assert c.get("dead_unknown_event", 0) == 0, c
        assert c["rewards_applied"] == 600
    finally:
        learner.stop()
        store.close()


def test_decisions_the_model_cannot_learn_from_are_counted_not_applied(
    kafka_settings: KafkaSettings, mysql_dsn: str
) -> None:
    """A decision with a context of the wrong length, a non-finite or too
    large value, a broken x_f64 or undecodable bytes is counted as
    malformed_decision; the learner goes on, and the good decisions (both
    context encodings) are learned exactly."""
    from bandit_engine._proto.bandit.v1 import log_pb2
    from bandit_engine.core.config import ExperimentConfig
    from bandit_engine.server import LearnerThread
    from bandit_engine.store import ArmRow

    store = MySQLStore(mysql_dsn)
    d = 3
    cfg = ExperimentConfig("bad", policy="lin_ts_disjoint", dim=d, reward_window_s=3600.0)
    store.create_experiment("bad", cfg.to_dict(), time.time())
    store.upsert_arms([ArmRow("bad", "a", 0, {}, True)])
    now = time.time()

    def dec(ev: str, **ctx: Any) -> bytes:
        return log_pb2.DecisionRecord(
            event_id=ev, experiment_id="bad", created_at=now, deadline=now + 3600,
            arms=["a"], slots=[0], scores=[0.0], propensities=[1.0], **ctx,
        ).SerializeToString()  # fmt: skip

    good = {
        "g-list": np.array([1.0, 0.5, -0.25]),
        "g-bytes": np.array([1.0, -2.0, 0.75]),
    }
    bad = {
        "b-short": dec("b-short", x=[1.0, 2.0]),
        "b-nan": dec("b-nan", x_f64=np.array([1.0, np.nan, 0.0]).tobytes()),
        "b-inf": dec("b-inf", x=[1.0, np.inf, 0.0]),
        "b-huge": dec("b-huge", x=[1.0, 1e7, 0.0]),
        "b-ragged": dec("b-ragged", x_f64=b"\x00" * 23),
        "b-garbage": b"\xff\xff\xff not a protobuf",
    }
    decisions = [
        (b"g-list", dec("g-list", x=good["g-list"].tolist())),
        (b"g-bytes", dec("g-bytes", x_f64=good["g-bytes"].astype("<f8").tobytes())),
        *[(ev.encode(), v) for ev, v in bad.items()],
    ]
    from aiokafka import AIOKafkaProducer

    async def send() -> None:
        p = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap)
        await p.start()
        for key, value in decisions:
            await p.send_and_wait(kafka_settings.decisions_topic, value=value, key=key)
        await p.stop()

    asyncio.run(send())
    produce(
        kafka_settings,
        [
            (ev.encode(), json.dumps({"event_id": ev, "arm_id": "a", "reward": 1.0}).encode())
            for ev in [*good, *bad]
        ],
    )
    learner = LearnerThread(mysql_dsn, kafka_settings, commit_interval=0.05, orphan_grace=1.0)
    try:
        wait_for(
            lambda: counters(store, "bad").get("dead_unknown_event", 0) == len(bad),
            60,
            "the rewards of the bad decisions dead-lettered as unknown",
        )
        c = counters(store, "bad")
        assert c.get("malformed_decision", 0) == len(bad), c
        assert c.get("decisions", 0) == len(good), c
        assert c.get("rewards_applied", 0) == len(good), c
        snap = store.load_snapshot("bad")
        assert snap is not None
        a, b = closed_form([(0, x, 1.0) for x in good.values()], 1, d)
        np.testing.assert_allclose(snap.state["A"], a, rtol=1e-12)
        np.testing.assert_allclose(snap.state["b"], b, rtol=1e-12)
    finally:
        learner.stop()
        store.close()


def test_reuseport_servers_share_one_port(kafka_settings: KafkaSettings, mysql_dsn: str) -> None:
    """``serve --reuseport``: two --no-learner servers bind the same port; the
    kernel spreads connections over both; rewards decided by either reach the
    learner. Without the flag a second bind of a taken port fails, and the
    flag is refused in embedded mode."""
    from bandit_engine import InvalidArgument
    from bandit_engine.server import LearnerThread

    with pytest.raises(InvalidArgument, match="--reuseport needs Kafka mode"):
        create_server(ServerSettings(port=0, state_dir=None, reuseport=True))

    def settings(port: int, reuseport: bool = True) -> ServerSettings:
        return ServerSettings(
            port=port,
            state_dir=None,
            mysql_dsn=mysql_dsn,
            kafka=kafka_settings,
            learner=False,
            refresh_interval=0.2,
            reuseport=reuseport,
        )

    first, port, e1 = create_server(settings(0))
    first.start()
    second, port2, e2 = create_server(settings(port))
    second.start()
    assert port2 == port
    with pytest.raises(OSError, match=f"cannot bind 127.0.0.1:{port}"):
        create_server(settings(port, reuseport=False))
    learner = LearnerThread(mysql_dsn, kafka_settings, commit_interval=0.05)
    channels = [
        grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(16)  # one connection each: all 16 on one process has odds 2^-15
    ]
    try:
        stubs = [pb_grpc.BanditServiceStub(ch) for ch in channels]  # type: ignore[no-untyped-call]
        stubs[0].CreateExperiment(
            pb.CreateExperimentRequest(
                spec=pb.ExperimentSpec(experiment_id="rp", policy=pb.BETA_TS, dim=1)
            )
        )
        stubs[0].AddArms(pb.AddArmsRequest(experiment_id="rp", arms=[pb.ArmSpec(arm_id="x")]))
        for e in (e1, e2):  # each process learns of the experiment and its arm from MySQL
            wait_for(
                functools.partial(
                    lambda e: bool(e.list_experiments()) and bool(e.list_arms("rp")), e
                ),
                5.0,
                "experiment and arm",
            )
        for stub in stubs:
            resp = stub.Recommend(pb.RecommendRequest(experiment_id="rp"))
            stub.Feedback(pb.FeedbackRequest(event_id=resp.event_id, arm_id="x", reward=1))
        logs = [e.event_log for e in (e1, e2)]
        assert all(isinstance(log, KafkaEventLog) for log in logs)
        assert all(log.producer.sent > 0 for log in logs)  # type: ignore[union-attr]  # both served
        store = MySQLStore(mysql_dsn)
        wait_for(lambda: counters(store, "rp").get("rewards_applied", 0) == 16, 30, "learner")
        store.close()
    finally:
        learner.stop()
        for ch in channels:
            ch.close()
        stop_server(first, e1, 1.0)
        stop_server(second, e2, 1.0)


@pytest.mark.parametrize("model", ["cascade", "position_based"])
def test_click_models_in_kafka_mode_give_the_closed_form(
    kafka_settings: KafkaSettings, mysql_dsn: str, model: str
) -> None:
    """Kafka mode, real broker: the learner weighs the default rewards of a
    ranked list as the experiment's click model says, and the posterior it
    commits is the closed form over the impressions the model counts."""
    settings = ServerSettings(
        port=0,
        state_dir=None,
        seed=2,
        mysql_dsn=mysql_dsn,
        kafka=kafka_settings,
        refresh_interval=0.2,
        learner_options={"commit_interval": 0.05, "lateness": 0.2},
    )
    server, port, engine = create_server(settings)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.BanditServiceStub(channel)  # type: ignore[no-untyped-call]
    store = MySQLStore(mysql_dsn)
    exp = f"clicks-{model}"
    curve = [1.0, 0.5, 0.25]
    try:
        stub.CreateExperiment(
            pb.CreateExperimentRequest(
                spec=pb.ExperimentSpec(
                    experiment_id=exp,
                    policy=pb.BETA_TS,
                    dim=1,
                    reward_window_seconds=1.5,
                    half_life_seconds=0,
                    click_model=pb.CASCADE if model == "cascade" else pb.POSITION_BASED,
                    examination=curve if model == "position_based" else [],
                )
            )
        )
        arms = ["a", "b", "c", "d"]
        stub.AddArms(
            pb.AddArmsRequest(experiment_id=exp, arms=[pb.ArmSpec(arm_id=a) for a in arms])
        )
        rng = random.Random(4)
        alpha, beta = np.ones(4), np.ones(4)
        for _ in range(24):
            resp = stub.Recommend(pb.RecommendRequest(experiment_id=exp, k=3))
            shown = [arms.index(a.arm_id) for a in resp.arms]
            clicked = [p for p in range(3) if rng.random() < 0.3]
            for p in clicked:
                stub.Feedback(
                    pb.FeedbackRequest(event_id=resp.event_id, arm_id=arms[shown[p]], reward=1)
                )
                alpha[shown[p]] += 1.0
            for p in range(3):
                if p in clicked:
                    continue
                if model == "position_based":
                    w = curve[p]
                else:
                    w = 1.0 if not clicked or p < max(clicked) else 0.0
                beta[shown[p]] += w
        n_clicks = int(alpha.sum() - 4)

        def learned() -> bool:
            c = counters(store, exp)
            return c.get("rewards_applied", 0) + c.get("rewards_defaulted", 0) == 72

        wait_for(learned, 60, "every impression joined")
        assert counters(store, exp)["rewards_applied"] == n_clicks
        snap = store.load_snapshot(exp)
        assert snap is not None
        np.testing.assert_allclose(snap.state["alpha"], alpha, rtol=1e-12)
        np.testing.assert_allclose(snap.state["beta"], beta, rtol=1e-12)
    finally:
        channel.close()
        store.close()
        stop_server(server, engine, 1.0)
