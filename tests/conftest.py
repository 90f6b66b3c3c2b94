"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serverutil import Running, start_server
from services import kafka_bootstrap, kafka_settings, mysql_dsn  # noqa: F401  (fixtures)

from bandit_engine.config import Limits


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    r = start_server(tmp_path / "state", limits=Limits(max_candidates=50, max_features=20))
    try:
        yield r
    finally:
        r.stop()
