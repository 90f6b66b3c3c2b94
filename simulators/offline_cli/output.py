"""What the offline commands print and write: progress, tables, JSON."""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Progress", "clean", "format_table", "lift", "slug", "write_json"]

_T0 = time.monotonic()


class Progress:
    """Progress on stderr: silent for the first two seconds, then a line per second."""

    def __init__(self, label: str, unit: str = "events", quiet: bool = False) -> None:
        self.label = label
        self.unit = unit
        self.quiet = quiet
        self.t0 = time.monotonic()
        self.last = 0.0
        self.shown = False
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.quiet or now - self.t0 < 2.0 or (now - self.last < 1.0 and done < total):
            return
        self.last = now
        self.shown = True
        pct = 100.0 * done / total if total else 100.0
        width = 24
        fill = int(width * done / total) if total else width
        bar = "#" * fill + "." * (width - fill)
        rate = done / (now - self.t0)
        eta = (total - done) / rate if rate > 0 else 0.0
        line = (
            f"{self.label} [{bar}] {pct:5.1f}% {done}/{total} {self.unit} "
            f"{now - self.t0:5.1f}s eta {eta:4.0f}s"
        )
        end = "\r" if self.tty and done < total else "\n"
        print(line, end=end, file=sys.stderr, flush=True)

    def note(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "-"
        if abs(f) >= 1000:
            return f"{f:,.0f}"
        return f"{f:.5f}"
    return str(v)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table (numbers right-aligned)."""
    cells = [[_fmt(v) for v in r] for r in rows]
    numeric = [
        all(isinstance(r[c], (int, float, np.number)) or r[c] is None for r in rows)
        for c in range(len(columns))
    ]
    widths = [max([len(columns[c])] + [len(r[c]) for r in cells]) for c in range(len(columns))]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(widths[c]) if numeric[c] else v.ljust(widths[c]) for c, v in enumerate(vals)
        ).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def lift(value: float, base: float) -> str:
    if not (math.isfinite(value) and math.isfinite(base)) or base == 0:
        return "-"
    return f"{100.0 * (value / base - 1.0):+.1f}%"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "log"


def write_json(path: str, payload: dict[str, Any]) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(payload, indent=2, allow_nan=False, default=_jsonable) + "\n")
    print(f"wrote {p}", file=sys.stderr)


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def clean(obj: Any) -> Any:
    """NaN -> None, recursively (JSON has no NaN)."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return obj
