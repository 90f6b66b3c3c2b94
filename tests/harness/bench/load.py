"""The load client of the gRPC benchmark: one child process, commands over a pipe.

The same client code serves every server (the generated stub, one channel
per client thread, requests prebuilt from a pool of contexts), so the
figures of the real server and of the echo differ only by the server.
Commands: ``("setup", kw)`` (``setup``), ``("load", kw)`` (``load``),
``None`` to stop.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

from harness.bench._util import percentile
from harness.bench.workload import (
    DENSE,
    EXPERIMENT,
    K,
    World,
    arm_ids,
    requests,
)

__all__ = ["client_proc", "load", "setup"]


def client_proc(conn: Any) -> None:
    """Child process: serve ``setup`` and ``load`` commands until ``None``."""
    while True:
        cmd = conn.recv()
        if cmd is None:
            conn.send(("stopped", {}))
            return
        op, kw = cmd
        try:
            if op == "setup":
                conn.send(("ok", setup(**kw)))
            elif op == "load":
                conn.send(("ok", load(**kw)))
            else:
                raise ValueError(f"unknown client command {op!r}")
        except BaseException:
            conn.send(("error", {"traceback": traceback.format_exc()}))


def setup(target: str, train_events: int, seed: int = 0) -> dict[str, Any]:
    """Create the experiment on the server at ``target``, add the arms and
    train it with Recommend + Feedback pairs from the synthetic world."""
    from concurrent import futures

    import grpc

    from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
    from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc

    t0 = time.perf_counter()
    world = World.make(seed + 100)
    xs, u = world.training(train_events, seed + 200)
    with grpc.insecure_channel(target) as ch:
        grpc.channel_ready_future(ch).result(timeout=30)
        stub = pb_grpc.BanditServiceStub(ch)
        stub.CreateExperiment(
            pb.CreateExperimentRequest(
                spec=pb.ExperimentSpec(
                    experiment_id=EXPERIMENT,
                    policy=pb.LIN_TS_DISJOINT,
                    dim=DENSE + 1,
                    dense_dim=DENSE,
                )
            )
        )
        stub.AddArms(
            pb.AddArmsRequest(
                experiment_id=EXPERIMENT, arms=[pb.ArmSpec(arm_id=a) for a in arm_ids()]
            )
        )

        def one(i: int) -> None:
            resp = stub.Recommend(
                pb.RecommendRequest(
                    experiment_id=EXPERIMENT, context=pb.Features(dense=xs[i].tolist()), k=K
                )
            )
            top = resp.arms[0].arm_id
            reward = float(u[i] < world.click_probability(top, xs[i]))
            stub.Feedback(pb.FeedbackRequest(event_id=resp.event_id, arm_id=top, reward=reward))

        with futures.ThreadPoolExecutor(4) as ex:
            list(ex.map(one, range(train_events)))
        sample_request = requests(1, seed + 300)[0]
        sample = stub.Recommend(sample_request)
        exp = stub.GetExperiment(pb.GetExperimentRequest(experiment_id=EXPERIMENT))
    return {
        "seconds": time.perf_counter() - t0,
        "response_bytes": sample.SerializeToString(),
        "request_size": sample_request.ByteSize(),
        "model_version": exp.model_version,
        "rewards_applied": exp.counters.rewards_applied,
    }


def load(
    target: str,
    seconds: float,
    warmup: float,
    threads: int,
    seed: int = 0,
    pool: int = 512,
    batch: int = 1,
) -> dict[str, Any]:
    """``threads`` client threads, each with its own channel (a separate
    connection), call Recommend back to back (``batch`` > 1: RecommendBatch
    with that many requests a call); calls started inside the measured
    window count. Returns throughput and latency percentiles."""
    import grpc

    from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
    from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc

    reqs: list[Any] = list(requests(pool, seed))
    if batch > 1:
        reqs = [
            pb.RecommendBatchRequest(requests=[reqs[(i + b) % pool] for b in range(batch)])
            for i in range(pool)
        ]
    window: dict[str, float] = {}

    def set_window() -> None:
        now = time.perf_counter()
        window["start"] = now + warmup
        window["end"] = now + warmup + seconds

    barrier = threading.Barrier(threads, action=set_window)
    lats: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    error_msgs: list[str] = []

    def worker(j: int) -> None:
        opts = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(target, options=opts) as ch:
            stub = pb_grpc.BanditServiceStub(ch)
            call = stub.Recommend if batch == 1 else stub.RecommendBatch
            call(reqs[j % pool], timeout=30)
            barrier.wait()
            start, end = window["start"], window["end"]
            mine = lats[j]
            i = j
            perf = time.perf_counter
            while True:
                t0 = perf()
                if t0 >= end:
                    break
                try:
                    call(reqs[i % pool], timeout=30)
                except grpc.RpcError as exc:
                    errors[j] += 1
                    if len(error_msgs) < 3:
                        error_msgs.append(repr(exc))
                    if errors[j] > 100:
                        break
                    continue
                t1 = perf()
                if t0 >= start:
                    mine.append(t1 - t0)
                i += threads

    cpu0 = time.process_time()
    ts = [threading.Thread(target=worker, args=(j,), daemon=True) for j in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    cpu = time.process_time() - cpu0
    all_lat = sorted(v for lst in lats for v in lst)
    n = len(all_lat)
    return {
        "calls": n,
        "qps": n / seconds,
        "decisions_per_s": n * batch / seconds,
        "p50_ms": percentile(all_lat, 50) * 1e3,
        "p90_ms": percentile(all_lat, 90) * 1e3,
        "p99_ms": percentile(all_lat, 99) * 1e3,
        "errors": sum(errors),
        "error_samples": error_msgs,
        "client_cpu_s": cpu,
        "client_cpu_util": cpu / (seconds + warmup),
    }
