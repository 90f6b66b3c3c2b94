"""Scratch services for benchmarks, fault campaigns and tests.

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

import pymysql

from bandit_engine.store.mysql import parse_dsn
from bandit_engine.stream import KafkaSettings
from harness.local_broker import LocalBroker

__all__ = ["kafka_bootstrap", "kill_connections", "scratch_database", "scratch_topics"]


def admin_connection(dsn: str) -> Any:
    a = parse_dsn(dsn)
    return pymysql.connect(
        host=a["host"], port=a["port"], user=a["user"], password=a["password"], autocommit=True
    )


@contextmanager
def scratch_database(base_dsn: str, prefix: str = "bandit_scratch") -> Iterator[str]:
    db = f"{prefix}_{uuid.uuid4().hex[:8]}"
    dsn = f"{base_dsn.rsplit('/', 1)[0]}/{db}"
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
    given = os.environ.get(env_var)
    if given:
        yield given
        return
    with LocalBroker() as bootstrap:
        yield bootstrap


def scratch_topics(bootstrap: str, prefix: str = "t", partitions: int = 4) -> KafkaSettings:
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
