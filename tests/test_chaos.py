"""CI smoke version of ``make chaos``: a short fault campaign on the real services."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness.chaos import run
from harness.local_broker import BrokerUnavailable, LocalBroker
from services import missing


@pytest.fixture
def fault_campaign(
    kafka_bootstrap: str, mysql_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., dict[str, Any]]:
    """``make chaos``'s campaign on the test's broker and database."""
    monkeypatch.setenv("BANDIT_CHAOS_KAFKA", kafka_bootstrap)
    monkeypatch.setenv("BANDIT_CHAOS_MYSQL_DSN", mysql_dsn)
    return run


@pytest.fixture
def persistent_broker() -> Iterator[LocalBroker]:
    """Tansu over the local S3 endpoint: a broker that keeps its log across a restart."""
    broker = LocalBroker(persistent=True)
    try:
        broker.start()
    except BrokerUnavailable as exc:
        missing(str(exc))
    try:
        yield broker
    finally:
        broker.stop()


def test_chaos_smoke(fault_campaign: Callable[..., dict[str, Any]]) -> None:
    """Every default fault kind fires at least once (rounds of every kind)."""
    r = fault_campaign(seconds=12.0, seed=3, out=None)
    fired = " | ".join(f["fault"] for f in r["faults"])
    for kind in ("server", "learner", "MySQL"):
        assert kind in fired, f"no {kind} fault fired: {fired}"
    assert r["valid_rewards"] > 100
    for f in r["faults"]:
        if not f["fault"].startswith("SIGKILL server"):
            # caught up with the fault takes at least a commit of the learner
            assert f["recovery_s"] >= 0.02, f
    failed = [name for name, ok in r["checks"].items() if not ok]
    assert not failed, (failed, r["counters"], r["injected"])


def test_chaos_smoke_three_learners_one_hot_experiment(
    fault_campaign: Callable[..., dict[str, Any]],
) -> None:
    """Three learners share the partitions of one experiment's logs: each
    stores its evidence as snapshot parts, the learner of partition 0
    absorbs them; a learner is SIGKILLed among the default faults, and the
    exactly-once counters and the closed-form posterior still hold."""
    r = fault_campaign(seconds=12.0, seed=5, out=None, learners=3)
    assert r["learners"] == 3 and r["partitions"] >= 3
    fired = " | ".join(f["fault"] for f in r["faults"])
    for kind in ("server", "learner", "MySQL"):
        assert kind in fired, f"no {kind} fault fired: {fired}"
    killed = [f["process"] for f in r["faults"] if "process" in f]
    assert killed and all(k in ("learner0", "learner1", "learner2") for k in killed), killed
    assert r["valid_rewards"] > 100
    assert r["snapshot_parts_written"] > 0, r
    for f in r["faults"]:
        if not f["fault"].startswith("SIGKILL server"):
            assert f["recovery_s"] >= 0.02, f  # at least a commit of each partition
    failed = [name for name, ok in r["checks"].items() if not ok]
    assert not failed, (failed, r["counters"], r["injected"], r["logs"])


def test_persistent_local_broker_keeps_its_log_across_a_restart(
    persistent_broker: LocalBroker,
) -> None:
    """The harness of the broker fault: Tansu over the local S3 endpoint
    serves, after a SIGKILL and a start on the same port, what it had."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    broker = persistent_broker
    bootstrap = broker.bootstrap

    async def produce(tag: str) -> None:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await p.start()
        for i in range(50):
            await p.send_and_wait("t", value=f"{tag}{i}".encode(), partition=0)
        await p.stop()

    async def read() -> list[bytes]:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await c.start()
        tp = TopicPartition("t", 0)
        c.assign([tp])
        c.seek(tp, 0)
        out: list[bytes] = []
        for _ in range(50):
            batch = await c.getmany(timeout_ms=300)
            out += [m.value for ms in batch.values() for m in ms if m.value is not None]
            if len(out) >= 100:
                break
        await c.stop()
        return out

    async def main() -> list[bytes]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic("t", 1, 1)])
        await admin.close()
        await produce("a")
        broker.kill()
        broker.start()
        await produce("b")
        return await read()

    got = asyncio.run(main())
    want = [f"{t}{i}".encode() for t in "ab" for i in range(50)]
    assert got == want
