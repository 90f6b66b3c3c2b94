"""What a Recommend costs the server without gRPC: ``recommend_inproc_us``.

Each repeat opens the engine a server opens with its defaults
(``open_engine(ServerSettings(state_dir=None))``: embedded mode, SQLite in
memory, the decision writer and the maintenance loop running), creates the
experiment of the gRPC rounds, trains it on the same synthetic world, then
calls ``Engine.recommend`` back to back and closes the engine. CPU time is
``time.process_time`` over the calls and ``Engine.close`` (which stores the
decisions still buffered), so the decision writer's thread counts. Closing
writes no snapshot: one is taken before the timed calls, and Recommend does
not change the posterior. The figure is the median over repeats.
"""

from __future__ import annotations

import statistics
import time

from bandit_engine import Context, Engine, ExperimentConfig
from harness.bench._util import progress
from harness.bench.workload import DENSE, EXPERIMENT, K, World, arm_ids, contexts

__all__ = ["run"]

#: Distinct contexts the timed calls cycle through (as the gRPC client's pool).
POOL = 512


def _trained_engine(train_events: int) -> Engine:
    from bandit_engine.server import ServerSettings, open_engine

    engine = open_engine(ServerSettings(state_dir=None, seed=0))
    try:
        engine.start()
        engine.create_experiment(
            ExperimentConfig(EXPERIMENT, policy="lin_ts_disjoint", dim=DENSE + 1, dense_dim=DENSE)
        )
        engine.add_arms(EXPERIMENT, [(a, None) for a in arm_ids()])
        world = World.make(100)
        xs, us = world.training(train_events, 200)
        for x, u in zip(xs, us, strict=True):
            d = engine.recommend(EXPERIMENT, Context(dense=x.tolist()), k=K)
            top = d.arm_ids[0]
            engine.feedback(d.event_id, top, float(u < world.click_probability(top, x)))
        engine.checkpoint()
    except BaseException:
        engine.close()
        raise
    return engine


def _cpu_us_per_call(engine: Engine, ctxs: list[Context], n: int) -> float:
    """CPU us per call of ``n`` Recommends and the close that stores them."""
    recommend = engine.recommend
    c0 = time.process_time()
    try:
        for i in range(n):
            recommend(EXPERIMENT, ctxs[i % POOL], k=K)
    finally:
        engine.close()
    return (time.process_time() - c0) / n * 1e6


def run(quick: bool, train_events: int = 2000) -> dict[str, float]:
    n, repeats = (500, 3) if quick else (4000, 7)
    train = 100 if quick else train_events
    ctxs = [Context(dense=x.tolist()) for x in contexts(POOL, 0)]
    per_call = []
    for r in range(repeats):
        progress(f"recommend_inproc: repeat {r + 1}/{repeats}: train {train}, time {n} calls")
        per_call.append(_cpu_us_per_call(_trained_engine(train), ctxs, n))
    return {"recommend_inproc_us": float(statistics.median(per_call))}
