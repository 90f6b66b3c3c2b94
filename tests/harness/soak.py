"""Load and soak: Recommend + Feedback at a set rate against a real server.

``python -m harness.soak --minutes 30 --rate 500`` (``make soak``)
starts ``bandit-engine serve`` in a subprocess (embedded mode, a temporary
state dir), creates an experiment with 100 arms and drives it open loop from
this process: every request is sent at its scheduled time, so a slow server
shows up as latency, not as a lower rate. It reports:

- latency p50/p99/p99.9 and the error rate, per window and overall;
- the server's RSS, open file descriptors and threads over time, and the RSS
  growth per 10 minutes (least squares over the second half of the run, after
  warm-up);
- with ``--overload X``: a phase at X times the rate with
  ``--max-concurrent-rpcs`` set, where excess must be shed with
  RESOURCE_EXHAUSTED, then the recovery time: until a window's p99 is back
  within 1.5 times the baseline p99.

``--rate`` defaults to half of a short closed-loop maximum measured first.
The report adds the worst window's p99 and the garbage collector's pauses:
the server's during the load (from its /metrics) and the client's, whose
collector is off while the load runs (it shares the machine, and its pauses
would count as the server's latency).
Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc
from bandit_engine.server import GcPauses
from harness.local_broker import free_port

__all__ = ["main", "run"]


def _proc_stats(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mib": int(fields["VmRSS"].split()[0]) / 1024.0,
        "threads": float(fields["Threads"].strip()),
        "fds": float(len(os.listdir(f"/proc/{pid}/fd"))),
    }


def _cpu_seconds(server_pid: int) -> tuple[float, float]:
    """(CPU seconds of the whole machine, of the server and this client)."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    busy = sum(int(v) for v in fields) - int(fields[3]) - int(fields[4])  # less idle, iowait

    def proc(pid: int | str) -> int:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(stat[11]) + int(stat[12])  # utime + stime

    return busy / tick, (proc(server_pid) + proc("self")) / tick


class _Load:
    """Open-loop Recommend + Feedback from a thread pool over one channel."""

    def __init__(self, target: str, workers: int = 128) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = pb_grpc.BanditServiceStub(self.channel)
        self.pool = ThreadPoolExecutor(workers)
        self.rng = np.random.default_rng(0)
        self.lock = threading.Lock()
        # (scheduled t, latency s, status, s from the scheduled time to the send)
        self.samples: list[tuple[float, float, str, float]] = []

    def one(self, t_sched: float) -> None:
        dense = self.rng.normal(size=8).tolist()
        t0 = time.perf_counter()
        code = "OK"
        try:
            rec = self.stub.Recommend(
                pb.RecommendRequest(experiment_id="soak", context=pb.Features(dense=dense), k=5),
                timeout=5,
            )
            self.stub.Feedback(
                pb.FeedbackRequest(
                    event_id=rec.event_id,
                    arm_id=rec.arms[0].arm_id,
                    reward=float(self.rng.random() < 0.1),
                ),
                timeout=5,
            )
        except grpc.RpcError as exc:
            code = exc.code().name
        # latency from the scheduled start: queueing in the client counts too
        wait = max(0.0, t0 - t_sched)
        lat = time.perf_counter() - t0 + wait
        with self.lock:
            self.samples.append((t_sched, lat, code, wait))

    def run(self, rate: float, seconds: float) -> None:
        start = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            t = start + i / rate
            delay = t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.pool.submit(self.one, t)

    def max_rate(self, seconds: float) -> float:
        done = 0
        end = time.perf_counter() + seconds

        def worker() -> None:
            nonlocal done
            while time.perf_counter() < end:
                self.one(time.perf_counter())
                with self.lock:
                    done += 1

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        with self.lock:
            self.samples.clear()
        return done / seconds

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.channel.close()


def _summary(samples: list[tuple[float, float, str, float]]) -> dict[str, Any]:
    if not samples:
        return {"requests": 0.0}
    lat = np.array([s[1] for s in samples if s[2] == "OK"]) * 1000.0
    errors = sum(1 for s in samples if s[2] != "OK")
    shed = sum(1 for s in samples if s[2] == "RESOURCE_EXHAUSTED")
    out = {
        "requests": float(len(samples)),
        "error_rate": errors / len(samples),
        "shed": float(shed),
    }
    if lat.size:
        out.update(
            {
                "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)),
                "p999_ms": float(np.percentile(lat, 99.9)),
                # time in the client before the send (its threads, its GIL)
                "client_wait_p99_ms": float(np.percentile([s[3] for s in samples], 99) * 1e3),
            }
        )
    return out


def _scrape(metrics_port: int) -> str:
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as r:
        return str(r.read().decode())


Buckets = dict[float, float]  # cumulative count per ``le`` bound (seconds)


def _histogram(
    text: str, name: str, keep: Callable[[dict[str, str]], bool]
) -> tuple[Buckets, float]:
    """Bucket counts and sum of histogram ``name`` in /metrics text, added
    over the series whose labels ``keep`` accepts."""
    buckets: Buckets = {}
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if not keep(sample.labels):
                continue
            if sample.name == name + "_bucket":
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
            elif sample.name == name + "_sum":
                total += sample.value
    return buckets, total


