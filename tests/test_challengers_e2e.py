"""End to end against a ``bandit-engine serve`` process: a champion that
ignores the context (beta_ts), a challenger that uses it (lin_ts_disjoint),
traffic from the simulators' live mode in a world whose rewards depend on
the context; ``bandit-engine report`` shows the challenger above the
champion with an interval that excludes the champion's; promote; the
champion serves and the change is in the report."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "bandit-engine"), "serve", "--host", "127.0.0.1", "--port", str(port),
         "--state-dir", str(tmp_path / "state"), "--seed", "1"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    target = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while cli("health", target=target, check=False).returncode != 0:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        yield target
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def cli(*args: str, target: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "bandit-engine"), *args, "--target", target],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


def simulate(target: str, rounds: int, seed: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "simulators", "simulate", "--world", "supervised",
         "--policies", "uniform", "--target", target, "--live-policy",
         "beta_ts:shadow_rate=0.5", "--experiment", "e2e", "--rounds", str(rounds),
         "--seeds", "1", "--seed", str(seed), "-q"],
        check=True,
        capture_output=True,
        timeout=600,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )  # fmt: skip


def report(target: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(cli("report", "e2e", "--json", target=target).stdout)
    out["by_name"] = {e["name"]: e for e in out["estimates"]}
    return out


def test_better_challenger_shows_and_is_promoted(
    server: str, statistical_seeds: Callable[[int], range]
) -> None:
    (seed,) = statistical_seeds(1)
    simulate(server, 50, seed)  # creates the experiment and its arms
    added = json.loads(cli("add-challenger", "e2e", "lin", "--policy", "lin_ts_disjoint",
                           target=server).stdout)  # fmt: skip
    assert [c["name"] for c in added["challengers"]] == ["lin"]
    simulate(server, 2500, seed + 1)
    r = report(server)
    champ, lin = r["by_name"]["initial"], r["by_name"]["lin"]
    assert champ["role"] == "champion" and lin["role"] == "challenger"
    assert int(lin["n"]) > 1000  # about half of the 2,500 requests, rewarded
    for estimator in ("snips", "dr"):
        assert lin[estimator]["low"] > champ["ips"]["high"], (estimator, r)
    table = cli("report", "e2e", target=server).stdout
    assert "champion initial" in table and "lin" in table and "SNIPS [95%]" in table
    promoted = json.loads(cli("promote", "e2e", "lin", target=server).stdout)
    assert promoted["champion"] == "lin" and promoted["spec"]["policy"] == "LIN_TS_DISJOINT"
    simulate(server, 200, seed + 2)
    r = report(server)
    assert r["champion"] == "lin"
    assert int(r["by_name"]["lin"]["n"]) > 50  # the new champion's rewards
    assert [(c["action"], c["name"], c["actor"]) for c in r["changes"]] == [
        ("add", "lin", "anonymous"),
        ("promote", "lin", "anonymous"),
    ]
    assert r["changes"][1]["previous"] == "initial"
