"""``python -m harness.chaos [--seconds S] [--seed N] [--faults KINDS] [--learners N]
[--out FILE]``."""

from __future__ import annotations

import sys

from harness.chaos import main

if __name__ == "__main__":
    sys.exit(main())
