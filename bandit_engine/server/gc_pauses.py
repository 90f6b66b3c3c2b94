"""The garbage collector in a long-running server: its pauses measured, the
start-up heap frozen.

A collection of the oldest generation walks every container object the
process holds, and holds the GIL meanwhile: no RPC thread runs. After
start-up that heap is mostly what never goes away (numba's compiled kernels
and their type information, the gRPC and protobuf modules, the loaded
experiments), so each full collection pays for objects that can never be
garbage. ``freeze_heap`` collects once, then moves every object alive to the
permanent generation (``gc.freeze``): later collections walk only what was
allocated after it. Reference counting still frees frozen objects; only a
frozen reference cycle that becomes garbage stays in memory.

``GcPauses`` times every collection through ``gc.callbacks`` (a few
hundred nanoseconds a collection); ``server.metrics`` exports its figures.
"""

from __future__ import annotations

import bisect
import gc
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PAUSES", "GcPauses", "GenerationPauses", "freeze_heap"]

log = logging.getLogger(__name__)


#: Upper bounds (seconds) of the pause histogram's buckets; +Inf follows.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


@dataclass
class GenerationPauses:
    """Collections of one generation since ``GcPauses.install``: how many,
    their seconds in all, the longest, and how many fell in each bucket
    (``BUCKETS``, then +Inf; not cumulative)."""

    seconds: float = 0.0
    max_seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))

    @property
    def count(self) -> int:
        return sum(self.buckets)


class GcPauses:
    """Times the collector's pauses per generation (0, 1, 2)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: float | None = None
        self._gens = [GenerationPauses() for _ in range(3)]
        self._installed = False

    def install(self) -> GcPauses:
        """Start timing (once per process; later calls do nothing)."""
        with self._lock:
            if not self._installed:
                gc.callbacks.append(self._callback)
                self._installed = True
        return self

    def uninstall(self) -> None:
        with self._lock:
            if self._installed:
                gc.callbacks.remove(self._callback)
                self._installed = False

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        # runs in whichever thread triggered the collection, with the GIL
        if phase == "start":
            self._started = time.perf_counter()
            return
        if self._started is None:
            return
        took = time.perf_counter() - self._started
        self._started = None
        g = self._gens[min(int(info.get("generation", 2)), 2)]
        g.seconds += took
        g.max_seconds = max(g.max_seconds, took)
        g.buckets[bisect.bisect_left(BUCKETS, took)] += 1

    def snapshot(self) -> list[GenerationPauses]:
        """A copy of the figures of generations 0, 1 and 2."""
        return [GenerationPauses(g.seconds, g.max_seconds, list(g.buckets)) for g in self._gens]


#: The process's timer (``install`` it once; ``server.metrics`` does).
PAUSES = GcPauses()


def freeze_heap() -> int:
    """Collect, then freeze every object alive into the permanent
    generation; how many objects are frozen. Call once start-up is done
    (kernels compiled, experiments loaded), as ``bandit-engine serve`` does
    unless ``--no-gc-freeze``. A library embedding the engine decides for
    its own process: ``create_server`` does not freeze."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("garbage collector: %d start-up objects frozen", frozen)
    return frozen
