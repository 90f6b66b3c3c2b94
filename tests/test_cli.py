"""The shell client against a real server, as a user would type it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from serverutil import Running

from bandit_engine import InvalidArgument
from bandit_engine.cli import main, parse_features


def test_parse_features() -> None:
    numeric, categorical = parse_features(["country=NL,nights:3", "device=mobile", "price:-2.5"])
    assert numeric == {"nights": 3.0, "price": -2.5}
    assert categorical == ["country=NL", "device=mobile"]
    with pytest.raises(InvalidArgument, match="'nights:three'"):
        parse_features(["nights:three"])


def run(running: Running, *args: str) -> dict:  # type: ignore[type-arg]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bandit_engine",
            *args[:1],
            "--target",
            f"127.0.0.1:{running.port}",
            *args[1:],
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_client_commands_round_trip(running: Running) -> None:
    exp = run(
        running, "create-experiment", "cli", "--policy", "beta_ts", "--dim", "1", "--window", "600"
    )
    assert exp["spec"]["reward_window_seconds"] == 600
    assert exp["spec"]["half_life_seconds"] == 86400
    arms = run(running, "add-arms", "cli", "paris:country=FR,stars:4.5", "rome")
    assert arms["arms"][0]["features"] == {
        "dense": [],
        "numeric": {"stars": 4.5},
        "categorical": ["country=FR"],
    }
    rec = run(running, "recommend", "cli", "-k", "2")
    assert {a["arm_id"] for a in rec["arms"]} == {"paris", "rome"}
    fb = run(running, "feedback", rec["event_id"], "rome", "1")
    assert fb["outcome"] == "APPLIED"
    arm = run(running, "arm", "cli", "rome")
    assert arm["posterior"]["pulls"] == "1"
    # Beta(1 + w, 1): the newest event counts w in [1, 1/0.99] (forgetting's clock grid)
    assert 2 / 3 <= arm["posterior"]["mean"] <= (1 + 1 / 0.99) / (2 + 1 / 0.99)
    assert run(running, "health")["status"] == "SERVING"


def test_client_reports_status_and_exit_code(running: Running) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bandit_engine",
            "recommend",
            "--target",
            f"127.0.0.1:{running.port}",
            "missing",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "NOT_FOUND" in out.stderr and "'missing'" in out.stderr


def test_json_logs() -> None:
    import logging

    from bandit_engine.cli import JsonFormatter

    rec = logging.LogRecord(
        "bandit_engine.x", logging.WARNING, __file__, 1, "token %s", ("t",), None
    )
    out = json.loads(JsonFormatter().format(rec))
    assert out["level"] == "WARNING" and out["logger"] == "bandit_engine.x"
    assert out["message"] == "token t" and out["time"].endswith("Z")


@pytest.mark.parametrize(("k", "shown"), [("0", "k=0 must be at least 1"), ("x", "'x'")])
def test_recommend_refuses_k_below_one(
    k: str, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The API reads k=0 as unset (one arm); the command line refuses it."""
    with pytest.raises(SystemExit) as exit_:
        main(["recommend", "exp", "-k", k, "--target", "127.0.0.1:1"])
    assert exit_.value.code == 2
    assert shown in capsys.readouterr().err


def test_serve_refuses_a_bad_log_retention(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--log-retention", "a week", "--state-dir", ":memory:"])
    assert exit_.value.code == 2
    assert "'a week' is not a duration" in capsys.readouterr().err


def test_serve_log_retention_reaches_the_engine() -> None:
    from bandit_engine.cli import build_parser

    args = build_parser().parse_args(["serve", "--log-retention", "7d"])
    assert args.log_retention == 7 * 86400.0
    assert build_parser().parse_args(["serve"]).log_retention == 0.0


def test_serve_cpus(capsys: pytest.CaptureFixture[str]) -> None:
    from bandit_engine.cli import build_parser

    assert build_parser().parse_args(["serve", "--cpus", "0-1,3"]).cpus == (0, 1, 3)
    assert build_parser().parse_args(["serve"]).cpus is None
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--cpus", "first", "--state-dir", ":memory:"])
    assert exit_.value.code == 2
    assert "'first' is not a CPU number" in capsys.readouterr().err
