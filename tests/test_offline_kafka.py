"""The engine's own log, read back from Kafka (production mode), round-trips."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc
from bandit_engine.server import ServerSettings, create_server, stop_server
from bandit_engine.store import MySQLStore
from bandit_engine.stream import KafkaSettings
from simulators import logs
from simulators.kafka_log import KafkaLogSource

pytestmark = pytest.mark.services


def test_kafka_log_exports_what_was_served(
    kafka_settings: KafkaSettings, mysql_dsn: str, tmp_path: Path
) -> None:
    settings = ServerSettings(
        port=0, state_dir=None, seed=3, mysql_dsn=mysql_dsn, kafka=kafka_settings, learner=False
    )
    server, port, engine = create_server(settings)
    server.start()
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.BanditServiceStub(ch)
    served = {}
    dense: dict[str, list[float]] = {}
    sent = {}
    try:
        stub.CreateExperiment(
            pb.CreateExperimentRequest(
                spec=pb.ExperimentSpec(
                    experiment_id="k",
                    policy=pb.LIN_TS_DISJOINT,
                    dim=3,
                    dense_dim=2,
                    reward_min=0,
                    reward_max=5,
                    reward_window_seconds=3600,
                )
            )
        )
        stub.AddArms(
            pb.AddArmsRequest(experiment_id="k", arms=[pb.ArmSpec(arm_id=a) for a in "abcd"])
        )
        for i in range(25):
            resp = stub.Recommend(
                pb.RecommendRequest(
                    experiment_id="k", context=pb.Features(dense=[i / 10, -i / 7]), k=2
                )
            )
            served[resp.event_id] = resp
            dense[resp.event_id] = [1.0, i / 10, -i / 7]
            if i % 3:
                arm = resp.arms[i % 2].arm_id
                stub.Feedback(pb.FeedbackRequest(event_id=resp.event_id, arm_id=arm, reward=i % 5))
                sent[(resp.event_id, arm)] = float(i % 5)
                # a retry and an out-of-range reward are not joined
                stub.Feedback(pb.FeedbackRequest(event_id=resp.event_id, arm_id=arm, reward=4))
        out = stub.Feedback(pb.FeedbackRequest(event_id=resp.event_id, arm_id="a", reward=99))
        assert out.outcome == pb.QUEUED
        engine.producer.close()  # type: ignore[union-attr]  # flush the decisions
    finally:
        ch.close()
        stop_server(server, engine, 1.0)

    source = KafkaLogSource(MySQLStore(mysql_dsn), kafka_settings)
    log = logs.from_store(source, "k", source="kafka")
    source.close()
    assert log.n == 25
    path = tmp_path / "k.jsonl"
    logs.write_jsonl(log, path)
    rows = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    assert {r["event_id"] for r in rows} == set(served)
    for r in rows:
        resp = served[r["event_id"]]
        assert r["arms"] == [a.arm_id for a in resp.arms]
        assert r["propensities"] == [a.propensity for a in resp.arms]
        np.testing.assert_array_equal(r["x"], dense[r["event_id"]])
        for arm, rw in zip(r["arms"], r["rewards"], strict=True):
            want = sent.get((r["event_id"], arm))
            if want is None:
                assert rw is None  # window still open: no reward yet
            else:
                assert rw["source"] == "feedback" and rw["reward"] == want

    # and the same through the command line
    cmd = [
        sys.executable,
        "-m",
        "simulators",
        "export-log",
        "--mysql-dsn",
        mysql_dsn,
        "--kafka-bootstrap",
        kafka_settings.bootstrap,
        "--decisions-topic",
        kafka_settings.decisions_topic,
        "--feedback-topic",
        kafka_settings.feedback_topic,
        "--experiment",
        "k",
        "--out",
        str(tmp_path / "cli.jsonl"),
    ]
    t0 = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / "cli.jsonl").read_text().splitlines()) == 26, time.time() - t0
