"""The README's tour, run command by command against a real server, as a new
user would type it: the commands in the README are the ones tested."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from serverutil import Running

README = Path(__file__).resolve().parents[1] / "README.md"


def tour_commands() -> list[list[str]]:
    """The ``$B ...`` commands of the tour's shell block, continuations joined."""
    text = README.read_text()
    section = text.split("## A 5-minute tour", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    block = re.sub(r"\\\n\s*", " ", block)
    commands = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("$B "):
            commands.append(shlex.split(line)[1:])
    return commands


def run(running: Running, args: list[str]) -> dict:  # type: ignore[type-arg]
    out = subprocess.run(
        [
            *(sys.executable, "-m", "bandit_engine", args[0]),
            *("--target", f"127.0.0.1:{running.port}", *args[1:]),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"{args}: {out.stderr}"
    return json.loads(out.stdout)


def test_the_readme_tour_runs_as_written(running: Running) -> None:
    commands = tour_commands()
    names = [c[0] for c in commands]
    assert names[:4] == ["create-experiment", "add-arms", "recommend", "feedback"], names
    answer: dict = {}  # type: ignore[type-arg]
    for args in commands:
        if answer:
            fill = {"<event_id>": answer["event_id"], "<arm_id>": answer["arms"][0]["arm_id"]}
            args = [fill.get(a, a) for a in args]
        assert not [a for a in args if a.startswith("<")], f"unfilled placeholder in {args}"
        out = run(running, args)
        if args[0] == "recommend":
            answer = out
            assert len(out["arms"]) == 2
        if args[0] == "feedback":
            assert "APPLIED" in json.dumps(out).upper(), out
            again = run(running, args)  # "sent again: DUPLICATE"
            assert "DUPLICATE" in json.dumps(again).upper(), again
    assert answer, "the tour never recommended"
