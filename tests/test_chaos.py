"""CI smoke version of ``make chaos``: a short fault campaign on the real services."""

from __future__ import annotations

import os

import pytest

from bandit_engine.ops.chaos import run

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_chaos_smoke(mysql_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fault kind fires at least once, the broker restart included: the
    campaign starts its own Tansu over a local S3 endpoint (unless
    BANDIT_TEST_KAFKA names a cluster, which it does not restart)."""
    external = os.environ.get("BANDIT_TEST_KAFKA")
    if external:
        monkeypatch.setenv("BANDIT_CHAOS_KAFKA", external)
    else:
        monkeypatch.delenv("BANDIT_CHAOS_KAFKA", raising=False)
    monkeypatch.setenv("BANDIT_CHAOS_MYSQL_DSN", mysql_dsn)
    r = run(seconds=14.0, seed=3, out=None)
    fired = " | ".join(f["fault"] for f in r["faults"])
    for kind in ("server", "learner", "MySQL", *(() if external else ("broker",))):
        assert kind in fired, f"no {kind} fault fired: {fired}"
    assert r["valid_rewards"] > 100
    failed = [name for name, ok in r["checks"].items() if not ok]
    assert not failed, (failed, r["counters"], r["injected"])
