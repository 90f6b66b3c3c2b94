"""Chunked fetching (``bandit_engine.stream.fetch``) on a real broker: a consumer with
``raw_values`` sees exactly the records an ordinary consumer sees, compressed
batches included, and ordinary consumers in the same process are unchanged."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from bandit_engine.stream import fetch
from bandit_engine.stream.fetch import Chunk

Row = tuple[int, int, int, bytes | None, bytes | None]  # partition, offset, ts, key, value


async def _produce(bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaProducer

    n = 0
    for compression in (None, "gzip", None):
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=compression, linger_ms=5)
        await p.start()
        try:
            futs = []
            for i in range(700):
                key = None if i % 5 == 1 and i % 11 else f"k{i % 7}".encode()
                value = None if i % 11 == 0 else f"{compression}-{i}".encode() * (1 + i % 3)
                futs.append(await p.send(topic, value=value, key=key, timestamp_ms=1000 + i))
                n += 1
            await asyncio.gather(*futs)
        finally:
            await p.stop()
    return n


async def _consume(bootstrap: str, topic: str, n: int, chunked: bool) -> tuple[list[Row], int]:
    from aiokafka import AIOKafkaConsumer

    kw: dict[str, Any] = {"value_deserializer": fetch.raw_values} if chunked else {}
    c = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024,  # many fetches, cut inside batches
        **kw,
    )
    await c.start()
    rows: list[Row] = []
    chunks = 0
    try:
        async with asyncio.timeout(60):
            while len(rows) < n:
                got = await c.getmany(timeout_ms=200)
                for tp, items in got.items():
                    for m in items:
                        if type(m) is Chunk:
                            chunks += len(m)
                            for i, r in enumerate(m.recs.tolist()):
                                rows.append((tp.partition, r[0], r[1], m.key(i), m.value(i)))
                        else:
                            rows.append((tp.partition, m.offset, m.timestamp, m.key, m.value))
    finally:
        await c.stop()
    return sorted(rows), chunks  # rows, of which read from chunks


def test_chunked_consumer_reads_what_an_ordinary_one_reads(kafka_settings: Any) -> None:
    assert fetch.install()
    topic = kafka_settings.decisions_topic

    async def main() -> None:
        from bandit_engine.stream import ensure_topics

        await ensure_topics(kafka_settings)
        n = await _produce(kafka_settings.bootstrap, topic)
        plain, zero = await _consume(kafka_settings.bootstrap, topic, n, chunked=False)
        chunked, in_chunks = await _consume(kafka_settings.bootstrap, topic, n, chunked=True)
        assert zero == 0  # an ordinary consumer in the same process gets records
        assert len(plain) == n and len({(p, o) for p, o, *_ in plain}) == n
        assert chunked == plain
        # the plain batches before the first compressed one came in chunks; the
        # compressed ones, and the rest of their fetch, from aiokafka
        assert n // 3 <= in_chunks < n
        assert any(v is not None and v.startswith(b"gzip") for *_, v in chunked)

    asyncio.run(main())


def test_install_leaves_an_unexpected_fetcher_alone(monkeypatch: Any) -> None:
    """Another aiokafka (a different PartitionRecords): nothing is replaced,
    and consumers with ``raw_values`` get ordinary records (the learner reads
    those one by one: ``tests/test_learner_replay.py``, "records")."""
    from aiokafka.consumer import fetcher as F

    class Other:
        def __init__(self, tp: Any, records: Any) -> None:
            pass

    monkeypatch.setattr(F, "PartitionRecords", Other)
    monkeypatch.setattr(fetch, "_installed", None)
    mr = F.MemoryRecords
    assert fetch.install() is False
    assert F.PartitionRecords is Other and F.MemoryRecords is mr
    assert not fetch.installed()
    assert fetch.raw_values(b"x") == b"x"
