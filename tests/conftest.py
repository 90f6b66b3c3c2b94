"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serverutil import Running, start_server
from services import kafka_bootstrap, kafka_settings, mysql_dsn  # noqa: F401  (fixtures)

from bandit_engine.core.config import Limits
from bandit_engine.store import MySQLStore, SQLiteStore, Store


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
