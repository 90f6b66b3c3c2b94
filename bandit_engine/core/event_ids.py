"""Event ids: 128 bits, time-ordered, unguessable, unique without coordination."""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Iterable

import numpy as np

from bandit_engine._exceptions import InvalidArgument

__all__ = [
    "EventIds",
    "check_feedback_time",
    "decision_time",
    "decision_times",
    "event_time",
    "new_event_id",
]

_EVENT_ID = re.compile(r"[0-9a-f]{32}")


class EventIds:
    """Time-ordered 128-bit event ids as 32 hex digits: the wall clock in
    milliseconds (12 digits, 48 bits), then 80 random bits (20 digits), the
    layout of a UUIDv7 (RFC 9562) without its version bits.

    Time order, because the decision log is indexed by event id: ids in time
    order append to the index's last pages, where random ids would rewrite a
    page anywhere in it for every decision. 80 random bits keep an id
    unguessable and unique across processes; two ids of one millisecond are
    in random order, and a clock that steps back only costs index locality.

    ``os.urandom`` is a system call that releases the GIL, and on a busy
    server each release hands the GIL to another thread; so the random bytes
    are read 256 ids at a time. A forked child drops the parent's unused
    bytes, so that the two never hand out the same ids.
    """

    _BATCH = 256
    _RANDOM_DIGITS = 20

    def __init__(self) -> None:
        self._drop()
        os.register_at_fork(after_in_child=self._drop)

    def _drop(self) -> None:
        self._lock = threading.Lock()
        self._hex = ""
        self._pos = 0
        self._ms = -1
        self._prefix = ""

    def __call__(self, now: float | None = None) -> str:
        """A new id; ``now``: its time in seconds since the Unix epoch
        (default: the wall clock)."""
        n = self._RANDOM_DIGITS
        ms = time.time_ns() // 1_000_000 if now is None else int(now * 1000.0)
        with self._lock:
            if ms != self._ms:
                self._ms = ms
                self._prefix = f"{ms & 0xFFFF_FFFF_FFFF:012x}"
            pos = self._pos
            if pos >= len(self._hex):
                self._hex = os.urandom(n // 2 * self._BATCH).hex()
                pos = 0
            self._pos = pos + n
            return self._prefix + self._hex[pos : pos + n]


#: The process's event id source.
new_event_id = EventIds()


def event_time(event_id: str) -> float | None:
    """The wall-clock time (seconds since the Unix epoch, to the
    millisecond) at which ``event_id`` was made, read from its first 12 hex
    digits; None if ``event_id`` is not of ``EventIds``' layout."""
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        return None
    return int(event_id[:12], 16) / 1000.0


def decision_time(event_id: str) -> float:
    """The time of a decision as forgetting by time counts it: read from its
    event id, the one clock every server, learner and replay agrees on; NaN
    if the id does not carry one (the event then counts at its arm's clock)."""
    t = event_time(event_id)
    return math.nan if t is None else t


def decision_times(event_ids: Iterable[str]) -> np.ndarray:
    """``decision_time`` of each event id: the ``times`` of ``Policy.update_batch``."""
    return np.array([decision_time(e) for e in event_ids], dtype=np.float64)


def check_feedback_time(
    event_id: str, timestamp: float | None, decided: float | None, skew: float
) -> None:
    """Refuse a Feedback ``timestamp`` that is not a positive finite number,
    or that lies more than ``skew`` seconds before its decision's time
    ``decided`` (None: unknown, not checked). ``skew`` allows for the clocks
    of different servers and callers (``Limits.max_clock_skew_s``)."""
    if timestamp is None:
        return
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        raise InvalidArgument(f"timestamp={timestamp!r} must be a number of seconds")
    if not (math.isfinite(timestamp) and timestamp > 0):
        raise InvalidArgument(
            f"timestamp={timestamp!r} must be a positive finite number of seconds "
            "since the Unix epoch"
        )
    if decided is not None and timestamp < decided - skew:
        raise InvalidArgument(
            f"timestamp={timestamp!r} is before the time of its decision {event_id!r} "
            f"({decided!r}) by more than the allowed clock skew of {skew:g} s"
        )
