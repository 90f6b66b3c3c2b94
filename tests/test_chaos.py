"""CI smoke version of ``make chaos``: a short fault campaign on the real services."""

from __future__ import annotations

import os

import pytest
from harness.chaos import run

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_chaos_smoke(kafka_bootstrap: str, mysql_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every default fault kind fires at least once (rounds of every kind)."""
    monkeypatch.setenv("BANDIT_CHAOS_KAFKA", kafka_bootstrap)
    monkeypatch.setenv("BANDIT_CHAOS_MYSQL_DSN", mysql_dsn)
    r = run(seconds=12.0, seed=3, out=None)
    fired = " | ".join(f["fault"] for f in r["faults"])
    for kind in ("server", "learner", "MySQL"):
        assert kind in fired, f"no {kind} fault fired: {fired}"
    assert r["valid_rewards"] > 100
    failed = [name for name, ok in r["checks"].items() if not ok]
    assert not failed, (failed, r["counters"], r["injected"])


def test_persistent_local_broker_keeps_its_log_across_a_restart() -> None:
    """The harness of the broker fault: Tansu over the local S3 endpoint
    serves, after a SIGKILL and a start on the same port, what it had."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from harness.local_broker import BrokerUnavailable, LocalBroker

    broker = LocalBroker(persistent=True)
    try:
        bootstrap = broker.start()
    except BrokerUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            raise
        pytest.skip(str(exc))

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

    try:
        got = asyncio.run(main())
    finally:
        broker.stop()
    want = [f"{t}{i}".encode() for t in "ab" for i in range(50)]
    assert got == want
