"""Shared fixtures, and the markers they imply.

A test is marked ``services`` when it uses a fixture that reaches MySQL or
the Kafka broker, and ``slow`` when it uses a fixture of a long run
(statistical seeds, fault campaigns): the markers follow from what a test
asks for, never from a hand-written mark. ``-m "not services"`` and
``-m "not slow"`` select on them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from serverutil import Running, start_server
from services import (  # noqa: F401
    kafka_bootstrap,
    kafka_settings,
    missing,
    mysql_dsn,
    spark_master,
)

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


@pytest.fixture
def chromium() -> Iterator[Any]:
    """A headless Debian ``chromium`` driven by ``chromedriver`` through
    selenium, recording the page's console (``driver.get_log("browser")``).
    Skipped with the reason when either program or selenium is missing,
    except under CI=true, where that fails the test."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = shutil.which("chromedriver")
    if browser is None or driver_bin is None:
        missing(
            "chromium or chromedriver not on PATH (Debian: apt-get install chromium "
            "chromium-driver)"
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        missing(f"selenium not installed ({exc}): pip install -e '.[dev]'")
        raise
    assert browser is not None and driver_bin is not None
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--no-first-run"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_bin))
    try:
        yield driver
    finally:
        driver.quit()
