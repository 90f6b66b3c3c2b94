"""Timing helpers, progress output and machine metadata for the benchmarks."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

__all__ = [
    "Stopwatch",
    "machine_busy_seconds",
    "machine_meta",
    "median_call_us",
    "percentile",
    "proc_cpu_seconds",
    "progress",
]

_T0 = time.monotonic()


def progress(msg: str) -> None:
    """One line of progress on stderr, prefixed with the elapsed time."""
    print(f"[bench {time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def median_call_us(
    fn: Callable[[int], object], *, batch: int, repeats: int, warmup: int = 1
) -> tuple[float, list[float]]:
    """Median microseconds per call of ``fn(i)`` over ``repeats`` timed batches.

    Each batch calls ``fn(i)`` for ``batch`` consecutive ``i`` (the caller maps
    ``i`` onto its inputs, e.g. a context row) and is timed as a whole with
    ``perf_counter_ns``, so the timer's own cost is spread over the batch.
    Returns the median and the per-batch figures.
    """
    i = 0
    for _ in range(warmup):
        for _ in range(batch):
            fn(i)
            i += 1
    per_call: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(batch):
            fn(i)
            i += 1
        per_call.append((time.perf_counter_ns() - t0) / batch / 1e3)
    return statistics.median(per_call), per_call


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in [0, 100]) of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q / 100.0 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (all threads).

    Reads /proc (Linux); returns NaN elsewhere.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return float("nan")


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used (non-idle), from /proc/stat.

    The difference over a window, minus what the benchmark's own processes used, is the
    CPU taken by others: a noise indicator on a shared machine.
    """
    try:
        with open("/proc/stat", encoding="ascii") as f:
            parts = f.readline().split()
        vals = [int(v) for v in parts[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
        return (sum(vals[:8]) - idle) / _TICK  # guest time is already in user
    except (OSError, ValueError, IndexError):
        return float("nan")


class Stopwatch:
    """Wall and CPU time of this process over a block."""

    def __enter__(self) -> Stopwatch:
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_meta() -> dict[str, Any]:
    """What ran the benchmark: CPU, cores, load, Python and package versions."""
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    affinity: int | None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "loadavg_at_start": load,
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "env": {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("OPENBLAS_", "OMP_", "MKL_", "NUMBA_"))
        },
        "packages": {
            name: _version(name)
            for name in (
                "bandit-engine",
                "numpy",
                "numba",
                "llvmlite",
                "grpcio",
                "protobuf",
                "mabwiser",
                "vowpalwabbit",
                "scikit-learn",
                "scipy",
            )
        },
    }
