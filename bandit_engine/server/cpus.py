"""Pinning a process to CPUs (Linux ``sched_setaffinity``).

A server process runs its Python on one core at a time (the GIL); left to
the scheduler, its threads hop between cores and each hop starts on a cold
cache (the posterior's scoring rows and the normal table are read on every
Recommend). Pinned to one core, a server answers more Recommends a second
(docs/performance.md). One pinned process per core (``--reuseport``, Kafka
mode) is the layout that uses them all.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from bandit_engine._exceptions import InvalidArgument

__all__ = ["parse_cpus", "pin"]


def parse_cpus(text: str) -> tuple[int, ...]:
    """``"0"``, ``"0,2"``, ``"0-3"`` (and mixes) as sorted CPU numbers."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if lo > hi:
                    raise ValueError
                cpus.update(range(lo, hi + 1))
            else:
                cpus.add(int(part))
        except ValueError:
            raise InvalidArgument(
                f"cpus={text!r}: {part!r} is not a CPU number or range like 0-3"
            ) from None
    return tuple(sorted(cpus))


def pin(cpus: Iterable[int], pid: int | None = None) -> tuple[int, ...]:
    """Pin every thread of process ``pid`` (default: this one) to ``cpus``;
    threads it starts later inherit it. Returns the CPUs. Raises
    InvalidArgument, having changed nothing, for a CPU this process may not
    use or on a system without ``sched_setaffinity``."""
    want = tuple(sorted(set(cpus)))
    if not hasattr(os, "sched_setaffinity"):
        raise InvalidArgument("CPU pinning needs Linux (os.sched_setaffinity)")
    if not want or want[0] < 0:
        raise InvalidArgument(f"cpus={list(want)!r}: give CPU numbers from 0")
    target = os.getpid() if pid is None else pid
    try:
        os.sched_setaffinity(target, want)  # the main thread first: it checks the set
    except OSError as exc:
        raise InvalidArgument(
            f"cpus={list(want)!r}: not CPUs this process may use ({exc.strerror}; "
            f"this machine has {os.cpu_count()})"
        ) from None
    try:
        tasks = [int(t) for t in os.listdir(f"/proc/{target}/task")]
    except OSError:
        tasks = []
    for tid in tasks:
        try:
            os.sched_setaffinity(tid, want)
        except ProcessLookupError:  # a thread that ended meanwhile
            pass
    return want
