"""The checked-in generated protobuf code is exactly what the proto produces."""

from __future__ import annotations

from pathlib import Path

from bandit_engine import _codegen


def test_generated_code_is_not_stale(tmp_path: Path) -> None:
    fresh = {p.relative_to(tmp_path): p.read_text() for p in _codegen.generate(tmp_path)}
    current_root = _codegen.DEFAULT_OUT
    current = {
        p.relative_to(current_root): p.read_text()
        for p in current_root.rglob("*")
        if p.is_file() and p.suffix in {".py", ".pyi"}
    }
    assert set(fresh) == set(current), "generated file set differs: run `make proto`"
    stale = [str(k) for k in fresh if fresh[k] != current[k]]
    assert not stale, f"stale generated files {stale}: run `make proto`"
