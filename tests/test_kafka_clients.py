"""Rewards written by Kafka clients the engine did not write: librdkafka
(confluent-kafka, with its default partitioner) and hand-made forwarded
copies. Real services: Kafka (Tansu or BANDIT_TEST_KAFKA) and MySQL."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from services import wait_until_learned_to_the_end

from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc
from bandit_engine.server import ServerSettings, create_server, stop_server
from bandit_engine.store import MySQLStore
from bandit_engine.stream import FORWARDED_FROM, KafkaSettings, owner_partition

confluent_kafka = pytest.importorskip("confluent_kafka", reason="pip install confluent-kafka")

PARTITIONS = 4


@pytest.fixture
def settings4(kafka_bootstrap: str) -> KafkaSettings:
    from harness.services import scratch_topics

    return scratch_topics(kafka_bootstrap, "ck", partitions=PARTITIONS)


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


class Served:
    """A Kafka-mode server with its learner in the process, and a stub."""

    def __init__(self, settings: KafkaSettings, dsn: str) -> None:
        st = ServerSettings(
            port=0,
            state_dir=None,
            seed=3,
            mysql_dsn=dsn,
            kafka=settings,
            refresh_interval=0.2,
            learner_options={"commit_interval": 0.05, "orphan_grace": 3.0},
            metrics_port=0,
        )
        self.server, port, self.engine = create_server(st)
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = pb_grpc.BanditServiceStub(self.channel)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self.channel.close()
        stop_server(self.server, self.engine, 1.0)


@pytest.fixture
def served(settings4: KafkaSettings, mysql_dsn: str) -> Iterator[Served]:
    s = Served(settings4, mysql_dsn)
    try:
        yield s
    finally:
        s.close()


def beta_experiment(stub: pb_grpc.BanditServiceStub, exp: str, arms: list[str]) -> None:
    stub.CreateExperiment(
        pb.CreateExperimentRequest(
            spec=pb.ExperimentSpec(
                experiment_id=exp, policy=pb.BETA_TS, dim=1, reward_window_seconds=3600
            )
        )
    )
    stub.AddArms(pb.AddArmsRequest(experiment_id=exp, arms=[pb.ArmSpec(arm_id=a) for a in arms]))


def test_librdkafka_default_partitioner_rewards_reach_their_decisions(
    served: Served, settings4: KafkaSettings, mysql_dsn: str
) -> None:
    """confluent-kafka's default partitioner (CRC32) puts most rewards on
    another partition than their decisions; each is still applied exactly
    once, none is dead-lettered, and the posterior is the closed form."""
    from confluent_kafka import Producer

    stub = served.stub
    arms = ["a", "b", "c"]
    beta_experiment(stub, "ck", arms)
    rng = random.Random(7)
    sums = {a: [0, 0.0] for a in arms}  # pulls, reward sum
    records = []
    for _ in range(200):
        resp = stub.Recommend(pb.RecommendRequest(experiment_id="ck", k=1))
        arm = resp.arms[0].arm_id
        r = float(rng.random() < 0.4)
        sums[arm][0] += 1
        sums[arm][1] += r
        records.append((resp.event_id, json.dumps(
            {"event_id": resp.event_id, "arm_id": arm, "reward": r}
        ).encode()))  # fmt: skip

    landed: list[tuple[str, int]] = []

    def delivered(err: object, msg: Any) -> None:
        assert err is None, err
        key = msg.key()
        assert key is not None
        landed.append((key.decode(), msg.partition()))

    producer = Producer({"bootstrap.servers": settings4.bootstrap, "acks": "all"})
    for ev, value in records:
        producer.produce(settings4.feedback_topic, value=value, key=ev, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert len(landed) == 200
    # the test means something: most rewards are on a partition their
    # decisions are not on
    elsewhere = sum(p != owner_partition(ev.encode(), PARTITIONS) for ev, p in landed)
    assert elsewhere > 100, elsewhere

    store = MySQLStore(mysql_dsn)
    try:

        def settled() -> bool:
            c = counters(store, "ck")
            return c.get("rewards_applied", 0) + c.get("dead_unknown_event", 0) >= 200

        wait_for(settled, 60, "200 rewards applied or dead-lettered")
        wait_until_learned_to_the_end(mysql_dsn, settings4, 30)
        c = counters(store, "ck")
        assert c.get("rewards_applied", 0) == 200, c
        assert not {k: v for k, v in c.items() if k.startswith("dead_")}, c
        assert c.get("rewards_forwarded", 0) == elsewhere, c
        assert c.get("duplicate_forward", 0) == 0, c
        info = stub.GetExperiment(pb.GetExperimentRequest(experiment_id="ck")).counters
        assert (info.rewards_applied, info.rewards_duplicate, info.decisions) == (200, 0, 200)

        def posterior_is_closed_form() -> bool:
            for a in arms:
                p = stub.GetArm(pb.GetArmRequest(experiment_id="ck", arm_id=a)).posterior
                if (p.pulls, p.reward_sum) != (sums[a][0], pytest.approx(sums[a][1])):
                    return False
            return True

        wait_for(posterior_is_closed_form, 5, "the posterior of every reward, once")
        import urllib.request

        url = f"http://127.0.0.1:{served.server.metrics.port}/metrics"
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        assert f"bandit_learner_rewards_forwarded_total {float(elsewhere)}" in text
    finally:
        store.close()


def test_a_reward_forwarded_twice_is_applied_once(
    served: Served, settings4: KafkaSettings, mysql_dsn: str
) -> None:
    """Two copies forwarded from one source record (a learner that crashed
    between the forward's acknowledgement and its commit forwards again)
    count once, and not as a duplicate; a second reward of the same arm
    from another source record is a duplicate."""
    from aiokafka import AIOKafkaProducer

    stub = served.stub
    beta_experiment(stub, "twice", ["x"])
    evs = [stub.Recommend(pb.RecommendRequest(experiment_id="twice")).event_id for _ in range(2)]

    def body(ev: str) -> bytes:
        return json.dumps({"event_id": ev, "arm_id": "x", "reward": 1.0}).encode()

    copies: list[tuple[str, bytes]] = [
        (evs[0], b"9:17"),  # a forward
        (evs[0], b"9:17"),  # the same forward again
        (evs[1], b"9:18"),
        (evs[1], b"9:19"),  # another record for the same (event, arm): a duplicate
    ]

    async def send() -> None:
        p = AIOKafkaProducer(bootstrap_servers=settings4.bootstrap)
        await p.start()
        try:
            for ev, source in copies:
                await p.send_and_wait(
                    settings4.feedback_topic,
                    value=body(ev),
                    key=ev.encode(),
                    partition=owner_partition(ev.encode(), PARTITIONS),
                    headers=[(FORWARDED_FROM, source)],
                )
        finally:
            await p.stop()

    asyncio.run(send())
    store = MySQLStore(mysql_dsn)
    try:
        wait_for(lambda: counters(store, "twice").get("rewards_applied", 0) >= 2, 30, "2 rewards")
        wait_until_learned_to_the_end(mysql_dsn, settings4, 30)
        c = counters(store, "twice")
        assert c.get("rewards_applied", 0) == 2, c
        assert c.get("dead_duplicate", 0) == 1, c
        assert c.get("duplicate_forward", 0) == 1, c
        assert c.get("rewards_forwarded", 0) == 0, c
        wait_for(
            lambda: (
                stub.GetArm(pb.GetArmRequest(experiment_id="twice", arm_id="x")).posterior.pulls
                == 2
            ),
            5,
            "two pulls",
        )
    finally:
        store.close()


def test_unequal_partition_counts_are_refused_at_start(kafka_bootstrap: str) -> None:
    """Decisions and feedback topics with different partition counts: the
    learner and the producer refuse to start, naming both topics and counts."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from harness.services import scratch_topics

    from bandit_engine import InvalidArgument
    from bandit_engine.stream import ensure_topics

    s = scratch_topics(kafka_bootstrap, "uneq", partitions=4)

    async def make() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(s.decisions_topic, 4, 1), NewTopic(s.feedback_topic, 3, 1)]
            )
        finally:
            await admin.close()

    asyncio.run(make())
    want = (
        f"decisions topic '{s.decisions_topic}' has 4 partitions and the feedback topic "
        f"'{s.feedback_topic}' has 3"
    )
    with pytest.raises(InvalidArgument) as err:
        asyncio.run(ensure_topics(s))
    assert want in str(err.value)
    assert asyncio.run(ensure_topics(scratch_topics(kafka_bootstrap, "eq", partitions=3))) == 3