def _bound(before: Buckets, after: Buckets, share: float) -> float | None:
    """The smallest bucket bound (seconds) that holds ``share`` of what was
    observed between two scrapes; None if nothing was."""
    diff = {le: n - before.get(le, 0.0) for le, n in after.items()}
    observed = diff.get(math.inf, 0.0)
    if observed <= 0:
        return None
    return min(le for le, n in diff.items() if n >= share * observed)


def _rpc_latency(text: str) -> Buckets:
    """The server's own RPC latency histogram, Recommend and Feedback
    together (its handlers' time: queueing before the handler thread is not
    in it)."""
    keep = lambda labels: labels.get("method") in ("Recommend", "Feedback")  # noqa: E731
    return _histogram(text, "bandit_rpc_latency_seconds", keep)[0]


def _gc_during(before: str, after: str) -> dict[str, Any]:
    """Per generation, the server's collections between two /metrics texts:
    how many, their seconds, and the bucket bound the longest stayed within."""
    out: dict[str, Any] = {}
    for gen in ("0", "1", "2"):
        keep = lambda labels, gen=gen: labels.get("generation") == gen  # noqa: E731
        b, b_sum = _histogram(before, "bandit_gc_pause_seconds", keep)
        a, a_sum = _histogram(after, "bandit_gc_pause_seconds", keep)
        out[gen] = {"count": a.get(math.inf, 0.0) - b.get(math.inf, 0.0),
                    "seconds": a_sum - b_sum,
                    "longest_at_most_s": _bound(b, a, 1.0) or 0.0}  # fmt: skip
    for family in text_string_to_metric_families(after):
        if family.name == "bandit_gc_frozen_objects":
            out["frozen_objects"] = family.samples[0].value
    return out


def _client_gc(pauses: GcPauses) -> dict[str, dict[str, float]]:
    return {str(g): {"count": p.count, "seconds": p.seconds, "max_seconds": p.max_seconds}
            for g, p in enumerate(pauses.snapshot())}  # fmt: skip


