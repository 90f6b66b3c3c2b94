"""A throttled progress line for long simulation runs."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """A throttled progress line on stderr, shown only once a run passes ``delay`` s.

    On a terminal the line is redrawn in place; otherwise a line is printed
    every ``every`` seconds. ``advance(n)`` is cheap enough to call often.
    """

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        delay: float = 2.0,
        every: float = 5.0,
    ) -> None:
        self.total = max(int(total), 1)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.delay = delay
        self.label = ""
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._every = 0.25 if self._tty else every
        self._done = 0
        self._t0 = time.monotonic()
        self._last = self._t0
        self._shown = False

    def advance(self, n: int, label: str | None = None) -> None:
        self._done += n
        if label is not None:
            self.label = label
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._t0 < self.delay or now - self._last < self._every:
            return
        self._last = now
        elapsed = now - self._t0
        frac = min(self._done / self.total, 1.0)
        eta = elapsed * (1.0 - frac) / frac if frac > 0 else float("nan")
        msg = (
            f"[simulate {elapsed:6.1f}s] {100 * frac:5.1f}%  {self.label}  (about {eta:.0f}s left)"
        )
        if self._tty:
            self.stream.write("\r" + msg.ljust(100)[:100])
        else:
            self.stream.write(msg + "\n")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown and self._tty:
            self.stream.write("\n")
            self.stream.flush()
