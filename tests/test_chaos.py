"""CI smoke version of ``make chaos``: a short fault campaign on the real services."""

from __future__ import annotations

import pytest

from bandit_engine.ops.chaos import run

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_chaos_smoke(kafka_bootstrap: str, mysql_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BANDIT_CHAOS_KAFKA", kafka_bootstrap)
    monkeypatch.setenv("BANDIT_CHAOS_MYSQL_DSN", mysql_dsn)
    r = run(seconds=12.0, seed=3, out=None)
    assert r["faults"], "no fault fired"
    assert r["valid_rewards"] > 100
    failed = [name for name, ok in r["checks"].items() if not ok]
    assert not failed, (failed, r["counters"], r["injected"])
