"""``python -m bandit_engine.bench [--out FILE] [--quick] [--only NAME...]``."""

from __future__ import annotations

from . import main

if __name__ == "__main__":
    raise SystemExit(main())
