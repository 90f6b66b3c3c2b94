"""CI smoke version of ``make soak``: a short run with the same measurements."""

from __future__ import annotations

from pathlib import Path

from harness.soak import run


def test_soak_smoke(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    r = run(minutes=0.15, rate=150.0, overload=3.0, window_s=3.0, out=str(out))
    assert out.exists()
    assert r["overall"]["requests"] == 150 * 9
    assert r["overall"]["error_rate"] < 0.02, r["overall"]
    assert r["overall"]["p99_ms"] > 0
    assert len(r["windows"]) >= 2
    lo, hi = r["fds_min_max"]
    assert hi - lo <= 2, r["fds_min_max"]
    assert r["overload"]["requests"] > 0
    # It recovers within the run's 30 s limit. How fast is a figure of
    # ``make soak``, not a test: on a shared machine it varies run to run.
    assert r["recovery_s"] is not None, r
    assert r["server_exit_code"] == 0  # SIGTERM drained cleanly
    # serve freezes its start-up heap by default; /metrics times the collector
    assert r["server_gc"]["frozen_objects"] > 10_000, r["server_gc"]
    young = r["server_gc"]["0"]
    assert young["count"] > 0 and young["seconds"] > 0 and young["longest_at_most_s"] > 0
