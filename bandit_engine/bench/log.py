"""The embedded log: bytes on disk per decision, and the cost of pruning it.

- ``log_bytes_per_decision``: SQLite file size (after a WAL checkpoint) over
  the decisions served, each a top-10 ranking of 100 arms at d=33 that gets
  its 10 reward rows (one click in ten, defaults for the rest).
- ``log_prune_chunk_ms``: median time of ``SQLiteStore.prune_log`` deleting
  2,000 such decisions with their reward rows (one transaction).
- ``log_recommend_us``: median in-process ``Engine.recommend`` while a prune
  chunk runs in another thread, against ``log_recommend_idle_us`` without: what
  retention costs serving (the decision writer shares the store lock).
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from ..config import ExperimentConfig
from ..engine import Context, Engine
from ..store import SQLiteStore
from ._util import progress


class _Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def _size(d: Path) -> int:
    return sum(os.path.getsize(p) for p in d.glob("state.db*"))


def run(quick: bool = False) -> dict[str, float]:
    n = 4_000 if quick else 20_000
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        clock = _Clock()
        store = SQLiteStore(d / "state.db")
        e = Engine(store, seed=1, clock=clock, log_retention=3600.0)
        e.create_experiment(
            ExperimentConfig(
                "x", policy="lin_ts_disjoint", dim=33, dense_dim=32, reward_window_s=60.0
            )
        )
        e.add_arms("x", [(f"a{i}", {}) for i in range(100)])
        e.decision_log.start()  # the writer thread, as in a server (not the maintenance loop)
        rng = random.Random(0)

        def ctx() -> Context:
            return Context(dense=[rng.uniform(-1.0, 1.0) for _ in range(32)])

        progress(f"log: {n} decisions with their rewards into SQLite")
        for i in range(n):
            dec = e.recommend("x", ctx(), k=10)
            if i % 10 == 0:
                e.feedback(dec.event_id, dec.arm_ids[0], 1.0)
        e.decision_log.flush()
        clock.t += 61.0
        e.sweep()
        e.checkpoint()
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        figures["log_bytes_per_decision"] = _size(d) / n

        # serving alone, then serving while chunks are deleted
        def serve_us(reps: int) -> float:
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                e.recommend("x", ctx(), k=10)
                ts.append(time.perf_counter() - t0)
            return statistics.median(ts) * 1e6

        serve_us(500)
        figures["log_recommend_idle_us"] = serve_us(2000)
        clock.t += 3700.0
        before = clock.t - 3600.0
        chunks: list[float] = []
        done = threading.Event()

        def prune() -> None:
            while True:
                t0 = time.perf_counter()
                dd, rr = store.prune_log(before, 2000)
                if dd == 0 and rr == 0:
                    break
                chunks.append(time.perf_counter() - t0)
            done.set()

        progress("log: pruning in chunks of 2,000 while serving")
        th = threading.Thread(target=prune)
        th.start()
        during = []
        while not done.is_set():
            during.append(serve_us(50))
        th.join()
        figures["log_recommend_us"] = statistics.median(during) if during else float("nan")
        figures["log_prune_chunk_ms"] = statistics.median(chunks) * 1000
        figures["log_prune_chunks"] = float(len(chunks))
        e.close()
    return figures