def run(
    minutes: float,
    rate: float | None,
    overload: float | None,
    window_s: float,
    out: str | None,
    server_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One soak (module doc); ``server_args`` go to ``serve`` as they are."""
    port, metrics_port = free_port(), free_port()
    state = tempfile.mkdtemp(prefix="bandit-soak-")
    cmd = [
        sys.executable,
        "-m",
        "bandit_engine",
        "--log-level",
        "WARNING",
        "serve",
        "--port",
        str(port),
        "--state-dir",
        state,
        "--metrics-port",
        str(metrics_port),
        *server_args,
    ]
    if overload:
        cmd += ["--max-concurrent-rpcs", "64"]  # below the client's 128 workers
    server_log = open(Path(state) / "server.log", "wb")
    server = subprocess.Popen(cmd, stdout=server_log, stderr=subprocess.STDOUT)
    target = f"127.0.0.1:{port}"
    report: dict[str, Any] = {"minutes": minutes, "window_s": window_s,
                              "server_args": list(server_args)}  # fmt: skip
    load = _Load(target)
    client_gc = GcPauses()  # installed once the load starts
    try:
        grpc.channel_ready_future(load.channel).result(timeout=30)
        load.stub.CreateExperiment(
            pb.CreateExperimentRequest(
                spec=pb.ExperimentSpec(
                    experiment_id="soak",
                    policy=pb.LIN_TS_DISJOINT,
                    dim=9,
                    dense_dim=8,
                    reward_window_seconds=5,
                )
            )
        )
        load.stub.AddArms(
            pb.AddArmsRequest(
                experiment_id="soak", arms=[pb.ArmSpec(arm_id=f"a{i}") for i in range(100)]
            )
        )
        if rate is None:
            peak = load.max_rate(5.0)
            rate = max(1.0, peak / 2)
            report["max_rate_per_s"] = peak
        report["rate_per_s"] = rate
        # The load client shares the machine, and its latencies count from
        # each request's scheduled time: its own collections would show as
        # the server's latency. Its collector is off while the load runs.
        gc.collect()
        gc.disable()
        client_gc.install()  # times any collection that runs all the same
        metrics_before = _scrape(metrics_port)
        rpc_last = _rpc_latency(metrics_before)
        seconds = minutes * 60.0
        windows: list[dict[str, Any]] = []
        procs: list[dict[str, Any]] = []
        t_start = time.perf_counter()
        cpu_last = _cpu_seconds(server.pid)
        driver = threading.Thread(target=load.run, args=(rate, seconds))
        driver.start()
        while driver.is_alive():
            driver.join(window_s)
            t = time.perf_counter() - t_start
            with load.lock:
                recent = [s for s in load.samples if s[0] >= time.perf_counter() - window_s]
            cpu = _cpu_seconds(server.pid)
            # cores the machine's other processes used in the window: a
            # neighbour's burst shows here, not in the server's figures
            other = max(0.0, (cpu[0] - cpu_last[0]) - (cpu[1] - cpu_last[1])) / window_s
            cpu_last = cpu
            rpc = _rpc_latency(_scrape(metrics_port))
            server_p99 = _bound(rpc_last, rpc, 0.99)
            server_p99_ms = None if server_p99 is None else server_p99 * 1e3
            rpc_last = rpc
            w = {"t_s": t, **_summary(recent), **_proc_stats(server.pid), "other_cores": other,
                 "server_p99_at_most_ms": server_p99_ms}  # fmt: skip
            windows.append(w)
            procs.append(w)
            print(
                f"[soak {t:7.0f}s] p50 {w.get('p50_ms', 0):.2f} ms  p99 "
                f"{w.get('p99_ms', 0):.2f} ms  errors {w.get('error_rate', 0):.4f}  "
                f"RSS {w['rss_mib']:.1f} MiB  fds {w['fds']:.0f}  threads {w['threads']:.0f}  "
                f"other processes {w['other_cores']:.2f} cores  server-side p99 <= "
                f"{w['server_p99_at_most_ms']} ms  client wait p99 "
                f"{w.get('client_wait_p99_ms', 0):.2f} ms",
                file=sys.stderr,
                flush=True,
            )
        load.pool.shutdown(wait=True)
        load.pool = ThreadPoolExecutor(128)
        report["overall"] = _summary(load.samples)
        report["windows"] = windows
        report["worst_window_p99_ms"] = max((w.get("p99_ms", 0.0) for w in windows), default=0.0)
        report["server_gc"] = _gc_during(metrics_before, _scrape(metrics_port))
        report["client_gc"] = _client_gc(client_gc)
        half = [p for p in procs if p["t_s"] >= seconds / 2] or procs
        if len(half) >= 2:
            slope = np.polyfit([p["t_s"] for p in half], [p["rss_mib"] for p in half], 1)[0]
            report["rss_growth_mib_per_10min"] = float(slope * 600)
        report["fds_min_max"] = [min(p["fds"] for p in procs), max(p["fds"] for p in procs)]
        report["threads_min_max"] = [
            min(p["threads"] for p in procs),
            max(p["threads"] for p in procs),
        ]
        if overload:
            base_p99 = report["overall"].get("p99_ms", 0.0)
            load.samples.clear()
            load.run(rate * overload, 10.0)
            load.pool.shutdown(wait=True)
            load.pool = ThreadPoolExecutor(128)
            report["overload"] = {"factor": overload, **_summary(load.samples)}
            load.samples.clear()
            t0 = time.perf_counter()
            recovered = None
            while time.perf_counter() - t0 < 30:
                load.run(rate, 1.0)
                load.pool.shutdown(wait=True)
                load.pool = ThreadPoolExecutor(128)
                s = _summary(load.samples)
                load.samples.clear()
                if s.get("error_rate", 1) == 0 and s.get("p99_ms", 1e9) <= 1.5 * base_p99 + 1:
                    recovered = time.perf_counter() - t0
                    break
            report["recovery_s"] = recovered
    finally:
        gc.enable()
        client_gc.uninstall()
        load.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        report["server_exit_code"] = server.returncode
        report["server_log"] = server_log.name
        server_log.close()
    text = json.dumps(report, indent=2)
    if out:
        Path(out).write_text(text)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.soak", description=__doc__)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, help="requests/s (default: half the measured max)")
    ap.add_argument("--overload", type=float, help="then run at this multiple of the rate")
    ap.add_argument("--window", type=float, default=10.0, help="seconds per report window")
    ap.add_argument("--out", default="soak-results.json")
    ap.add_argument(
        "--server-arg", action="append", default=[], metavar="ARG",
        help="an argument for serve (repeat), e.g. --server-arg=--no-gc-freeze",
    )  # fmt: skip
    a = ap.parse_args(argv)
    r = run(a.minutes, a.rate, a.overload, a.window, a.out, tuple(a.server_arg))
    o = r["overall"]
    print(
        f"rate {r['rate_per_s']:.0f}/s for {a.minutes:g} min: p50 {o.get('p50_ms', 0):.2f} ms, "
        f"p99 {o.get('p99_ms', 0):.2f} ms, p99.9 {o.get('p999_ms', 0):.2f} ms, errors "
        f"{o.get('error_rate', 0):.4%}; RSS growth {r.get('rss_growth_mib_per_10min', 0):.2f} "
        f"MiB/10 min; fds {r['fds_min_max']}; threads {r['threads_min_max']}"
    )
    gen2 = r["server_gc"]["2"]
    print(
        f"worst {a.window:g} s window p99 {r['worst_window_p99_ms']:.2f} ms; server full "
        f"collections during the load {gen2['count']:.0f}, longest <= "
        f"{(gen2['longest_at_most_s'] or 0) * 1e3:g} ms; client's longest "
        f"{r['client_gc']['2']['max_seconds'] * 1e3:.1f} ms"
    )
    if "overload" in r:
        ov = r["overload"]
        print(
            f"overload x{ov['factor']:g}: shed {ov.get('shed', 0):.0f} of "
            f"{ov['requests']:.0f}; recovery {r['recovery_s']} s"
        )
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
