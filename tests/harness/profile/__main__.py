"""Profile a real server under the bench's Recommend load with py-spy.

    PYTHONPATH=tests python -m harness.profile kafka [--workers N] [--seconds S]

Starts the server as the ``grpc`` bench section does (embedded, or Kafka
mode over a scratch MySQL database and a local broker, its learner in the
process), trains it, drives it with 8 client threads from another process,
records it with ``py-spy record --threads`` (``pip install py-spy``) and
prints the server's CPU per call and the share of samples by thread and by
function (inclusive).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import multiprocessing as mp
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.bench.load import client_proc
from harness.bench.servers import Proc, start_server


def _server_kw(mode: str, workers: int | None, stack: contextlib.ExitStack) -> dict[str, Any]:
    kw: dict[str, Any] = {} if workers is None else {"max_workers": workers}
    if mode == "kafka":
        from bandit_engine.stream import ensure_topics
        from harness.services import kafka_bootstrap, scratch_database, scratch_topics

        dsn = stack.enter_context(
            scratch_database("mysql://root@127.0.0.1:3306/test", "bandit_profile")
        )
        settings = scratch_topics(stack.enter_context(kafka_bootstrap("BANDIT_BENCH_KAFKA")), "pf")
        asyncio.run(ensure_topics(settings))
        kw.update(kafka=settings, mysql_dsn=dsn)
    return kw


def summarise(raw: Path, top: int) -> None:
    """Sample shares by thread and by function (inclusive) of py-spy's raw output."""
    threads: collections.Counter[str] = collections.Counter()
    funcs: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        count = int(n)
        total += count
        threads[re.sub(r"\s*\(\d+\)", "", frames[0])] += count
        for f in dict.fromkeys(re.sub(r":\d+\)", ")", f) for f in frames[1:]):
            funcs[f] += count
    print(f"{total} samples; by thread:")
    for name, c in threads.most_common(12):
        print(f"  {c / total:6.1%}  {name}")
    print("by function, inclusive:")
    for name, c in funcs.most_common(top):
        print(f"  {c / total:6.1%}  {name[:140]}")


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.profile")
    ap.add_argument("mode", choices=("embedded", "kafka"))
    ap.add_argument("--workers", type=int, help="RPC threads (default: the mode's)")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    ctx = mp.get_context("spawn")
    with contextlib.ExitStack() as stack:
        server, info = start_server(
            ctx, "real", _server_kw(args.mode, args.workers, stack), "profile-server"
        )
        client = Proc(ctx, client_proc, (), "profile-client")
        try:
            target = f"127.0.0.1:{info['port']}"
            client.conn.send(("setup", {"target": target, "train_events": 2000}))
            client.recv(timeout=300)
            raw = Path(tempfile.mkdtemp()) / "profile.txt"
            cpu0 = server.cpu()
            rec = subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(server.pid),
                    "-r",
                    "250",
                    "-d",
                    str(int(args.seconds)),
                    "-f",
                    "raw",
                    "-o",
                    str(raw),
                    "--threads",
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            t0 = time.perf_counter()
            load = {"target": target, "seconds": args.seconds, "warmup": 1.0, "threads": 8}
            client.conn.send(("load", load))
            r = client.recv(timeout=300)
            wall = time.perf_counter() - t0
            cpu = server.cpu() - cpu0
            rec.wait()
            calls = r["qps"] * (args.seconds + 1.0)
            print(
                f"{args.mode}: {r['qps']:.0f} Recommend/s, server CPU {cpu / calls * 1e6:.0f} us a "
                f"call, {cpu / wall:.2f} cores"
            )
            if raw.exists():
                summarise(raw, args.top)
        finally:
            server.close()
            client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
