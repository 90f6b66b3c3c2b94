"""The harnesses drive bandit-engine through its public API only.

Public: ``from bandit_engine import X`` or ``from bandit_engine.<pkg> import X``
for a package of the public face, with ``X`` in that package's ``__all__``.
The generated protobuf and gRPC modules are allowed too: a gRPC client needs
the stubs. No private attribute of another object is read (``obj._x``).
``bench/feedback.py`` is left out: it drives the learner, whose public API
is being written.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

HARNESS = Path(__file__).parent
PUBLIC = {
    "bandit_engine",
    *(
        f"bandit_engine.{p}"
        for p in ("core", "policies", "kernels", "features", "store", "stream", "server", "client")
    ),
}
PUBLIC_PKGS = {name.rsplit(".", 1)[1] for name in PUBLIC if "." in name}
PROTO = "bandit_engine._proto.bandit.v1"
LEFT_OUT = {HARNESS / "bench" / "feedback.py", Path(__file__)}
FILES = sorted(p for p in HARNESS.rglob("*.py") if p not in LEFT_OUT)


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bandit_engine"):
            mod = node.module or ""
            if mod.startswith(PROTO):
                continue
            if mod not in PUBLIC:
                out.append(f"line {node.lineno}: from {mod} import ...")
                continue
            public = set(getattr(importlib.import_module(mod), "__all__", ()))
            out += [
                f"line {node.lineno}: {a.name} is not in {mod}.__all__"
                for a in node.names
                if a.name not in public and not (mod == "bandit_engine" and a.name in PUBLIC_PKGS)
            ]
        elif isinstance(node, ast.Import):
            out += [
                f"line {node.lineno}: import {a.name}"
                for a in node.names
                if a.name.startswith("bandit_engine")
                and a.name not in PUBLIC
                and not a.name.startswith(PROTO)
            ]
        elif (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            out.append(f"line {node.lineno}: private attribute .{node.attr}")
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(HARNESS)))
def test_harness_module_uses_public_api_only(path: Path) -> None:
    assert _violations(path) == []


def test_the_check_sees_a_private_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from bandit_engine.core.engine import Engine\n"
        "from bandit_engine.store import sqlite\n"
        "from bandit_engine.server import ServerSettings\n"
        "engine.decision_log._thread\n"
    )
    found = _violations(bad)
    assert len(found) == 3, found
    assert "bandit_engine.core.engine" in found[0]
    assert "sqlite" in found[1]
    assert "._thread" in found[2]


def test_every_harness_module_is_at_most_500_lines() -> None:
    every = sorted(HARNESS.rglob("*.py"))
    long = {
        str(p.relative_to(HARNESS)): n
        for p in every
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert long == {}
