"""``python -m harness.bench [--out FILE] [--quick] [--only NAME...]``."""

from __future__ import annotations

from harness.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