def test_a_json_reward_without_a_field_is_dead_lettered_naming_it(
    served: Served, settings4: KafkaSettings, mysql_dsn: str
) -> None:
    """The dead letter of a JSON reward without ``arm_id`` says that field is missing."""
    from aiokafka import AIOKafkaConsumer
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": settings4.bootstrap})
    producer.produce(settings4.feedback_topic, value=b'{"event_id": "x", "reward": 1}', key="x")
    assert producer.flush(30) == 0

    async def first_dead_letter() -> dict[str, Any]:
        c = AIOKafkaConsumer(
            settings4.deadletter_topic,
            bootstrap_servers=settings4.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await c.start()
        try:
            msg = await asyncio.wait_for(c.getone(), 30)
            assert msg.value is not None
            body: dict[str, Any] = json.loads(msg.value)
            return body
        finally:
            await c.stop()

    body = asyncio.run(first_dead_letter())
    assert (body["reason"], body["detail"]) == (
        "malformed",
        "bad JSON feedback: missing field 'arm_id'",
    )
    store = MySQLStore(mysql_dsn)
    try:
        assert counters(store, "")["dead_malformed"] == 1
    finally:
        store.close()


def test_the_guides_python_examples_deliver_rewards(
    served: Served, settings4: KafkaSettings, mysql_dsn: str
) -> None:
    """Each Python example of docs/kafka-clients.md, run as written but for
    the broker, topic and event id, delivers a reward that is applied."""
    import re
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[1] / "docs" / "kafka-clients.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.S)
    assert len(blocks) == 2
    stub = served.stub
    beta_experiment(stub, "guide", ["nice"])
    for i, block in enumerate(blocks):
        ev = stub.Recommend(pb.RecommendRequest(experiment_id="guide")).event_id
        code = (
            block.replace("127.0.0.1:9092", settings4.bootstrap)
            .replace('"bandit.feedback"', repr(settings4.feedback_topic))
            .replace("0195f3a2c4d8e1f0a9b8c7d6e5f4a3b2", ev)
        )
        exec(compile(code, f"kafka-clients.md block {i}", "exec"), {})
    store = MySQLStore(mysql_dsn)
    try:
        wait_for(lambda: counters(store, "guide").get("rewards_applied", 0) >= 2, 30, "2 rewards")
        wait_until_learned_to_the_end(mysql_dsn, settings4, 30)
        c = counters(store, "guide")
        assert c.get("rewards_applied", 0) == 2, c
        assert not {k: v for k, v in c.items() if k.startswith("dead_")}, c
    finally:
        store.close()
