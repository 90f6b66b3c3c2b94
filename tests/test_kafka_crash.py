"""Nothing lost, nothing doubled: the learner SIGKILLed and its MySQL link killed under load.

A stream of decisions and rewards (valid ones plus injected duplicates, late,
unknown-event, non-finite and malformed rewards) is produced to Kafka while a
learner subprocess is killed and restarted at random points. At the end the
statistics in MySQL must equal the closed form over the distinct valid on-time
rewards exactly (1e-9), and every dead-letter counter must equal what was
injected.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from harness.services import admin_connection, kill_connections
from services import wait_until_learned_to_the_end

from bandit_engine import ExperimentConfig
from bandit_engine._proto.bandit.v1 import log_pb2
from bandit_engine.policies import PRIOR_MEAN
from bandit_engine.store import ArmRow, MySQLStore, parse_dsn
from bandit_engine.stream import KafkaSettings, ensure_topics

pytestmark = [pytest.mark.services, pytest.mark.slow]

ARMS = [f"arm{i}" for i in range(5)]
DIM = 3


@dataclass
class Stream:
    """Records to produce, and what a correct learner must end up with."""

    records: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # (topic, key, value)
    valid: list[tuple[int, np.ndarray, float]] = field(default_factory=list)
    injected: dict[str, int] = field(default_factory=dict)
    decisions: int = 0


def build_stream(settings: KafkaSettings, n_decisions: int, seed: int) -> Stream:
    rng = random.Random(seed)
    now = time.time()
    s = Stream(
        injected={"duplicate": 0, "late": 0, "unknown_event": 0, "invalid": 0, "malformed": 0}
    )
    chunk: list[tuple[str, bytes, bytes]] = []
    for i in range(n_decisions):
        ev = f"ev{seed}-{i}"
        x = np.array([1.0, rng.uniform(-2, 2), rng.uniform(-2, 2)])
        shown = rng.sample(range(len(ARMS)), 2)
        deadline = now + 3600.0
        dec = log_pb2.DecisionRecord(
            event_id=ev,
            experiment_id="crash",
            created_at=now,
            deadline=deadline,
            model_version=0,
            x=x.tolist(),
            arms=[ARMS[j] for j in shown],
            slots=shown,
            scores=[0.0, 0.0],
            propensities=[0.5, 0.5],
        )
        rewards: list[tuple[str, bytes, bytes]] = []
        for slot in shown:
            u = rng.random()
            if u < 0.93:
                r = rng.choice([0.0, 0.25, 1.0])
                s.valid.append((slot, x, r))
                rewards.append(
                    _fb(settings, ev, ARMS[slot], r, now + 1, json_form=rng.random() < 0.5)
                )
                if rng.random() < 0.05:
                    s.injected["duplicate"] += 1
                    rewards.append(_fb(settings, ev, ARMS[slot], 1.0, now + 2, json_form=True))
            elif u < 0.96:
                s.injected["late"] += 1
                rewards.append(_fb(settings, ev, ARMS[slot], 1.0, deadline + 5, json_form=False))
            elif u < 0.98:
                s.injected["invalid"] += 1
                body = json.dumps({"event_id": ev, "arm_id": ARMS[slot], "reward": float("nan")})
                rewards.append((settings.feedback_topic, ev.encode(), body.encode()))
        if rng.random() < 0.02:
            s.injected["unknown_event"] += 1
            rewards.append(_fb(settings, f"nobody-{seed}-{i}", ARMS[0], 1.0, now, json_form=True))
        if rng.random() < 0.01:
            s.injected["malformed"] += 1
            rewards.append((settings.feedback_topic, ev.encode(), b"{broken json"))
        # Mostly decision first; sometimes the rewards overtake it (orphans).
        dec_rec = (settings.decisions_topic, ev.encode(), dec.SerializeToString())
        chunk.extend([*rewards, dec_rec] if rng.random() < 0.1 else [dec_rec, *rewards])
        s.decisions += 1
    s.records = chunk
    return s


def _fb(
    settings: KafkaSettings, ev: str, arm: str, r: float, ts: float, json_form: bool
) -> tuple[str, bytes, bytes]:
    if json_form:
        body = json.dumps({"event_id": ev, "arm_id": arm, "reward": r, "timestamp": ts}).encode()
    else:
        body = log_pb2.FeedbackRecord(
            event_id=ev, arm_id=arm, reward=r, timestamp=ts
        ).SerializeToString()
    return (settings.feedback_topic, ev.encode(), body)


def produce_all(
    settings: KafkaSettings,
    records: list[tuple[str, bytes, bytes]],
    done: threading.Event,
    pace: float,
) -> None:
    from aiokafka import AIOKafkaProducer

    async def main() -> None:
        p = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=5, acks="all")
        await p.start()
        try:
            for i in range(0, len(records), 500):
                futs = [await p.send(t, value=v, key=k) for t, k, v in records[i : i + 500]]
                await asyncio.gather(*futs)
                await asyncio.sleep(pace)
        finally:
            await p.stop()

    asyncio.run(main())
    done.set()


def start_learner(settings: KafkaSettings, dsn: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bandit_engine",
            "--log-level",
            "WARNING",
            "learn",
            "--kafka-bootstrap",
            settings.bootstrap,
            "--mysql-dsn",
            dsn,
            "--decisions-topic",
            settings.decisions_topic,
            "--feedback-topic",
            settings.feedback_topic,
            "--deadletter-topic",
            settings.deadletter_topic,
            "--group-id",
            settings.group_id,
            "--partitions",
            str(settings.partitions),
            "--commit-interval",
            "0.05",
            "--orphan-grace",
            "1",
            "--lateness",
            "0.5",
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def setup_experiment(dsn: str) -> None:
    store = MySQLStore(dsn)
    cfg = ExperimentConfig(
        "crash", policy="lin_ts_disjoint", dim=DIM, dense_dim=2, reward_window_s=3600.0
    )
    store.create_experiment("crash", cfg.to_dict(), time.time())
    store.upsert_arms([ArmRow("crash", a, i, {}, True) for i, a in enumerate(ARMS)])
    store.close()


def check(dsn: str, settings: KafkaSettings, stream: Stream, timeout: float) -> None:
    store = MySQLStore(dsn)
    want_dead = {f"dead_{k}": v for k, v in stream.injected.items()}
    deadline = time.time() + timeout
    got: dict[str, int] = {}
    while time.time() < deadline:
        got = {}
        for (_, name), n in store.learner_counters().items():
            got[name] = got.get(name, 0) + n
        if got.get("rewards_applied", 0) >= len(stream.valid) and all(
            got.get(k, 0) >= v for k, v in want_dead.items()
        ):
            break
        time.sleep(0.25)  # polling the store for the awaited state
    wait_until_learned_to_the_end(dsn, settings, timeout)  # and any wrong extra with it
    got = {}
    for (_, name), n in store.learner_counters().items():
        got[name] = got.get(name, 0) + n
    assert got.get("rewards_applied") == len(stream.valid), got
    assert got.get("decisions") == stream.decisions, got
    for k, v in want_dead.items():
        assert got.get(k, 0) == v, (k, got)
    assert got.get("rewards_defaulted", 0) == 0
    snap = store.load_snapshot("crash")
    assert snap is not None
    a = np.stack([np.eye(DIM) for _ in ARMS])
    b = np.zeros((len(ARMS), DIM))
    for slot, x, r in stream.valid:
        a[slot] += np.outer(x, x)
        b[slot] += (r - PRIOR_MEAN) * x  # lin_ts_disjoint learns centred rewards
    np.testing.assert_allclose(snap.state["A"], a, rtol=1e-9)
    np.testing.assert_allclose(snap.state["b"], b, rtol=1e-9, atol=1e-9)
    assert int(snap.state["pulls"].sum()) == len(stream.valid)
    store.close()


def run_with_chaos(kafka_settings: KafkaSettings, dsn: str, chaos: str, seed: int) -> None:
    asyncio.run(ensure_topics(kafka_settings))
    setup_experiment(dsn)
    stream = build_stream(kafka_settings, 5600, seed)
    assert len(stream.valid) >= 10_000
    rng = random.Random(seed)
    done = threading.Event()
    producer = threading.Thread(
        target=produce_all, args=(kafka_settings, stream.records, done, 0.03), daemon=True
    )
    learner = start_learner(kafka_settings, dsn)
    producer.start()
    kills = 0
    args = parse_dsn(dsn)
    admin = admin_connection(dsn)
    try:
        while not done.is_set() or kills < 3:
            time.sleep(rng.uniform(0.3, 1.2))
            if chaos == "sigkill":
                learner.send_signal(signal.SIGKILL)
                learner.wait(10)
                learner = start_learner(kafka_settings, dsn)
                kills += 1
            else:
                kills += kill_connections(admin, args["database"])
        producer.join(120)
        check(dsn, kafka_settings, stream, timeout=120)
        assert learner.poll() is None, "the learner must survive killed connections"
    finally:
        admin.close()
        learner.send_signal(signal.SIGTERM)
        try:
            learner.wait(15)
        except subprocess.TimeoutExpired:
            learner.kill()


def test_learner_sigkilled_repeatedly_loses_and_doubles_nothing(
    kafka_settings: KafkaSettings, mysql_dsn: str
) -> None:
    run_with_chaos(kafka_settings, mysql_dsn, "sigkill", seed=1)


def test_mysql_connection_killed_mid_commit_is_survived(
    kafka_settings: KafkaSettings, mysql_dsn: str
) -> None:
    run_with_chaos(kafka_settings, mysql_dsn, "kill-connection", seed=2)
