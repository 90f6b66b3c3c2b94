"""The embedded log: bytes on disk per decision, and the cost of pruning it.

- ``log_bytes_per_decision``: SQLite file size (after a WAL checkpoint) over
  the decisions served, each a top-10 ranking of 100 arms at d=33 that gets
  its 10 reward rows (one click in ten, defaults for the rest).
- ``log_prune_chunk_ms`` (and ``_max_ms``): time of ``SQLiteStore.prune_log``
  deleting ``PRUNE_CHUNK`` (100) such decisions with their reward rows (one
  transaction).
- ``log_feedback_p50_ms_pruning``/``_p99``: in-process Feedback latency (a
  SQLite commit) at about 500/s while old decisions are deleted in another
  thread, against ``log_feedback_*_idle``: a chunk holds the write lock.
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bandit_engine import Context, Engine, ExperimentConfig
from bandit_engine.store import SQLiteStore
from harness.bench._util import progress


class _Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def _size(d: Path) -> int:
    return sum(os.path.getsize(p) for p in d.glob("state.db*"))


def _truncate_wal(path: Path, timeout: float = 30.0) -> None:
    """Checkpoint the WAL into the database file and truncate it, from a
    connection of its own (the engine's stays open); retried while a
    reader or writer of the engine holds it back."""
    conn = sqlite3.connect(path, timeout=timeout)
    try:
        deadline = time.monotonic() + timeout
        while True:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"WAL of {path} still busy after {timeout:g}s")
            time.sleep(0.01)
    finally:
        conn.close()


def run(quick: bool = False) -> dict[str, float]:
    n = 4_000 if quick else 20_000
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        clock = _Clock()
        store = SQLiteStore(d / "state.db")
        # the maintenance loop runs as in a server, but leaves pruning to the
        # timed thread below
        e = Engine(store, seed=1, clock=clock, log_retention=3600.0, prune_interval=1e9)
        e.create_experiment(
            ExperimentConfig(
                "x", policy="lin_ts_disjoint", dim=33, dense_dim=32, reward_window_s=60.0
            )
        )
        e.add_arms("x", [(f"a{i}", {}) for i in range(100)])
        e.start()  # the decision writer and the maintenance loop, as in a server
        rng = random.Random(0)

        def ctx() -> Context:
            return Context(dense=[rng.uniform(-1.0, 1.0) for _ in range(32)])

        progress(f"log: {n} decisions with their rewards into SQLite")
        for i in range(n):
            dec = e.recommend("x", ctx(), k=10)
            if i % 10 == 0:
                e.feedback(dec.event_id, dec.arm_ids[0], 1.0)
        clock.t += 61.0
        e.sweep()  # every window closed: the decisions are stored, then closed
        e.checkpoint()
        _truncate_wal(d / "state.db")
        figures["log_bytes_per_decision"] = _size(d) / n

        # Feedback (a SQLite commit) at 500/s, alone, then while old decisions
        # are deleted in chunks by another thread (the maintenance loop's job)
        def feedback_ms(stop: threading.Event | None, seconds: float) -> list[float]:
            out = []
            t_end = time.monotonic() + seconds
            while (stop is None and time.monotonic() < t_end) or (stop and not stop.is_set()):
                dec = e.recommend("x", ctx(), k=10)
                t0 = time.perf_counter()
                e.feedback(dec.event_id, dec.arm_ids[0], 1.0)
                out.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.002)
            return out

        idle = feedback_ms(None, 2.0)
        clock.t += 3700.0
        e.sweep()  # close the idle phase's windows now, not during the timed pruning
        before = clock.t - 3600.0
        chunks: list[float] = []
        done = threading.Event()

        def prune() -> None:
            while True:
                t0 = time.perf_counter()
                dd, rr = store.prune_log(before)
                if dd == 0 and rr == 0:
                    break
                chunks.append(time.perf_counter() - t0)
                time.sleep(0.005)  # as Engine.prune_log
            done.set()

        progress("log: pruning in chunks while serving")
        th = threading.Thread(target=prune)
        th.start()
        during = feedback_ms(done, 0.0)
        th.join()
        figures["log_prune_chunk_ms"] = statistics.median(chunks) * 1000
        figures["log_prune_chunk_max_ms"] = max(chunks) * 1000
        figures["log_prune_chunks"] = float(len(chunks))
        figures["log_feedback_p50_ms_idle"] = float(np.percentile(idle, 50))
        figures["log_feedback_p99_ms_idle"] = float(np.percentile(idle, 99))
        figures["log_feedback_p50_ms_pruning"] = float(np.percentile(during, 50))
        figures["log_feedback_p99_ms_pruning"] = float(np.percentile(during, 99))
        e.close()
    return figures
