"""Challengers in Kafka mode on real services: a change made on one server
reaches the other server within its refresh interval, the learner feeds
every challenger the champion's events once, and a promotion switches the
served policy on every server."""

from __future__ import annotations

import random
import time
from typing import Any

import grpc
import numpy as np
from services import wait_until_learned_to_the_end
from test_kafka import counters, wait_for

from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc
from bandit_engine.server import ServerSettings, create_server, stop_server
from bandit_engine.store import MySQLStore
from bandit_engine.stream import KafkaSettings

REFRESH = 0.2


def seen(stub: pb_grpc.BanditServiceStub) -> tuple[str, list[str]]:
    """(champion, challengers) a server serves, or ("", []) before it has the experiment."""
    try:
        exp = stub.GetExperiment(pb.GetExperimentRequest(experiment_id="k"))
    except grpc.RpcError:
        return "", []
    return exp.champion, [c.name for c in exp.challengers]


def test_kafka_mode_challengers_learn_once_and_promotion_reaches_every_server(
    kafka_settings: KafkaSettings, mysql_dsn: str
) -> None:
    def settings(**kw: Any) -> ServerSettings:
        return ServerSettings(port=0, state_dir=None, seed=1, mysql_dsn=mysql_dsn,
                              kafka=kafka_settings, refresh_interval=REFRESH, **kw)  # fmt: skip

    a = create_server(settings(learner_options={"commit_interval": 0.05}))
    b = create_server(settings(learner=False))  # serves only
    stubs = []
    for server, port, _ in (a, b):
        server.start()
        stubs.append(pb_grpc.BanditServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}")))  # type: ignore[no-untyped-call]
    sa, sb = stubs
    store = MySQLStore(mysql_dsn)
    try:
        spec = pb.ExperimentSpec(experiment_id="k", policy=pb.BETA_TS, dim=4, dense_dim=3,
                                 half_life_seconds=0, shadow_rate=1.0)  # fmt: skip
        sa.CreateExperiment(pb.CreateExperimentRequest(spec=spec))
        arms = ["a", "b", "c"]
        sa.AddArms(pb.AddArmsRequest(experiment_id="k", arms=[pb.ArmSpec(arm_id=x) for x in arms]))
        twin = pb.PolicySettings(policy=pb.BETA_TS, half_life_seconds=0)
        lin = pb.PolicySettings(policy=pb.LIN_TS_DISJOINT, half_life_seconds=0)
        sa.AddChallenger(pb.AddChallengerRequest(experiment_id="k", name="twin", settings=twin))
        sa.AddChallenger(pb.AddChallengerRequest(experiment_id="k", name="lin", settings=lin))
        wait_for(
            lambda: seen(sb) == ("initial", ["twin", "lin"]),
            10 * REFRESH,
            "the other server to pick the challengers up",
        )
        rng = random.Random(2)
        for _ in range(40):
            dense = [rng.uniform(-1, 1) for _ in range(3)]
            resp = sb.Recommend(pb.RecommendRequest(experiment_id="k",
                                                    context=pb.Features(dense=dense)))  # fmt: skip
            fb = pb.FeedbackRequest(event_id=resp.event_id, arm_id=resp.arms[0].arm_id,
                                    reward=float(rng.random() < 0.5))  # fmt: skip
            assert sb.Feedback(fb).outcome == pb.QUEUED
        wait_for(lambda: counters(store, "k").get("rewards_applied", 0) >= 40, 60, "40 rewards")
        wait_until_learned_to_the_end(mysql_dsn, kafka_settings, 30)
        snap = store.load_snapshot("k")
        assert snap is not None
        # the twin learned exactly the champion's events, once each
        np.testing.assert_array_equal(snap.state["ch.twin.alpha"], snap.state["alpha"])
        np.testing.assert_array_equal(snap.state["ch.twin.beta"], snap.state["beta"])
        assert int(snap.state["pulls"].sum()) == 40
        assert int(snap.state["ch.lin.pulls"].sum()) == 40
        # every decision was ranked in shadow on the server and joined by the
        # learner: the estimates reach the servers with the snapshot
        wait_for(
            lambda: sb.GetReport(pb.GetReportRequest(experiment_id="k")).estimates[1].n == 40,
            10 * REFRESH,
            "the estimates to reach the other server",
        )
        rep = {e.name: e for e in sb.GetReport(pb.GetReportRequest(experiment_id="k")).estimates}
        assert rep["initial"].n == 40 and rep["lin"].n == 40 and rep["twin"].n == 40
        champion_mean = float(snap.state["reward_sum"].sum()) / 40
        assert rep["initial"].ips.value == champion_mean  # the logged first-slot rewards
        assert rep["twin"].ess > 0 and rep["lin"].snips.HasField("low")
        t0 = time.monotonic()
        sa.PromoteChallenger(pb.PromoteChallengerRequest(experiment_id="k", name="lin"))
        wait_for(
            lambda: seen(sb) == ("lin", ["twin", "initial"]),
            10 * REFRESH,
            "the other server to switch",
        )
        assert time.monotonic() - t0 < 10 * REFRESH
        got = sb.GetExperiment(pb.GetExperimentRequest(experiment_id="k"))
        assert got.spec.policy == pb.LIN_TS_DISJOINT
        # the promoted policy serves with the state the learner gave it
        arm = sb.GetArm(pb.GetArmRequest(experiment_id="k", arm_id="a"))
        assert arm.posterior.pulls == int(snap.state["ch.lin.pulls"][0])
        report = sb.GetReport(pb.GetReportRequest(experiment_id="k"))
        assert [(c.action, c.name) for c in report.changes] == [
            ("add", "twin"), ("add", "lin"), ("promote", "lin")
        ]  # fmt: skip
    finally:
        store.close()
        for server, _, engine in (b, a):
            stop_server(server, engine, grace=1.0)
