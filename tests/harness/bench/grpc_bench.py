"""Recommend through the real gRPC server against a bare echo server.

Process layout (the machine may have only 2 cores; nothing shares a GIL):

- each server (the real one, the sync echo, the aio echo) runs in its own
  process (``harness.bench.servers``) and stays up, idle, while the others
  are measured;
- one client process (``harness.bench.load``) generates load: the same
  client code for every server, in alternating rounds;
- this process only orchestrates and reads each process's CPU time from
  /proc, so each figure comes with the server's CPU cost per request and the
  client's CPU use (a client near 100% of a core means the figure is a lower
  bound set by the client).

The Kafka-mode server, the pinned rounds and the SO_REUSEPORT rounds are in
``harness.bench.grpc_modes``; the figures are derived in
``harness.bench.grpc_figures``.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from harness.bench._util import machine_busy_seconds, progress
from harness.bench.grpc_figures import pinned_figures, throughput_figures
from harness.bench.load import client_proc
from harness.bench.servers import Proc, start_server
from harness.bench.workload import N_ARMS, K

__all__ = ["GrpcBench", "GrpcSettings"]


def _default_workers() -> int:
    from bandit_engine.server import ServerSettings

    return int(ServerSettings(state_dir=None).workers)


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
    #: also the real server with ``max_concurrent_rpcs`` this high (above the
    #: client's threads: nothing is shed), the A/B of admission control; 0: off
    capped: int = 64
    reuseport_procs: int = 2
    #: the real server's RPC threads: the shipped default (``ServerSettings``,
    #: embedded mode)
    max_workers: int = field(default_factory=_default_workers)
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


class GrpcBench:
    """One run of the gRPC section: ``run()`` returns (figures, info)."""

    def __init__(self, settings: GrpcSettings) -> None:
        self.s = settings
        self.ctx = mp.get_context("spawn")
        self.info: dict[str, Any] = {}

    # ------------------------------------------------------------ processes
    def client(self) -> Proc:
        """A new load-client process."""
        return Proc(self.ctx, client_proc, (), "bench-client")

    def server(self, kind: str, kw: dict[str, Any], name: str) -> tuple[Proc, dict[str, Any]]:
        """A new server process of ``kind`` (``harness.bench.servers``), ready."""
        return start_server(self.ctx, kind, kw, name)

    def cmd(self, client: Proc, op: str, timeout: float = 300.0, **kw: Any) -> dict[str, Any]:
        """Run one command in the client process and return its answer."""
        client.conn.send((op, kw))
        return client.recv(timeout=timeout)

    def setup(self, client: Proc, port: int, seed: int = 0) -> dict[str, Any]:
        """Create and train the experiment on the server at ``port``."""
        return self.cmd(
            client,
            "setup",
            target=f"127.0.0.1:{port}",
            train_events=self.s.train_events,
            seed=seed,
        )

    # -------------------------------------------------------------- windows
    def window(
        self,
        client: Proc,
        server: list[Proc],
        others: list[Proc],
        port: int,
        threads: int,
        seconds: float,
        seed: int,
        batch: int = 1,
    ) -> dict[str, Any]:
        """One measured load window (``batch``: requests per RecommendBatch
        call, 1 for Recommend); server CPU read from /proc around it."""
        s_cpu0 = sum(p.cpu() for p in server)
        o_cpu0 = sum(p.cpu() for p in others)
        c_cpu0 = client.cpu()
        m_cpu0 = machine_busy_seconds()
        t0 = time.perf_counter()
        r = self.cmd(
            client,
            "load",
            target=f"127.0.0.1:{port}",
            seconds=seconds,
            warmup=self.s.warmup,
            threads=threads,
            seed=seed,
            batch=batch,
        )
        wall = time.perf_counter() - t0
        s_cpu = sum(p.cpu() for p in server) - s_cpu0
        o_cpu = sum(p.cpu() for p in others) - o_cpu0
        c_cpu = client.cpu() - c_cpu0
        r["server_cpu_util"] = s_cpu / wall  # share of one core, warmup included
        r["others_cpu_s"] = o_cpu
        # CPU used on the machine by anything but the benchmark's processes (noise)
        r["foreign_cpu_util"] = max(
            0.0, (machine_busy_seconds() - m_cpu0 - s_cpu - o_cpu - c_cpu) / wall
        )
        total_calls = r["qps"] * (seconds + self.s.warmup)  # approx, warmup included
        r["server_cpu_us_per_call"] = s_cpu / max(total_calls, 1.0) * 1e6
        if r["errors"]:
            progress(f"  {r['errors']} errors, e.g. {r['error_samples'][:1]}")
        return r

    def rounds(
        self,
        client: Proc,
        procs: dict[str, Proc],
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
                    self.window(
                        client, [procs[t]], others, ports[t], s.threads, s.seconds, seed + rnd
                    )
                )
        return out

    # ------------------------------------------------------------- the run
    def _start_real(
        self, client: Proc, procs: dict[str, Proc], ports: dict[str, int], info: dict[str, Any]
    ) -> bytes | None:
        """The real server (and, if asked, the aio one), set up and trained;
        returns a real answer's bytes, or None (with the reason in ``info``)."""
        s = self.s
        try:
            progress("grpc: starting the real server (create_server)")
            procs["real"], real_info = self.server(
                "real", {"max_workers": s.max_workers}, "bench-real-server"
            )
            ports["real"] = real_info["port"]
            info["real_server_flavour"] = real_info["flavour"]
            progress(f"grpc: setup: experiment, {N_ARMS} arms, {s.train_events} Recommend+Feedback")
            setup = self.setup(client, ports["real"])
            canned: bytes = setup.pop("response_bytes")
            info["setup"] = setup
            info["real_response_bytes"] = len(canned)
            if s.capped:
                progress(f"grpc: starting the real server with max_concurrent_rpcs={s.capped}")
                procs["real_capped"], rc_info = self.server(
                    "real",
                    {"max_workers": s.max_workers, "max_concurrent_rpcs": s.capped},
                    "bench-real-capped",
                )
                ports["real_capped"] = rc_info["port"]
                self.setup(client, ports["real_capped"])
            if s.real_aio:
                progress("grpc: starting the real servicer on a grpc.aio server, setup")
                procs["real_aio"], ra_info = self.server(
                    "real_aio", {"max_workers": s.max_workers}, "bench-real-aio"
                )
                ports["real_aio"] = ra_info["port"]
                self.setup(client, ports["real_aio"])
        except (ImportError, RuntimeError, TimeoutError) as exc:
            info["real_server_error"] = str(exc)[-2000:]
            progress(f"grpc: real server unavailable ({str(exc).splitlines()[-1]})")
            return None
        return canned

    def run(self) -> tuple[dict[str, float], dict[str, Any]]:
        from harness.bench import grpc_modes
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
        procs: dict[str, Proc] = {}
        ports: dict[str, int] = {}
        stack = contextlib.ExitStack()  # the Kafka-mode server's database and broker
        client = self.client()
        try:
            # the real server first: its answer sizes the echo's canned response
            real_answer = self._start_real(client, procs, ports, info)
            have_real = real_answer is not None
            canned = real_answer if real_answer is not None else canned_response(K)
            if have_real and s.kafka:
                grpc_modes.start_kafka_server(self, client, procs, ports, info, stack)
            info["echo_response_bytes"] = len(canned)
            echoes = [(f"echo_sync{w}", "echo_sync", w) for w in s.echo_workers]
            echoes.append(("echo_aio", "echo_aio", s.max_workers))
            for name, kind, workers in echoes:
                progress(f"grpc: starting {name} server")
                procs[name], e_info = self.server(
                    kind, {"canned": canned, "max_workers": workers}, f"bench-{name}"
                )
                ports[name] = e_info["port"]
            targets = [
                t
                for t in ("real", *(e[0] for e in echoes), "real_capped", "real_aio", "real_kafka")
                if t in ports
            ]

            # light load: one client, sequential
            lat: dict[str, dict[str, Any]] = {}
            for t in targets:
                progress(f"grpc: latency, 1 sequential client -> {t}")
                others = [procs[o] for o in targets if o != t]
                lat[t] = self.window(client, [procs[t]], others, ports[t], 1, s.latency_seconds, 11)
            # throughput: alternating rounds
            thr = self.rounds(
                client, procs, ports, targets, f"throughput, {s.threads} client threads", 100
            )
            info["windows"] = {"latency": lat, "throughput": thr}
            pinned = grpc_modes.pinned_rounds(self, client, procs, ports) if have_real else {}
            if pinned:
                info["windows"]["throughput_pinned"] = pinned
                figures.update(pinned_figures(pinned, info))
            figures["grpc_foreign_cpu_util"] = float(
                statistics.median(w["foreign_cpu_util"] for ws in thr.values() for w in ws)
            )
            figures.update(throughput_figures(thr, lat, s.echo_workers, info))
        finally:
            for p in procs.values():
                p.close()
            client.close()
            stack.close()

        if s.reuseport:
            figures.update(grpc_modes.reuseport_rounds(self, info, canned, have_real))
        self.info = info
        return figures, info
