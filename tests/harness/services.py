"""Scratch services for benchmarks, fault campaigns and tests.

- ``admin_connection(dsn)``: an autocommit connection to the DSN's server,
  outside any database;
- ``scratch_database(base_dsn)``: a fresh MySQL database on the server of
  ``base_dsn``, dropped on exit;
- ``kafka_bootstrap(env_var)``: the cluster named by ``env_var``, else a local
  Tansu broker for the duration;
- ``scratch_topics(bootstrap)``: settings with topic and group names of their
  own;
- ``kill_connections(admin, db)``: KILL every connection to ``db`` but the
  caller's (the "MySQL link dropped" fault).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import pymysql

from bandit_engine.store import parse_dsn
from bandit_engine.stream import KafkaSettings
from harness.local_broker import LocalBroker

__all__ = [
    "admin_connection",
    "kafka_bootstrap",
    "kill_connections",
    "scratch_database",
    "scratch_topics",
]


def admin_connection(dsn: str) -> Any:
    a = parse_dsn(dsn)
    return pymysql.connect(
        host=a["host"], port=a["port"], user=a["user"], password=a["password"], autocommit=True
    )


@contextmanager
def scratch_database(base_dsn: str, prefix: str = "bandit_scratch") -> Iterator[str]:
    """A DSN to a fresh database (created by its first user) on the server
    of ``base_dsn``, with the same options; dropped on exit."""
    db = f"{prefix}_{uuid.uuid4().hex[:8]}"
    parse_dsn(base_dsn)  # checks it
    u = urlparse(base_dsn)
    dsn = f"{u.scheme}://{u.netloc}/{db}" + (f"?{u.query}" if u.query else "")
    try:
        yield dsn
    finally:
        conn = admin_connection(dsn)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        finally:
            conn.close()


@contextmanager
def kafka_bootstrap(env_var: str) -> Iterator[str]:
    """The bootstrap servers in ``env_var`` if set, else a local broker's for the duration."""
    given = os.environ.get(env_var)
    if given:
        yield given
        return
    with LocalBroker() as bootstrap:
        yield bootstrap


def scratch_topics(bootstrap: str, prefix: str = "t", partitions: int = 4) -> KafkaSettings:
    """Kafka settings with topic and group names of their own (not created here)."""
    tag = f"{prefix}{uuid.uuid4().hex[:8]}"
    return KafkaSettings(
        bootstrap,
        decisions_topic=f"{tag}.decisions",
        feedback_topic=f"{tag}.feedback",
        deadletter_topic=f"{tag}.deadletter",
        group_id=tag,
        partitions=partitions,
    )


def kill_connections(admin: Any, db: str) -> int:
    """KILL the connections to ``db`` other than ``admin``'s; how many died."""
    killed = 0
    with admin.cursor() as cur:
        cur.execute(
            "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
            (db,),
        )
        for (cid,) in cur.fetchall():
            try:
                cur.execute(f"KILL {int(cid)}")
                killed += 1
            except pymysql.err.MySQLError:
                pass  # gone already
    return killed


def log_ends(settings: KafkaSettings) -> dict[tuple[str, int], int]:
    """The end offset of every partition of the decisions and feedback topics."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def ends() -> dict[tuple[str, int], int]:
        c = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
        await c.start()
        try:
            tps = [
                TopicPartition(t, p)
                for t in (settings.decisions_topic, settings.feedback_topic)
                for p in sorted(c.partitions_for_topic(t) or ())
            ]
            got = await c.end_offsets(tps)
            return {(tp.topic, tp.partition): off for tp, off in got.items()}
        finally:
            await c.stop()

    return asyncio.run(ends())


def behind(
    settings: KafkaSettings, offsets: Any, ends: dict[tuple[str, int], int]
) -> dict[tuple[str, int], int]:
    """The partitions whose committed next offset (``offsets``: the store's
    ``learner_offsets``) has not reached ``ends``, with their end."""
    out = {}
    for key, end in ends.items():
        off = offsets.get(key[1])
        done = 0
        if off is not None:
            done = off.dec_next if key[0] == settings.decisions_topic else off.fb_next
        if end > done:
            out[key] = end
    return out
