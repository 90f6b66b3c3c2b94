"""The Node.js example of docs/clients.md (@grpc/grpc-js) against a real server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from serverutil import Running, make_experiment
from services import missing

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "node"


def node_example() -> str:
    node = shutil.which("node")
    if node is None:
        missing("node not installed (Debian: apt install nodejs)")
    if not (EXAMPLE / "node_modules" / "@grpc" / "grpc-js").is_dir():
        missing(f"the example's packages are not installed: npm ci --prefix {EXAMPLE}")
    return str(node)


def run(node: str, running: Running, experiment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, str(EXAMPLE / "recommend.js"), f"127.0.0.1:{running.port}", experiment],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_node_example_recommends_and_rewards(running: Running) -> None:
    node = node_example()
    make_experiment(running.stub, "destinations", arms=("paris", "rome", "nice"))
    out = run(node, running, "destinations")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert len(got["arms"]) == 2 and set(got["arms"]) <= {"paris", "rome", "nice"}
    assert got["outcome"] == "APPLIED" and got["propensity_kind"] == "FIRST_SLOT"
    info = running.engine.get_experiment("destinations")
    assert info.counters["rewards_applied"] == 1


def test_node_example_shows_the_status_and_message(running: Running) -> None:
    node = node_example()
    out = run(node, running, "no-such-experiment")
    assert out.returncode == 1
    assert out.stderr.startswith("NOT_FOUND:") and "no-such-experiment" in out.stderr
