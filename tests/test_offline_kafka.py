"""The engine's own log, read back from Kafka (production mode), round-trips."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bandit_engine import Context, ExperimentConfig
from bandit_engine.client import BanditClient
from bandit_engine.server import ServerSettings, create_server, stop_server
from bandit_engine.store import MySQLStore
from bandit_engine.stream import KafkaSettings
from simulators import logs
from simulators.kafka_log import KafkaLogSource, read_topic


def test_kafka_log_exports_what_was_served(
    kafka_settings: KafkaSettings, mysql_dsn: str, tmp_path: Path
) -> None:
    settings = ServerSettings(
        port=0, state_dir=None, seed=3, mysql_dsn=mysql_dsn, kafka=kafka_settings, learner=False
    )
    server, port, engine = create_server(settings)
    server.start()
    served = {}
    dense: dict[str, list[float]] = {}
    sent = {}
    try:
        with BanditClient(f"127.0.0.1:{port}") as client:
            cfg = ExperimentConfig(
                "k", "lin_ts_disjoint", dim=3, dense_dim=2, reward_max=5, reward_window_s=3600
            )
            client.create_experiment(cfg)
            client.add_arms("k", list("abcd"))
            for i in range(25):
                d = client.recommend("k", Context(dense=(i / 10, -i / 7)), k=2)
                served[d.event_id] = d
                dense[d.event_id] = [1.0, i / 10, -i / 7]
                if i % 3:
                    arm = d.arm_ids[i % 2]
                    client.feedback(d.event_id, arm, i % 5)
                    sent[(d.event_id, arm)] = float(i % 5)
                    # a retry and an out-of-range reward are not joined
                    client.feedback(d.event_id, arm, 4)
            out = client.feedback(d.event_id, "a", 99)
            assert out.outcome == "queued"
    finally:
        stop_server(server, engine, 1.0)  # closing the engine flushes the decisions

    source = KafkaLogSource(MySQLStore(mysql_dsn), kafka_settings)
    log = logs.from_store(source, "k", source="kafka")
    source.close()
    assert log.n == 25
    path = tmp_path / "k.jsonl"
    logs.write_jsonl(log, path)
    rows = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    assert {r["event_id"] for r in rows} == set(served)
    for r in rows:
        d = served[r["event_id"]]
        assert r["arms"] == list(d.arm_ids)
        assert r["propensities"] == list(d.propensities)
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


def test_read_topic_of_a_missing_topic_is_empty(kafka_settings: KafkaSettings) -> None:
    missing = f"{kafka_settings.decisions_topic}.missing"
    assert read_topic(kafka_settings.bootstrap, missing) == []
