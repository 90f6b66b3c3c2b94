"""The gRPC section's other server layouts.

- ``start_kafka_server``: the real server as deployed for production
  (Kafka + MySQL), measured in the same rounds as the embedded one;
- ``pinned_rounds``: the real server and the sync echoes again, each pinned
  to one CPU and the client to another;
- ``reuseport_rounds``: several server processes sharing one port
  (SO_REUSEPORT), echo and real.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
from typing import TYPE_CHECKING, Any

from bandit_engine.server import pin
from harness.bench._util import progress
from harness.bench.servers import Proc

if TYPE_CHECKING:
    from harness.bench.grpc_bench import GrpcBench

__all__ = ["BATCH", "pinned_rounds", "reuseport_rounds", "start_kafka_server"]

#: Requests per RecommendBatch call in the pinned batch rounds.
BATCH = 32


def start_kafka_server(
    bench: GrpcBench,
    client: Proc,
    procs: dict[str, Proc],
    ports: dict[str, int],
    info: dict[str, Any],
    stack: contextlib.ExitStack,
) -> None:
    """Add ``real_kafka`` to ``procs``: ``serve --kafka-bootstrap --mysql-dsn``
    (its learner in the process, the mode's RPC threads) over a scratch MySQL
    database (on ``BANDIT_BENCH_MYSQL_DSN``'s server) and a broker
    (``BANDIT_BENCH_KAFKA``, else a local one), set up and trained. Skipped,
    with the reason in ``info["real_kafka_error"]``, when either is missing."""
    from bandit_engine.stream import ensure_topics
    from harness.services import kafka_bootstrap, scratch_database, scratch_topics

    base = os.environ.get("BANDIT_BENCH_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")
    try:
        progress("grpc: starting the real server in Kafka mode (MySQL + broker), setup")
        dsn = stack.enter_context(scratch_database(base, "bandit_bench_rk"))
        bootstrap = stack.enter_context(kafka_bootstrap("BANDIT_BENCH_KAFKA"))
        settings = scratch_topics(bootstrap, "rk")
        asyncio.run(ensure_topics(settings))
        procs["real_kafka"], k_info = bench.server(
            "real", {"kafka": settings, "mysql_dsn": dsn}, "bench-real-kafka"
        )
        ports["real_kafka"] = k_info["port"]
        bench.setup(client, ports["real_kafka"])
    except Exception as exc:  # no MySQL or no broker: the other figures stand
        info["real_kafka_error"] = str(exc)[-2000:]
        progress(f"grpc: Kafka-mode server skipped: {str(exc).splitlines()[-1][:200]}")
        p = procs.pop("real_kafka", None)
        ports.pop("real_kafka", None)
        if p is not None:
            p.close()


def pinned_rounds(
    bench: GrpcBench, client: Proc, procs: dict[str, Proc], ports: dict[str, int]
) -> dict[str, list[dict[str, Any]]]:
    """The real server and the sync echoes, each server pinned to one CPU and
    the client to another, in alternating rounds; afterwards every process
    may use every CPU again. Empty with fewer than 2 usable CPUs."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(allowed) < 2:
        progress("grpc: fewer than 2 CPUs: no pinned rounds")
        return {}
    targets = [t for t in ("real", *(f"echo_sync{w}" for w in bench.s.echo_workers)) if t in ports]
    everyone = [client, *procs.values()]
    try:
        for t in targets:
            pin([allowed[0]], procs[t].pid)
        pin([allowed[1]], client.pid)
        label = f"pinned ({allowed[0]}: server, {allowed[1]}: client)"
        out = bench.rounds(client, procs, ports, targets, label, 200)
        if "real" in ports:
            # RecommendBatch: BATCH requests a call, same server, same pinning
            out["real_batch"] = []
            for rnd in range(bench.s.rounds):
                progress(f"grpc: {label} round {rnd + 1}/{bench.s.rounds} -> real, batch {BATCH}")
                others = [procs[o] for o in procs if o != "real"]
                w = bench.window(
                    client,
                    [procs["real"]],
                    others,
                    ports["real"],
                    bench.s.threads,
                    bench.s.seconds,
                    300 + rnd,
                    batch=BATCH,
                )
                out["real_batch"].append(w)
        return out
    finally:
        for p in everyone:
            with contextlib.suppress(OSError):
                pin(allowed, p.pid)


def _reuseport_kind(
    bench: GrpcBench, kind: str, canned: bytes, rinfo: dict[str, Any]
) -> list[dict[str, Any]]:
    """Rounds against ``reuseport_procs`` processes of ``kind`` on one port."""
    s = bench.s
    client = bench.client()
    procs: list[Proc] = []
    try:
        shared = 0
        for j in range(s.reuseport_procs):
            kw: dict[str, Any]
            if kind == "real":
                kw = {"shared_port": shared, "seed": j, "max_workers": s.max_workers}
            else:
                kw = {
                    "canned": canned,
                    "port": shared,
                    "reuseport": True,
                    "max_workers": s.max_workers,
                }
            p, pinfo = bench.server(kind, kw, f"bench-{kind}-rp{j}")
            procs.append(p)
            if kind == "real":
                if not pinfo.get("shared_port"):
                    raise RuntimeError(f"could not bind shared port {shared}")
                shared = pinfo["shared_port"]
                bench.setup(client, pinfo["port"])
            else:
                shared = pinfo["port"]
        rounds = []
        for rnd in range(max(1, s.rounds - 1)):
            cpu0 = [p.cpu() for p in procs]
            w = bench.window(client, procs, [], shared, s.threads, s.seconds, 100 + rnd)
            w["per_process_cpu_s"] = [p.cpu() - c for p, c in zip(procs, cpu0, strict=True)]
            rounds.append(w)
        rinfo[kind] = rounds
        return rounds
    finally:
        for p in procs:
            p.close()
        client.close()


def reuseport_rounds(
    bench: GrpcBench, info: dict[str, Any], canned: bytes, have_real: bool
) -> dict[str, float]:
    """N server processes sharing one port (SO_REUSEPORT), echo and real.

    The kernel spreads connections (not calls) over the processes, so the
    client opens one channel per thread. Each real-server process has its
    own engine: each is set up through its own private port first.
    """
    n = bench.s.reuseport_procs
    out: dict[str, float] = {}
    rinfo: dict[str, Any] = {"procs": n}
    for kind in ["echo_sync"] + (["real"] if have_real else []):
        progress(f"grpc: SO_REUSEPORT, {n} x {kind} processes")
        try:
            rounds = _reuseport_kind(bench, kind, canned, rinfo)
        except (RuntimeError, TimeoutError, OSError) as exc:
            rinfo[f"{kind}_error"] = str(exc)[-2000:]
            progress(f"grpc: SO_REUSEPORT {kind} failed: {str(exc).splitlines()[-1]}")
            continue
        key = "recommend" if kind == "real" else "echo"
        out[f"{key}_qps_reuseport{n}"] = float(statistics.median(w["qps"] for w in rounds))
    info["reuseport"] = rinfo
    return out
