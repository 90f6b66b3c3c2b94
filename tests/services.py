"""Real services for tests: MySQL/MariaDB, Kafka, and Spark (pyspark + Java).

A test that needs a service gets it from a fixture here. When the service is
not reachable the test is skipped with the reason, except under CI=true,
where a missing service fails the test: a skipped test proves nothing.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pymysql
import pytest
from harness.services import behind, log_ends

from bandit_engine.stream import KafkaSettings

MYSQL_DSN = os.environ.get("BANDIT_TEST_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture
def mysql_dsn() -> Iterator[str]:
    """A DSN to a fresh, empty database, dropped after the test."""
    from bandit_engine.store import parse_dsn

    args = parse_dsn(MYSQL_DSN)
    try:
        conn = pymysql.connect(
            host=args["host"],
            port=args["port"],
            user=args["user"],
            password=args["password"],
            connect_timeout=3,
        )
    except pymysql.err.MySQLError as exc:
        missing(f"MySQL not reachable at {MYSQL_DSN} ({exc}); set BANDIT_TEST_MYSQL_DSN")
        raise
    db = f"bandit_test_{uuid.uuid4().hex[:12]}"
    base = MYSQL_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{db}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        conn.close()


# -------------------------------------------------------------------- Kafka
KAFKA = os.environ.get("BANDIT_TEST_KAFKA")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A Kafka-protocol broker: BANDIT_TEST_KAFKA, else Tansu on a free loopback port."""
    from harness.local_broker import BrokerUnavailable, LocalBroker

    if KAFKA:
        yield KAFKA
        return
    broker = LocalBroker()
    try:
        broker.start()
    except BrokerUnavailable as exc:
        missing(f"{exc}; or set BANDIT_TEST_KAFKA")
        raise
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> object:
    """Settings with topic names of its own, so tests never see each other's records."""
    from harness.services import scratch_topics

    return scratch_topics(kafka_bootstrap, "t", partitions=3)


def wait_until_learned_to_the_end(dsn: str, settings: KafkaSettings, timeout: float) -> None:
    """Wait until the learners' committed offsets reach the end of both logs
    as they are now: everything in them is joined, applied and committed."""
    from bandit_engine.store import MySQLStore

    ends = log_ends(settings)
    store = MySQLStore(dsn)
    deadline = time.monotonic() + timeout
    try:
        while True:
            late = behind(settings, store.learner_offsets(settings.group_id), ends)
            if not late:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"learners not at the log ends after {timeout}s: {late}")
            time.sleep(0.1)  # polling the store for the awaited state
    finally:
        store.close()


# -------------------------------------------------------------------- Spark
@pytest.fixture(scope="session")
def spark_master() -> str:
    """A local Spark master with two cores: needs pyspark (the spark extra) and Java."""
    from simulators.estimators.spark import spark_available

    why = spark_available()
    if why is not None:
        missing(f"{why}; the Spark tests need it")
    return "local[2]"
