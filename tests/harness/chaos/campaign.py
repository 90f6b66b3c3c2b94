"""One fault campaign, start to report: ``run`` and the command line ``main``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bandit_engine.store import MySQLStore, parse_dsn
from bandit_engine.stream import KafkaSettings, ensure_topics
from harness.chaos.checks import evaluate
from harness.chaos.cluster import Cluster
from harness.chaos.faults import DEFAULT_FAULTS, FAULTS, Faults
from harness.chaos.traffic import ARMS, EXPERIMENT, Ledger, drive, inject
from harness.local_broker import LocalBroker
from harness.services import admin_connection, scratch_database, scratch_topics

__all__ = ["main", "run"]


def run(
    seconds: float,
    seed: int,
    out: str | None,
    faults: tuple[str, ...] = DEFAULT_FAULTS,
    learners: int = 1,
) -> dict[str, Any]:
    """Run a campaign of ``seconds`` of faults against ``learners`` learner
    processes; the report (also written to ``out``)."""
    if learners < 1:
        raise ValueError(f"learners={learners!r}: at least one")
    base = os.environ.get("BANDIT_CHAOS_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")
    given = os.environ.get("BANDIT_CHAOS_KAFKA")
    if given and "broker" in faults:
        raise ValueError("the broker fault restarts a local broker; unset BANDIT_CHAOS_KAFKA")
    broker = None if given else LocalBroker(persistent="broker" in faults)
    with scratch_database(base, "bandit_chaos") as dsn:
        try:
            bootstrap = given if broker is None else broker.start()
            assert bootstrap is not None
            restartable = broker if broker is not None and broker.persistent else None
            report = _campaign(seconds, seed, dsn, bootstrap, restartable, faults, learners)
        finally:
            if broker is not None:
                broker.stop()
    if out:
        Path(out).write_text(json.dumps(report, indent=2, default=float))
    return report


def _fire_rounds(faults: Faults, kinds: list[str], seconds: float) -> list[dict[str, Any]]:
    """Fire faults 1 to 3 s apart for ``seconds``, in rounds of every kind in
    a random order; a round once begun is finished."""
    fired: list[dict[str, Any]] = []
    t_end = time.monotonic() + seconds
    schedule: list[str] = []
    while time.monotonic() < t_end or schedule:
        time.sleep(faults.rng.uniform(1.0, 3.0))  # the gap between faults
        if not schedule:
            schedule = faults.rng.sample(kinds, len(kinds))
        fired.append(faults.fire(schedule.pop()))
        f = fired[-1]
        state = "recovered in" if f["recovered"] else "NOT recovered after"
        print(f"[chaos] {f['fault']}: {state} {f['recovery_s']:.2f}s", file=sys.stderr, flush=True)
    return fired


def _row_locks(admin: Any) -> tuple[int, int]:
    """The MySQL server's cumulative InnoDB row-lock wait time (ms) and waits."""
    with admin.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Innodb_row_lock_%'")
        status = {str(k).lower(): v for k, v in cur.fetchall()}
    return int(status["innodb_row_lock_time"]), int(status["innodb_row_lock_waits"])


def _parts_allocated(admin: Any, database: str) -> int:
    """The next id of the database's ``snapshot_parts`` table: each part a
    learner inserts takes one, even if its transaction rolls back."""
    with admin.cursor() as cur:
        cur.execute(
            "SELECT AUTO_INCREMENT FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name = 'snapshot_parts'",
            (database,),
        )
        row = cur.fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 1


