"""The layout's promises, checked on the source: module and class sizes, the
core without transports, the simulators on the public API (the harnesses:
``tests/harness/test_public_api.py``), no library patched at run time, and a
README for users."""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_PACKAGES = {"core", "policies", "kernels", "features", "store", "stream", "server", "client"}
TRANSPORTS = ("grpc", "aiokafka", "pymysql", "google.protobuf")


def sources(*dirs: str) -> list[Path]:
    out = []
    for d in dirs:
        out += [p for p in sorted((ROOT / d).rglob("*.py")) if "_proto" not in p.parts]
    return out


@pytest.mark.parametrize("path", sources("bandit_engine", "simulators"), ids=str)
def test_modules_and_classes_stay_small(path: Path) -> None:
    text = path.read_text()
    lines = text.count("\n")
    assert lines <= 500, f"{path.relative_to(ROOT)} has {lines} lines (at most 500)"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            n = (node.end_lineno or node.lineno) - node.lineno + 1
            assert n <= 400, f"class {node.name} in {path.name} has {n} lines (at most 400)"


def test_the_core_imports_no_transport() -> None:
    code = (
        "import json, sys\n"
        "import bandit_engine.core\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {TRANSPORTS[:3]!r}"
        " or m.startswith('google.protobuf')]\n"
        "print(json.dumps(sorted(bad)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import in a file; names empty for ``import m``."""
    out: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names]
    return out


def _public_violations(paths: list[Path]) -> list[str]:
    bad = []
    for path in paths:
        for line, module, names in _imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            parts = module.split(".")
            if parts[0] != "bandit_engine":
                continue
            if len(parts) > 2 or any(p.startswith("_") for p in parts):
                bad.append(f"{where}: {module} is not public")
                continue
            if len(parts) == 2 and parts[1] not in PUBLIC_PACKAGES:
                bad.append(f"{where}: {module} is not a public package")
                continue
            exported = set(getattr(importlib.import_module(module), "__all__", ()))
            for name in names:
                if len(parts) == 1 and name in PUBLIC_PACKAGES:
                    continue  # ``from bandit_engine import kernels``
                if name not in exported:
                    bad.append(f"{where}: {name} is not in {module}.__all__")
    return bad


def test_simulators_use_the_public_api_only() -> None:
    assert _public_violations(sources("simulators")) == []


def test_the_serving_package_imports_no_simulator_or_harness() -> None:
    bad = [
        f"{p.relative_to(ROOT)}:{line}: {module}"
        for p in sources("bandit_engine")
        for line, module, _ in _imports(p)
        if module.split(".")[0] in ("simulators", "harness", "tests")
    ]
    assert bad == []


def test_no_library_module_is_changed_at_run_time() -> None:
    """No assignment to, or ``setattr`` on, an attribute of an imported
    third-party module."""
    bad = []
    for path in sources("bandit_engine", "simulators"):
        tree = ast.parse(path.read_text())
        modules = {"aiokafka", "grpc", "pymysql", "google", "numpy", "numba", "np"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules |= {(a.asname or a.name).split(".")[0] for a in node.names}
        for node in ast.walk(tree):
            targets: list[ast.expr] = []
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setattr":
                targets = [node.args[0]] if node.args else []
                if targets and isinstance(targets[0], ast.Name) and targets[0].id in modules:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: setattr on a module")
                continue
            for t in targets:
                root = t
                while isinstance(root, ast.Attribute):
                    root = root.value
                if t is not root and isinstance(root, ast.Name) and root.id in modules:
                    at = getattr(node, "lineno", 0)
                    bad.append(f"{path.relative_to(ROOT)}:{at}: {ast.unparse(t)} = ...")
    assert bad == []


FIRST_PERSON = re.compile(r"\b(I|I'm|I've|I'd|me|my|we|We|our|Our|us)\b")


@pytest.mark.parametrize(
    "path",
    [
        ROOT / "README.md",
        *sorted(p for p in (ROOT / "docs").rglob("*.md") if "node_modules" not in p.parts),
    ],
    ids=lambda p: p.name,
)
def test_docs_speak_in_the_present_and_not_in_the_first_person(path: Path) -> None:
    text = path.read_text()
    # code blocks may quote commands and logs
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    hits = [ln for ln in prose.splitlines() if FIRST_PERSON.search(ln.replace("U.S.", ""))]
    assert hits == []
    history = re.compile(r"closing note|[Tt]ried and dropped|found in review|\bsession \d")
    assert history.findall(prose) == []


def test_the_readme_is_short() -> None:
    n = (ROOT / "README.md").read_text().count("\n")
    assert n <= 350, f"README.md has {n} lines (at most 350)"
