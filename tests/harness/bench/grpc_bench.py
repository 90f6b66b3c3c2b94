"""Recommend through the real gRPC server against a bare echo server.

Process layout (the machine may have only 2 cores; nothing shares a GIL):

- each server (the real one, the sync echo, the aio echo) runs in its own
  process and stays up, idle, while the others are measured;
- one client process generates load: the same client code (generated stub,
  one channel per client thread, requests prebuilt from a pool of contexts)
  for every server, in alternating rounds;
- this process only orchestrates and reads each process's CPU time from
  /proc, so each figure comes with the server's CPU cost per request and the
  client's CPU use (a client near 100% of a core means the figure is a lower
  bound set by the client).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import statistics
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.bench._util import machine_busy_seconds, percentile, proc_cpu_seconds, progress

__all__ = ["GrpcBench", "GrpcSettings"]

EXPERIMENT = "bench"
N_ARMS = 100
DENSE = 32
K = 10


@dataclass
class GrpcSettings:
    quick: bool = False
    rounds: int = 5
    seconds: float = 3.0
    warmup: float = 1.0
    threads: int = 8  # concurrent client calls for throughput
    latency_seconds: float = 3.0  # light load: 1 client, sequential
    train_events: int = 2000  # Recommend + Feedback pairs before measuring
    reuseport: bool = True
    real_aio: bool = True  # also the real servicer on a grpc.aio server
    reuseport_procs: int = 2
    #: the real server's RPC threads: the shipped default (``ServerSettings``,
    #: embedded mode)
    max_workers: int = field(default_factory=lambda: _default_workers())
    #: the sync echo runs with each of these; the faster is the peer
    echo_workers: tuple[int, ...] = (2, 16)
    #: also the real server in Kafka mode (MySQL + a broker; skipped, with
    #: the reason, when either is missing)
    kafka: bool = True
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_mode(cls, quick: bool, reuseport: bool = True) -> GrpcSettings:
        if quick:
            return cls(
                quick=True,
                rounds=1,
                seconds=0.5,
                warmup=0.15,
                latency_seconds=0.3,
                train_events=100,
                reuseport=reuseport,
                real_aio=False,
                kafka=False,
            )
        return cls(reuseport=reuseport)


def _default_workers() -> int:
    from bandit_engine.server import ServerSettings

    return ServerSettings(state_dir=None).workers


# ===================================================================== servers
def _server_proc(kind: str, conn: Any, kw: dict[str, Any]) -> None:
    """Child process: run one server until told to stop (anything on ``conn``)."""
    try:
        if kind == "echo_aio":
            asyncio.run(_echo_aio_main(conn, kw))
            return
        if kind == "echo_sync":
            from harness.bench.echo import start_echo_sync

            server, port = start_echo_sync(
                kw["canned"],
                port=kw.get("port", 0),
                reuseport=kw.get("reuseport", False),
                max_workers=kw.get("max_workers", 16),
            )
            conn.send(("ready", {"port": port, "flavour": "sync"}))
            conn.recv()
            server.stop(1.0).wait()
            conn.send(("stopped", {}))
            return
        if kind == "real":
            _real_main(conn, kw)
            return
        if kind == "real_aio":
            asyncio.run(_real_aio_main(conn, kw))
            return
        raise ValueError(f"unknown server kind {kind!r}")
    except BaseException:
        conn.send(("error", {"traceback": traceback.format_exc()}))


async def _echo_aio_main(conn: Any, kw: dict[str, Any]) -> None:
    from harness.bench.echo import serve_echo_aio

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    waiter = loop.run_in_executor(None, conn.recv)
    waiter.add_done_callback(lambda _f: stop.set())
    await serve_echo_aio(
        kw["canned"],
        lambda p: conn.send(("ready", {"port": p, "flavour": "aio"})),
        stop,
        port=kw.get("port", 0),
        reuseport=kw.get("reuseport", False),
    )
    conn.send(("stopped", {}))


def _real_main(conn: Any, kw: dict[str, Any]) -> None:
    """The real server: ``create_server`` as shipped, or (reuseport) the same
    servicer on a server built with ``grpc.so_reuseport=1`` (create_server pins 0)."""
    import grpc

    from bandit_engine import server as srv

    settings = srv.ServerSettings(
        host="127.0.0.1",
        port=0,
        state_dir=None,
        seed=kw.get("seed", 0),
        max_workers=kw.get("max_workers"),  # None: the shipped default of the mode
        kafka=kw.get("kafka"),
        mysql_dsn=kw.get("mysql_dsn"),
    )
    shared_port = kw.get("shared_port")
    extra: dict[str, Any] = {}
    if shared_port is None:
        server, port, engine = srv.create_server(settings)
    else:
        from concurrent import futures

        engine = srv.open_engine(settings)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.workers),
            options=[("grpc.so_reuseport", 1)],
        )
        srv.add_servicer(srv.BanditServicer(engine), server)
        port = server.add_insecure_port("127.0.0.1:0")  # private: for setup
        extra["shared_port"] = server.add_insecure_port(f"127.0.0.1:{shared_port}")
        engine.start()
    flavour = "aio" if isinstance(server, grpc.aio.Server) else "sync"
    server.start()
    conn.send(("ready", {"port": port, "flavour": flavour, **extra}))
    conn.recv()
    stop = getattr(srv, "stop_server", None)
    if stop is not None:
        stop(server, engine, 1.0)
    else:
        server.stop(1.0).wait()
        engine.close()
    conn.send(("stopped", {}))


async def _real_aio_main(conn: Any, kw: dict[str, Any]) -> None:
    """The real servicer (sync handlers) on a grpc.aio server, handlers run in a
    migration thread pool: what switching the shipped server to aio would give."""
    from concurrent import futures

    import grpc

    from bandit_engine import server as srv

    settings = srv.ServerSettings(host="127.0.0.1", port=0, state_dir=None, seed=kw.get("seed", 0))
    engine = srv.open_engine(settings)
    server = grpc.aio.server(
        migration_thread_pool=futures.ThreadPoolExecutor(kw.get("max_workers", 16)),
        options=[("grpc.so_reuseport", 0)],
    )
    srv.add_servicer(srv.BanditServicer(engine), server)
    port = server.add_insecure_port("127.0.0.1:0")
    engine.start()
    await server.start()
    loop = asyncio.get_running_loop()
    conn.send(("ready", {"port": port, "flavour": "aio"}))
    await loop.run_in_executor(None, conn.recv)
    await server.stop(1.0)
    engine.close()
    conn.send(("stopped", {}))


class _Proc:
    """A child process spoken to over a pipe."""

    def __init__(self, ctx: Any, target: Any, args: tuple[Any, ...], name: str) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=target, args=(*args[:1], child, *args[1:]), name=name, daemon=True
        )
        self.proc.start()
        self.name = name

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def recv(self, timeout: float = 120.0) -> dict[str, Any]:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"{self.name}: no answer in {timeout:.0f}s")
        tag, payload = self.conn.recv()
        if tag == "error":
            raise RuntimeError(f"{self.name} failed:\n{payload['traceback']}")
        return dict(payload)

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def close(self, timeout: float = 10.0) -> None:
        try:
            if self.proc.is_alive():
                self.conn.send(None)
                if self.conn.poll(timeout):
                    self.conn.recv()
        except (OSError, EOFError, BrokenPipeError):
            pass
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


def _start_server(
    ctx: Any, kind: str, kw: dict[str, Any], name: str
) -> tuple[_Proc, dict[str, Any]]:
    p = _Proc(ctx, _server_proc, (kind, kw), name)
    try:
        info = p.recv(timeout=120)
    except BaseException:
        p.close()
        raise
    return p, info


def _pinned_figures(
    pinned: dict[str, list[dict[str, Any]]], info: dict[str, Any]
) -> dict[str, float]:
    """Figures of the pinned rounds: the peer is the faster sync echo."""

    def med(t: str, key: str) -> float:
        return float(statistics.median(w[key] for w in pinned[t]))

    echoes = [t for t in pinned if t.startswith("echo_sync")]
    best = max(echoes, key=lambda e: med(e, "qps"))
    info["echo_peer_pinned"] = best
    out = {
        "echo_qps_pinned": med(best, "qps"),
        "echo_server_cpu_us_pinned": med(best, "server_cpu_us_per_call"),
        "recommend_qps_pinned": med("real", "qps"),
        "recommend_server_cpu_us_pinned": med("real", "server_cpu_us_per_call"),
    }
    out["recommend_vs_echo_pinned"] = out["recommend_qps_pinned"] / out["echo_qps_pinned"]
    info["recommend_vs_echo_pinned_rounds"] = [
        r["qps"] / e["qps"] for r, e in zip(pinned["real"], pinned[best], strict=True)
    ]
    return out


# ====================================================================== client
def _client_proc(conn: Any) -> None:
    """Child process: the load generator; serves commands until ``None``."""
    while True:
        cmd = conn.recv()
        if cmd is None:
            conn.send(("stopped", {}))
            return
        op, kw = cmd
        try:
            if op == "setup":
                conn.send(("ok", _setup(**kw)))
            elif op == "load":
                conn.send(("ok", _load(**kw)))
            else:
                raise ValueError(op)
        except BaseException:
            conn.send(("error", {"traceback": traceback.format_exc()}))


def _contexts(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, DENSE)) / np.sqrt(DENSE)


def _requests(n: int, seed: int) -> list[Any]:
    from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb

    xs = _contexts(n, seed)
    return [
        pb.RecommendRequest(experiment_id=EXPERIMENT, context=pb.Features(dense=x.tolist()), k=K)
        for x in xs
    ]


def _setup(target: str, train_events: int, seed: int = 0) -> dict[str, Any]:
    """Create the experiment (LinTS disjoint, dim 33 = intercept + 32 dense),
    add the arms and train it with Recommend + Feedback on synthetic rewards."""
    from concurrent import futures

    import grpc

    from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
    from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc

    t0 = time.perf_counter()
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
                experiment_id=EXPERIMENT,
                arms=[pb.ArmSpec(arm_id=f"arm-{i:03d}") for i in range(N_ARMS)],
            )
        )
        rng = np.random.default_rng(seed + 100)
        theta = rng.standard_normal((N_ARMS, DENSE))
        bias = rng.normal(-1.0, 0.5, N_ARMS)
        xs = _contexts(train_events, seed + 200)
        u = rng.random(train_events)

        def one(i: int) -> None:
            resp = stub.Recommend(
                pb.RecommendRequest(
                    experiment_id=EXPERIMENT, context=pb.Features(dense=xs[i].tolist()), k=K
                )
            )
            top = resp.arms[0].arm_id
            a = int(top.split("-")[1])
            p = 1.0 / (1.0 + np.exp(-(bias[a] + xs[i] @ theta[a])))
            stub.Feedback(
                pb.FeedbackRequest(event_id=resp.event_id, arm_id=top, reward=float(u[i] < p))
            )

        with futures.ThreadPoolExecutor(4) as ex:
            list(ex.map(one, range(train_events)))
        sample = stub.Recommend(_requests(1, seed + 300)[0])
        exp = stub.GetExperiment(pb.GetExperimentRequest(experiment_id=EXPERIMENT))
    return {
        "seconds": time.perf_counter() - t0,
        "response_bytes": sample.SerializeToString(),
        "request_size": _requests(1, seed + 300)[0].ByteSize(),
        "model_version": exp.model_version,
        "rewards_applied": exp.counters.rewards_applied,
    }


def _load(
    target: str,
    seconds: float,
    warmup: float,
    threads: int,
    seed: int = 0,
    pool: int = 512,
) -> dict[str, Any]:
    """``threads`` client threads, each with its own channel (a separate
    connection), call Recommend back to back; calls started inside the
    measured window count. Returns throughput and latency percentiles."""
    import grpc

    from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc

    reqs = _requests(pool, seed)
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
            stub.Recommend(reqs[j % pool], timeout=30)
            barrier.wait()
            start, end = window["start"], window["end"]
            mine = lats[j]
            i = j
            perf = time.perf_counter
            call = stub.Recommend
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
        "p50_ms": percentile(all_lat, 50) * 1e3,
        "p90_ms": percentile(all_lat, 90) * 1e3,
        "p99_ms": percentile(all_lat, 99) * 1e3,
        "errors": sum(errors),
        "error_samples": error_msgs,
        "client_cpu_s": cpu,
        "client_cpu_util": cpu / (seconds + warmup),
    }


# ================================================================ orchestrator
class GrpcBench:
    def __init__(self, settings: GrpcSettings) -> None:
        self.s = settings
        self.ctx = mp.get_context("spawn")
        self.info: dict[str, Any] = {}

    def _client(self) -> _Proc:
        c = _Proc(self.ctx, _client_proc, (), "bench-client")
        return c

    def _cmd(self, client: _Proc, op: str, timeout: float = 300.0, **kw: Any) -> dict[str, Any]:
        client.conn.send((op, kw))
        return client.recv(timeout=timeout)

    def _window(
        self,
        client: _Proc,
        server: list[_Proc],
        others: list[_Proc],
        port: int,
        threads: int,
        seconds: float,
        seed: int,
    ) -> dict[str, Any]:
        """One measured load window; server CPU read from /proc around it."""
        s_cpu0 = sum(p.cpu() for p in server)
        o_cpu0 = sum(p.cpu() for p in others)
        c_cpu0 = client.cpu()
        m_cpu0 = machine_busy_seconds()
        t0 = time.perf_counter()
        r = self._cmd(
            client,
            "load",
            target=f"127.0.0.1:{port}",
            seconds=seconds,
            warmup=self.s.warmup,
            threads=threads,
            seed=seed,
        )
        wall = time.perf_counter() - t0
        s_cpu = sum(p.cpu() for p in server) - s_cpu0
        o_cpu = sum(p.cpu() for p in others) - o_cpu0
        c_cpu = client.cpu() - c_cpu0
        r["server_cpu_util"] = s_cpu / wall  # share of one core, warmup included
        r["others_cpu_s"] = o_cpu
        # CPU used on the machine by anything but our processes (noise)
        r["foreign_cpu_util"] = max(
            0.0, (machine_busy_seconds() - m_cpu0 - s_cpu - o_cpu - c_cpu) / wall
        )
        total_calls = r["qps"] * (seconds + self.s.warmup)  # approx, warmup included
        r["server_cpu_us_per_call"] = s_cpu / max(total_calls, 1.0) * 1e6
        if r["errors"]:
            progress(f"  {r['errors']} errors, e.g. {r['error_samples'][:1]}")
        return r

    # ----------------------------------------------------------------- main run
    def run(self) -> tuple[dict[str, float], dict[str, Any]]:
        from harness.bench.echo import canned_response

        s = self.s
        figures: dict[str, float] = {}
        info: dict[str, Any] = {
            "settings": {
                "rounds": s.rounds,
                "seconds": s.seconds,
                "warmup": s.warmup,
                "client_threads": s.threads,
                "latency_seconds": s.latency_seconds,
                "train_events": s.train_events,
                "server_max_workers": s.max_workers,
            }
        }
        procs: dict[str, _Proc] = {}
        ports: dict[str, int] = {}
        stack = contextlib.ExitStack()  # the Kafka-mode server's database and broker
        client = self._client()
        try:
            # the real server first: its answer sizes the echo's canned response
            have_real = True
            try:
                progress("grpc: starting the real server (create_server)")
                procs["real"], real_info = _start_server(
                    self.ctx, "real", {"max_workers": s.max_workers}, "bench-real-server"
                )
                ports["real"] = real_info["port"]
                info["real_server_flavour"] = real_info["flavour"]
                progress(
                    f"grpc: setup: experiment, {N_ARMS} arms, {s.train_events} Recommend+Feedback"
                )
                setup = self._cmd(
                    client,
                    "setup",
                    target=f"127.0.0.1:{ports['real']}",
                    train_events=s.train_events,
                )
                canned = setup.pop("response_bytes")
                info["setup"] = setup
                info["real_response_bytes"] = len(canned)
                if s.real_aio:
                    progress("grpc: starting the real servicer on a grpc.aio server, setup")
                    procs["real_aio"], ra_info = _start_server(
                        self.ctx, "real_aio", {"max_workers": s.max_workers}, "bench-real-aio"
                    )
                    ports["real_aio"] = ra_info["port"]
                    self._cmd(
                        client,
                        "setup",
                        target=f"127.0.0.1:{ports['real_aio']}",
                        train_events=s.train_events,
                    )
            except (ImportError, RuntimeError, TimeoutError) as exc:
                have_real = False
                info["real_server_error"] = str(exc)[-2000:]
                progress(f"grpc: real server unavailable ({str(exc).splitlines()[-1]})")
                canned = canned_response(K)
            if have_real and s.kafka:
                self._start_kafka_server(client, procs, ports, info, stack)
            info["echo_response_bytes"] = len(canned)
            echoes = [(f"echo_sync{w}", "echo_sync", w) for w in s.echo_workers]
            echoes.append(("echo_aio", "echo_aio", s.max_workers))
            for name, kind, workers in echoes:
                progress(f"grpc: starting {name} server")
                procs[name], e_info = _start_server(
                    self.ctx,
                    kind,
                    {"canned": canned, "max_workers": workers},
                    f"bench-{name}",
                )
                ports[name] = e_info["port"]
            targets = [
                t for t in ("real", *(e[0] for e in echoes), "real_aio", "real_kafka") if t in ports
            ]

            # light load: one client, sequential
            lat: dict[str, dict[str, Any]] = {}
            for t in targets:
                progress(f"grpc: latency, 1 sequential client -> {t}")
                lat[t] = self._window(
                    client,
                    [procs[t]],
                    [procs[o] for o in targets if o != t],
                    ports[t],
                    1,
                    s.latency_seconds,
                    11,
                )
            # throughput: alternating rounds
            thr = self._rounds(
                client, procs, ports, targets, f"throughput, {s.threads} client threads", 100
            )
            info["windows"] = {"latency": lat, "throughput": thr}
            pinned = self._pinned(client, procs, ports, have_real)
            if pinned:
                info["windows"]["throughput_pinned"] = pinned
                figures.update(_pinned_figures(pinned, info))
            figures["grpc_foreign_cpu_util"] = float(
                statistics.median(w["foreign_cpu_util"] for ws in thr.values() for w in ws)
            )

            def med(t: str, key: str) -> float:
                return float(statistics.median(w[key] for w in thr[t]))

            syncs = [f"echo_sync{w}" for w in s.echo_workers]
            for e in syncs:
                figures[f"{e}_qps"] = med(e, "qps")
            # the sync echo's figures are those of its faster worker count
            best_sync = max(syncs, key=lambda e: med(e, "qps"))
            info["echo_sync_workers"] = int(best_sync.removeprefix("echo_sync"))
            for flav, e in (("sync", best_sync), ("aio", "echo_aio")):
                figures[f"echo_qps_{flav}"] = med(e, "qps")
                figures[f"echo_p50_ms_{flav}"] = lat[e]["p50_ms"]
                figures[f"echo_server_cpu_us_{flav}"] = med(e, "server_cpu_us_per_call")
            peer = best_sync if info.get("real_server_flavour", "sync") == "sync" else "echo_aio"
            info["echo_peer"] = peer
            figures["echo_qps"] = med(peer, "qps")
            figures["echo_p50_ms"] = lat[peer]["p50_ms"]
            figures["echo_p99_ms"] = lat[peer]["p99_ms"]
            figures["echo_server_cpu_us"] = med(peer, "server_cpu_us_per_call")
            figures["grpc_client_cpu_util_echo"] = med(peer, "client_cpu_util")
            if have_real:
                figures["recommend_qps"] = med("real", "qps")
                figures["recommend_vs_echo"] = figures["recommend_qps"] / figures["echo_qps"]
                # per-round ratios, to show the spread
                ratios = [r["qps"] / e["qps"] for r, e in zip(thr["real"], thr[peer], strict=True)]
                info["recommend_vs_echo_rounds"] = ratios
                figures["recommend_p50_ms"] = lat["real"]["p50_ms"]
                figures["recommend_p99_ms"] = lat["real"]["p99_ms"]
                figures["recommend_server_cpu_us"] = med("real", "server_cpu_us_per_call")
                figures["recommend_server_cpu_util"] = med("real", "server_cpu_util")
                figures["grpc_client_cpu_util_recommend"] = med("real", "client_cpu_util")
                figures["recommend_errors"] = float(sum(w["errors"] for w in thr["real"]))
            if "real_kafka" in thr:
                figures["recommend_qps_kafka"] = med("real_kafka", "qps")
                figures["recommend_vs_echo_kafka"] = figures["recommend_qps_kafka"] / med(
                    best_sync, "qps"
                )
                figures["recommend_server_cpu_us_kafka"] = med(
                    "real_kafka", "server_cpu_us_per_call"
                )
                figures["recommend_p50_ms_kafka"] = lat["real_kafka"]["p50_ms"]
            if "real_aio" in thr:
                figures["recommend_qps_aio"] = med("real_aio", "qps")
                figures["recommend_p50_ms_aio"] = lat["real_aio"]["p50_ms"]
                figures["recommend_server_cpu_us_aio"] = med("real_aio", "server_cpu_us_per_call")
        finally:
            for p in procs.values():
                p.close()
            client.close()
            stack.close()

        if s.reuseport:
            figures.update(self._reuseport(info, canned, have_real))
        self.info = info
        return figures, info

    def _rounds(
        self,
        client: _Proc,
        procs: dict[str, _Proc],
        ports: dict[str, int],
        targets: list[str],
        label: str,
        seed: int,
    ) -> dict[str, list[dict[str, Any]]]:
        """``rounds`` load windows per target, the targets alternating."""
        s = self.s
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
        for rnd in range(s.rounds):
            for t in targets:
                progress(f"grpc: {label} round {rnd + 1}/{s.rounds} -> {t}")
                others = [procs[o] for o in procs if o != t]
                out[t].append(
                    self._window(
                        client, [procs[t]], others, ports[t], s.threads, s.seconds, seed + rnd
                    )
                )
        return out

    # ----------------------------------------------------------------- Kafka
    def _start_kafka_server(
        self,
        client: _Proc,
        procs: dict[str, _Proc],
        ports: dict[str, int],
        info: dict[str, Any],
        stack: contextlib.ExitStack,
    ) -> None:
        """The real server as deployed for production (``serve --kafka-bootstrap
        --mysql-dsn``, its learner in the process, the mode's RPC threads):
        a scratch MySQL database (``BANDIT_BENCH_MYSQL_DSN``) and a broker
        (``BANDIT_BENCH_KAFKA``, else a local one). Skipped, with the reason,
        when either is missing."""
        from bandit_engine.stream import ensure_topics
        from harness.services import kafka_bootstrap, scratch_database, scratch_topics

        base = os.environ.get("BANDIT_BENCH_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")
        try:
            progress("grpc: starting the real server in Kafka mode (MySQL + broker), setup")
            dsn = stack.enter_context(scratch_database(base, "bandit_bench_rk"))
            bootstrap = stack.enter_context(kafka_bootstrap("BANDIT_BENCH_KAFKA"))
            settings = scratch_topics(bootstrap, "rk")
            asyncio.run(ensure_topics(settings))
            procs["real_kafka"], k_info = _start_server(
                self.ctx, "real", {"kafka": settings, "mysql_dsn": dsn}, "bench-real-kafka"
            )
            ports["real_kafka"] = k_info["port"]
            self._cmd(
                client,
                "setup",
                target=f"127.0.0.1:{ports['real_kafka']}",
                train_events=self.s.train_events,
            )
        except Exception as exc:  # no MySQL or no broker: the other figures stand
            info["real_kafka_error"] = str(exc)[-2000:]
            progress(f"grpc: Kafka-mode server skipped: {str(exc).splitlines()[-1][:200]}")
            p = procs.pop("real_kafka", None)
            ports.pop("real_kafka", None)
            if p is not None:
                p.close()

    # ---------------------------------------------------------------- pinned
    def _pinned(
        self, client: _Proc, procs: dict[str, _Proc], ports: dict[str, int], have_real: bool
    ) -> dict[str, list[dict[str, Any]]]:
        """The real server and the sync echoes again, each server pinned to
        one CPU and the client to another (``cpus.pin``), in alternating
        rounds; afterwards every process may use every CPU again."""
        from bandit_engine.server.cpus import pin

        if not have_real:
            return {}
        allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if len(allowed) < 2:
            progress("grpc: fewer than 2 CPUs: no pinned rounds")
            return {}
        targets = [
            t for t in ("real", *(f"echo_sync{w}" for w in self.s.echo_workers)) if t in ports
        ]
        everyone = [client, *procs.values()]
        try:
            for t in targets:
                pin([allowed[0]], procs[t].pid)
            pin([allowed[1]], client.pid)
            label = f"pinned ({allowed[0]}: server, {allowed[1]}: client)"
            out = self._rounds(client, procs, ports, targets, label, 200)
        finally:
            for p in everyone:
                try:
                    pin(allowed, p.pid)
                except (OSError, ValueError):
                    pass
        return out

    # ------------------------------------------------------------- reuseport
    def _reuseport(self, info: dict[str, Any], canned: bytes, have_real: bool) -> dict[str, float]:
        """N server processes sharing one port (SO_REUSEPORT), echo and real.

        The kernel spreads connections (not calls) over the processes, so the
        client opens one channel per thread. Each real-server process has its
        own engine: each is set up through its private port first.
        """
        s = self.s
        n = s.reuseport_procs
        out: dict[str, float] = {}
        rinfo: dict[str, Any] = {"procs": n}
        kinds = ["echo_sync"] + (["real"] if have_real else [])
        for kind in kinds:
            client = self._client()
            procs: list[_Proc] = []
            try:
                progress(f"grpc: SO_REUSEPORT, {n} x {kind} processes")
                shared = 0
                for j in range(n):
                    if kind == "real":
                        kw: dict[str, Any] = {
                            "shared_port": shared,
                            "seed": j,
                            "max_workers": s.max_workers,
                        }
                    else:
                        kw = {
                            "canned": canned,
                            "port": shared,
                            "reuseport": True,
                            "max_workers": s.max_workers,
                        }
                    p, pinfo = _start_server(self.ctx, kind, kw, f"bench-{kind}-rp{j}")
                    procs.append(p)
                    if kind == "real":
                        if not pinfo.get("shared_port"):
                            raise RuntimeError(f"could not bind shared port {shared}")
                        shared = pinfo["shared_port"]
                        self._cmd(
                            client,
                            "setup",
                            target=f"127.0.0.1:{pinfo['port']}",
                            train_events=s.train_events,
                            seed=0,
                        )
                    else:
                        shared = pinfo["port"]
                rounds = []
                for rnd in range(max(1, s.rounds - 1)):
                    cpu0 = [p.cpu() for p in procs]
                    w = self._window(client, procs, [], shared, s.threads, s.seconds, 100 + rnd)
                    w["per_process_cpu_s"] = [p.cpu() - c for p, c in zip(procs, cpu0, strict=True)]
                    rounds.append(w)
                rinfo[kind] = rounds
                key = "recommend" if kind == "real" else "echo"
                out[f"{key}_qps_reuseport{n}"] = float(statistics.median(w["qps"] for w in rounds))
            except (RuntimeError, TimeoutError, OSError) as exc:
                rinfo[f"{kind}_error"] = str(exc)[-2000:]
                progress(f"grpc: SO_REUSEPORT {kind} failed: {str(exc).splitlines()[-1]}")
            finally:
                for p in procs:
                    p.close()
                client.close()
        info["reuseport"] = rinfo
        return out


# ================================================================== in-process
def inproc_recommend(quick: bool, train_events: int = 2000) -> dict[str, float]:
    """What the server does for a Recommend, without gRPC: the engine of
    ``create_server``'s defaults (embedded mode, SQLite, its decision writer
    running), the same experiment, training and requests as the gRPC rounds,
    ``Engine.recommend_wire`` called back to back. CPU per call from
    ``time.process_time``, so the writer thread's storing of the decisions
    counts; median of repeats."""
    from bandit_engine import server as srv
    from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
    from bandit_engine.core.engine import Context

    engine = srv.open_engine(srv.ServerSettings(state_dir=None, seed=0))
    engine.start()
    try:
        from bandit_engine.core.config import ExperimentConfig

        engine.create_experiment(
            ExperimentConfig(EXPERIMENT, policy="lin_ts_disjoint", dim=DENSE + 1, dense_dim=DENSE)
        )
        engine.add_arms(EXPERIMENT, [(f"arm-{i:03d}", None) for i in range(N_ARMS)])
        rng = np.random.default_rng(100)
        theta = rng.standard_normal((N_ARMS, DENSE))
        bias = rng.normal(-1.0, 0.5, N_ARMS)
        xs = _contexts(100 if quick else train_events, 200)
        us: list[float] = np.asarray(rng.random(xs.shape[0])).tolist()
        for x, u in zip(xs, us, strict=True):
            d = engine.recommend(EXPERIMENT, Context(dense=x.tolist()), k=K)
            a = int(d.arm_ids[0].split("-")[1])
            p = 1.0 / (1.0 + np.exp(-(bias[a] + x @ theta[a])))
            engine.feedback(d.event_id, d.arm_ids[0], float(u < p))
        reqs = [r.SerializeToString() for r in _requests(512, 0)]
        assert engine.recommend_wire(reqs[0]) is not None
        n, repeats = (500, 3) if quick else (4000, 7)
        per_call = []
        f = engine.recommend_wire
        for _ in range(repeats):
            engine.decision_log.flush()
            c0 = time.process_time()
            for i in range(n):
                f(reqs[i % 512])
            engine.decision_log.flush()
            per_call.append((time.process_time() - c0) / n * 1e6)
        pb.RecommendResponse.FromString(f(reqs[1]) or b"")  # a well-formed answer
    finally:
        engine.close()
    return {"recommend_inproc_us": float(statistics.median(per_call))}
