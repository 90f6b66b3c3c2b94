"""Shared fixtures, and the markers they imply.

A test is marked ``services`` when it uses a fixture that reaches MySQL or
the Kafka broker, and ``slow`` when it uses a fixture of a long run
(statistical seeds, fault campaigns): the markers follow from what a test
asks for, never from a hand-written mark. ``-m "not services"`` and
``-m "not slow"`` select on them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serverutil import Running, start_server
from services import kafka_bootstrap, kafka_settings, mysql_dsn, spark_master  # noqa: F401

from bandit_engine.core import Limits
from bandit_engine.store import MySQLStore, SQLiteStore, Store

#: Fixtures that reach a real service (directly or through another fixture;
#: Spark counts: it needs pyspark and Java);
#: a fixture parameter "mysql" (a store of each kind) counts too.
SERVICE_FIXTURES = {
    "mysql_dsn",
    "kafka_bootstrap",
    "kafka_settings",
    "persistent_broker",
    "spark_master",
}
#: Fixtures of long runs.
SLOW_FIXTURES = {"statistical_seeds", "fault_campaign", "persistent_broker"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if names & SERVICE_FIXTURES or "mysql" in params.values():
            item.add_marker(pytest.mark.services)
        if names & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def statistical_seeds() -> Callable[[int], range]:
    """``statistical_seeds(n)``: the seeds 0..n-1 of a statistical test, each
    one a whole run (such a test is slow). The thresholds of these tests hold
    for these seeds; they are fixed so that a run reproduces."""
    return range


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    r = start_server(tmp_path / "state", limits=Limits(max_candidates=50, max_features=20))
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(params=["sqlite", "mysql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """One store of each kind: SQLite, and MySQL (skipped, or failed in CI, without it)."""
    if request.param == "sqlite":
        s: Store = SQLiteStore(tmp_path / "state.db")
    else:
        s = MySQLStore(request.getfixturevalue("mysql_dsn"))
    yield s
    s.close()