def _campaign(
    seconds: float,
    seed: int,
    dsn: str,
    bootstrap: str,
    broker: LocalBroker | None,
    faults_wanted: tuple[str, ...],
    learners: int,
) -> dict[str, Any]:
    # at least a partition per learner: a learner that holds none learns nothing
    settings: KafkaSettings = scratch_topics(bootstrap, "c", partitions=max(3, learners))
    asyncio.run(ensure_topics(settings))
    logs = Path(tempfile.mkdtemp(prefix="bandit-chaos-"))
    # Tansu over S3 answers fetches empty when a storage read outlasts the
    # fetch's wait (the learner's default is short, for latency)
    cluster = Cluster(
        dsn,
        settings,
        logs,
        fetch_max_wait_ms=500 if broker is not None else None,
        n_learners=learners,
    )
    report: dict[str, Any] = {
        "seconds": seconds,
        "seed": seed,
        "learners": learners,
        "partitions": settings.partitions,
        "logs": str(logs),
    }
    ledger = Ledger()
    store = MySQLStore(dsn)
    admin = admin_connection(dsn)
    database = parse_dsn(dsn)["database"]
    faults = Faults(cluster, store, admin, database, random.Random(seed), broker)
    sigkilled: list[str] = []  # processes that ignored a SIGTERM for 20 s
    try:
        cluster.start()
        cluster.create_experiment(EXPERIMENT, ARMS)
        locks0, parts0 = _row_locks(admin), _parts_allocated(admin, database)
        stop = threading.Event()
        driver = threading.Thread(target=drive, args=(cluster.servers, ledger, stop, seed))
        driver.start()
        injector = threading.Thread(
            target=lambda: asyncio.run(inject(settings, ledger, int(seconds * 4), seed + 1))
        )
        injector.start()
        kinds = [k for k in faults_wanted if k != "broker" or broker is not None]
        try:
            fired = _fire_rounds(faults, kinds, seconds)
        finally:
            stop.set()
            driver.join(120)
            injector.join(120)
        # on SIGTERM a server's producer delivers what it buffered
        sigkilled += [s.name for s in cluster.servers if not s.stop()]
        report.update(evaluate(store, settings, ledger))
        locks1, parts1 = _row_locks(admin), _parts_allocated(admin, database)
        # From the traffic's start until the learners have settled (the
        # checks wait for that). Server-wide InnoDB status: every session
        # that waited on a row lock counts (the learners', the servers', and
        # any other client of the same MySQL server meanwhile), not the
        # learners' waits alone.
        report["innodb_row_lock_ms"] = locks1[0] - locks0[0]
        report["innodb_row_lock_waits"] = locks1[1] - locks0[1]
        # part inserts, committed or rolled back (a killed connection's)
        report["snapshot_parts_written"] = parts1 - parts0
        report["faults"] = fired
        report["recovery_s_max"] = max((f["recovery_s"] for f in fired), default=0.0)
        report["checks"]["every fault recovered"] = all(f["recovered"] for f in fired)
    finally:
        t_stop = time.monotonic()
        report["sigkilled_at_stop"] = sigkilled + cluster.stop()
        report["stop_s"] = time.monotonic() - t_stop  # the learners' graceful stop
        store.close()
        admin.close()
    return report


def main(argv: list[str] | None = None) -> int:
    import harness.chaos

    ap = argparse.ArgumentParser(prog="python -m harness.chaos", description=harness.chaos.__doc__)
    ap.add_argument("--seconds", type=float, default=120.0, help="how long faults fire")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--faults",
        default=",".join(DEFAULT_FAULTS),
        help=f"comma-separated fault kinds, from {', '.join(FAULTS)} (default: "
        f"{','.join(DEFAULT_FAULTS)}; broker: see the description)",
    )
    ap.add_argument(
        "--learners",
        type=int,
        default=1,
        help="learner processes sharing the partitions (default 1); with more than one "
        "they store their evidence as snapshot parts",
    )
    ap.add_argument("--out", default="chaos-results.json")
    a = ap.parse_args(argv)
    kinds = tuple(k.strip() for k in a.faults.split(",") if k.strip())
    bad = [k for k in kinds if k not in FAULTS]
    if bad or not kinds:
        ap.error(f"--faults: unknown kind(s) {bad!r}; choose from {', '.join(FAULTS)}")
    if a.learners < 1:
        ap.error("--learners: at least 1")
    r = run(a.seconds, a.seed, a.out, kinds, a.learners)
    for f in r["faults"]:
        state = "" if f["recovered"] else "  NOT RECOVERED"
        print(f"{f['fault']:<28} recovery {f['recovery_s']:.2f} s{state}")
    print(
        f"{r['decisions']} decisions, {r['acknowledged_rewards']} rewards acknowledged "
        f"({r['valid_rewards']} with their decision in the log), injected {r['injected']}, "
        f"client retries {r['client_retries']}"
    )
    print(
        f"{r['learners']} learner(s) on {r['partitions']} partitions: "
        f"{r['snapshot_parts_written']} snapshot parts written; InnoDB row locks "
        f"(server-wide) {r['innodb_row_lock_waits']} waits, {r['innodb_row_lock_ms']} ms"
    )
    ok = True
    for name, passed in r["checks"].items():
        print(f"{'PASS' if passed else 'FAIL'}  {name}")
        ok = ok and passed
    for d in r.get("valid_rewards_dead_lettered", []):
        print(f"  dead-lettered though valid: {d}")
    if r["sigkilled_at_stop"]:
        print(f"SIGKILLed at the end (ignored SIGTERM for 20 s): {r['sigkilled_at_stop']}")
    print(f"wrote {a.out}")
    return 0 if ok else 1
