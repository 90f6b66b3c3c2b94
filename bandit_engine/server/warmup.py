"""Warm-up: compile, or load from numba's on-disk cache, the kernels a server
runs, before it takes its first request.

A kernel compiles on its first call. With numba's cache empty (a new
install, a new container image) that is about 11 s for the four policies
here, and with the cache filled still about 0.1 s: without a warm-up the first
requests after a start would wait that long, on a server that already
answers health checks with SERVING. ``create_server`` calls ``warm_up`` before
it binds the port, once per process.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)

__all__ = ["warm_up"]

_lock = threading.Lock()
_done = False


def warm_up() -> float:
    """Run every policy kind through what a server does with it (Recommend
    with dense, numeric and categorical features, Feedback, a window closing
    with default rewards, a snapshot, a posterior summary) on a throwaway
    in-memory engine. Returns the seconds it took (0.0 if already done in
    this process)."""
    global _done
    with _lock:
        if _done:
            return 0.0
        from bandit_engine.core import Context, Engine, ExperimentConfig
        from bandit_engine.policies import POLICIES
        from bandit_engine.store import SQLiteStore

        t0 = time.perf_counter()
        quiet = logging.getLogger("bandit_engine.core.engine")
        level = quiet.level
        quiet.setLevel(logging.WARNING)  # not "created experiment warm-up-..." in the log
        now = [1.0e9]
        engine = Engine(SQLiteStore(":memory:"), seed=0, clock=lambda: now[0])
        try:
            ctx = Context(dense=[0.5, -0.5], numeric={"nights": 2.0}, categorical=["country=NL"])
            for kind in sorted(POLICIES):
                exp = f"warm-up-{kind}"
                engine.create_experiment(
                    ExperimentConfig(exp, policy=kind, dim=8, dense_dim=2, reward_window_s=1.0)
                )
                engine.add_arms(
                    exp,
                    [("a", {"numeric": {"stars": 4.0}, "categorical": ["kind=city"]}), ("b", {})],
                )
                for i in range(3):
                    dec = engine.recommend(exp, ctx, k=2)
                    if i:
                        engine.feedback(dec.event_id, dec.arm_ids[0], 1.0)
                engine.arm_info(exp, "a", ctx)
            engine.flush()
            now[0] += 10.0
            engine.sweep()  # default rewards: the batched update path
            engine.checkpoint()
        finally:
            engine.close()
            quiet.setLevel(level)
        _done = True
        seconds = time.perf_counter() - t0
        log.info("warm-up: kernels ready in %.2f s", seconds)
        return seconds
