"""Learners that share one hot experiment, on real services.

One experiment (disjoint linear TS, K=100 arms, d=33) receives every
decision and reward, waiting in topics of ``PARTITIONS`` partitions. Each
round builds 1 or 3 learner processes of a consumer group of its own (the
``Learner`` of ``bandit-engine learn``, its defaults), starts them
together, and runs until the group has committed every reward:

- rewards/s: committed rewards (in MySQL, ``learner_offsets.fb_next``
  summed over partitions) per second between the commits that passed 10%
  and 90% of them, the group at work; and overall, from the start to the
  commit of the last, the group's start included;
- commit time: the sum over learners of their ``learner_commit``
  transactions' durations;
- row-lock waits: MariaDB's ``Innodb_row_lock_time`` (ms waited for row
  locks, all sessions: the learners are the only ones here).

``learner_lock_wait_share`` = lock waits / commit time with 3 learners and
snapshot parts (the default), ``learner_lock_wait_share_turns`` the same
with ``snapshot_parts=False`` (every commit takes the snapshot's row);
``learners_3_vs_1`` = rewards/s of 3 learners over 1 learner's, both with
the defaults, same run. Rounds alternate, and each configuration runs
``REPEATS`` times: medians.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from bandit_engine import ExperimentConfig
from bandit_engine.core import DecisionRow, FeedbackEvent
from bandit_engine.policies import evidence_of
from bandit_engine.store import ArmRow, MySQLStore
from bandit_engine.stream import (
    KafkaSettings,
    Learner,
    encode_decision,
    encode_feedback,
    ensure_topics,
)
from harness.bench._util import progress
from harness.bench.feedback import D, K, _produce, _records
from harness.services import (
    admin_connection,
    kafka_bootstrap,
    scratch_database,
    scratch_topics,
)

PARTITIONS = 6
REPEATS = 2
COMMIT_EVENTS = 3_000  # a 0.1 s commit at 30,000 rewards/s

TARGETS: dict[str, tuple[str, float]] = {
    "learner_lock_wait_share": ("<=", 0.05),
    "learners_3_vs_1": (">=", 1.0),
}
_SETTING = f"one experiment, K={K} arms, d={D + 1}, {PARTITIONS} partitions, commit every 0.1 s"
DESCRIPTIONS: dict[str, str] = {
    "learner_part_ms": f"ms to learn one commit's {COMMIT_EVENTS} events apart, as a part "
    f"(policies.evidence_of: sums, no caches), K={K}, d={D + 1}; median, in process",
    "learner_update_ms": "ms to apply the same events to the posterior (update_batch), as a "
    "commit that takes the snapshot's row does; same loop, alternated",
    "learner_lock_wait_share": "3 learners on one hot experiment, defaults (snapshot parts): "
    "MariaDB's Innodb_row_lock_time over the sum of the learners' commit transactions' time, "
    f"while they work through waiting records ({_SETTING}); median of rounds",
    "learner_lock_wait_share_turns": "the same with snapshot_parts=False (every commit locks "
    "the snapshot's row), same run",
    "learners_1_rewards_per_s": "rewards committed per second by 1 learner (defaults), "
    "between the commits that passed 10% and 90% of the waiting rewards",
    "learners_3_rewards_per_s": "the same, 3 learner processes in one group",
    "learners_3_turns_rewards_per_s": "the same, 3 learners, snapshot_parts=False",
    "learners_3_vs_1": "learners_3_rewards_per_s / learners_1_rewards_per_s, same run",
    "learners_1_overall_rewards_per_s": "1 learner: all the rewards over the seconds from the "
    "start of the process's learner (built, not yet running) to the last commit",
    "learners_3_overall_rewards_per_s": "the same, 3 learners (their group's start included)",
    "learners_1_visible_p50_ms": "reward timestamp to its count in the experiment's "
    "rewards_applied, committed with the posterior (1 learner: at its commit), ~200 rewards/s, "
    "counts matched to rewards in the order sent; p50",
    "learners_1_visible_p99_ms": "the same, p99",
    "learners_3_visible_p50_ms": "the same with 3 learners sharing the partitions: the count "
    "(and the evidence) reach the snapshot when the learner of partition 0 absorbs the parts; "
    "p50",
    "learners_3_visible_p99_ms": "the same, p99",
    "learners_first_commit_s": "3 learners: seconds from their start to the group's first "
    "commit (joining the group, restoring, the first fetches)",
}


def _learner_main(
    dsn: str,
    settings: KafkaSettings,
    parts: bool,
    idx: int,
    ready: Any,
    commit_s: Any,
    go: Any,
    stop: Any,
) -> None:
    """One learner process: built, then run from ``go`` until ``stop``,
    publishing its commit seconds so far."""
    learner = Learner(MySQLStore(dsn), settings, snapshot_parts=parts)
    ready[idx] = 1
    go.wait()

    async def main() -> None:
        done = asyncio.Event()
        task = asyncio.create_task(learner.run(done))
        total = 0.0
        seen = 0
        while not stop.is_set():
            await asyncio.sleep(0.05)
            if task.done():
                task.result()
            new = learner.commits - seen  # the deque keeps the most recent ones
            if new > 0:
                total += sum(list(learner.commit_seconds)[-new:])
                seen = learner.commits
            commit_s[idx] = total
        done.set()
        await task

    asyncio.run(main())


def _steady_rate(samples: list[tuple[float, int]], total: int) -> float:
    """Rewards/s between the commits that passed 10% and 90% of ``total``:
    the group at work, without its start and its last partitions' tail
    (overall, if those commits are less than 0.5 s apart)."""
    t10 = next(t for t, c in samples if c >= 0.1 * total)
    t90 = next(t for t, c in samples if c >= 0.9 * total)
    if t90 - t10 < 0.5:  # a few commits (a --quick run): no steady part to time
        return total / (samples[-1][0] - samples[0][0])
    return 0.8 * total / (t90 - t10)


def _status(admin: Any) -> float:
    with admin.cursor() as c:
        c.execute("SHOW GLOBAL STATUS LIKE 'Innodb_row_lock_time'")
        return float(c.fetchone()[1])


def _committed(admin: Any, db: str, group: str) -> int:
    with admin.cursor() as c:
        c.execute(
            f"SELECT COALESCE(SUM(fb_next), 0) FROM `{db}`.learner_offsets WHERE group_id = %s",
            (group,),
        )
        return int(c.fetchone()[0])


@contextlib.contextmanager
def _group(
    dsn: str, settings: KafkaSettings, n: int, parts: bool, tag: str
) -> Iterator[tuple[list[Any], Any, KafkaSettings]]:
    """``n`` learner processes of a new group, built, then started together:
    (the processes, their commit seconds, the group's settings)."""
    group = dataclasses.replace(settings, group_id=f"{settings.group_id}-{tag}")
    ctx = mp.get_context("spawn")
    ready = ctx.Array("i", n)
    commit_s = ctx.Array("d", n)
    go, stop = ctx.Event(), ctx.Event()
    procs = [
        ctx.Process(
            target=_learner_main,
            args=(dsn, group, parts, i, ready, commit_s, go, stop),
            name=f"learner-{tag}-{i}",
        )
        for i in range(n)
    ]
    for p in procs:
        p.start()
    try:
        deadline = time.monotonic() + 120
        while sum(ready[:]) < n:
            if time.monotonic() > deadline or any(not p.is_alive() for p in procs):
                raise RuntimeError(f"learners not built: {ready[:]}, {[p.exitcode for p in procs]}")
            time.sleep(0.05)
        go.set()
        yield procs, commit_s, group
    finally:
        stop.set()
        go.set()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()


def _round(
    dsn: str, db: str, settings: KafkaSettings, n: int, parts: bool, tag: str, total: int
) -> dict[str, float]:
    """``n`` learners of a new group, from their start to the commit of the
    last of ``total`` rewards."""
    admin = admin_connection(dsn)
    try:
        locks0 = _status(admin)
        with _group(dsn, settings, n, parts, tag) as (procs, commit_s, group):
            t0 = time.monotonic()
            deadline = t0 + 600
            samples = [(t0, 0)]
            while samples[-1][1] < total:
                if time.monotonic() > deadline or any(not p.is_alive() for p in procs):
                    raise RuntimeError(f"{n} learners did not commit {total} rewards")
                time.sleep(0.02)
                samples.append((time.monotonic(), _committed(admin, db, group.group_id)))
            t1 = time.monotonic()
            locks1 = _status(admin)
            time.sleep(0.1)  # the last commit's seconds reach the shared array
            spent = float(sum(commit_s[:]))
        return {
            "rewards_per_s": total / (t1 - t0),
            "steady_rewards_per_s": _steady_rate(samples, total),
            "first_commit_s": next(t for t, c in samples if c > 0) - t0,
            "seconds": t1 - t0,
            "lock_wait_s": (locks1 - locks0) / 1000.0,
            "commit_s": spent,
        }
    finally:
        admin.close()


def _visibility(dsn: str, bootstrap: str, n: int, seconds: float) -> np.ndarray:
    """Seconds from each reward's timestamp to its count in the experiment's
    ``rewards_applied`` (added with the posterior: at the commit for a lone
    learner, at the absorb for learners that share the partitions), about
    200 decisions and rewards a second to ``n`` learners, after a 6 s
    warm-up. Rewards are matched to counts in the order they were sent."""
    settings = scratch_topics(bootstrap, f"v{n}", partitions=PARTITIONS)
    exp = f"visible{n}"
    store = MySQLStore(dsn)
    cfg = ExperimentConfig(exp, policy="lin_ts_disjoint", dim=D + 1, dense_dim=D)
    store.create_experiment(exp, cfg.to_dict(), time.time())
    store.upsert_arms([ArmRow(exp, f"a{i}", i, {}, True) for i in range(K)])
    store.close()
    asyncio.run(ensure_topics(settings))
    counts: list[tuple[float, int]] = []
    done = threading.Event()

    def poll() -> None:
        admin = admin_connection(dsn)
        db = dsn.rsplit("/", 1)[1].split("?")[0]
        try:
            while not done.is_set():
                with admin.cursor() as c:
                    c.execute(
                        f"SELECT COALESCE(SUM(n), 0) FROM `{db}`.learner_counters WHERE "
                        "experiment_id = %s AND name = 'rewards_applied'",
                        (exp,),
                    )
                    counts.append((time.time(), int(c.fetchone()[0])))
                time.sleep(0.005)
        finally:
            admin.close()

    with _group(dsn, settings, n, True, "vis"):
        poller = threading.Thread(target=poll, name="visibility-poll")
        poller.start()
        try:
            sent = asyncio.run(_trickle(settings, exp, 6.0 + seconds))
            time.sleep(2.0)
        finally:
            done.set()
            poller.join()
    warm = sum(1 for t in sent if t < sent[0] + 6.0)
    out = []
    j = 0
    for i in range(warm, len(sent)):
        while j < len(counts) and counts[j][1] < i + 1:
            j += 1
        if j == len(counts):
            raise RuntimeError(f"{n} learners: reward {i + 1} of {len(sent)} never counted")
        out.append(counts[j][0] - sent[i])
    return np.array(out)


async def _trickle(settings: KafkaSettings, exp: str, seconds: float) -> list[float]:
    """A decision and its reward every 5 ms for ``seconds``; their times."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=1)
    await producer.start()
    rng = np.random.default_rng(11)
    sent = []
    try:
        t_end = time.time() + seconds
        i = 0
        while time.time() < t_end:
            now = time.time()
            arm = int(rng.integers(0, K))
            ev = f"v-{i}"
            x = np.concatenate(([1.0], rng.normal(size=D)))
            dec = DecisionRow(
                ev, exp, now, now + 3600, 0, x, (f"a{arm}",), (0.0,), (0.01,), slots=(arm,)
            )
            fb = FeedbackEvent(ev, f"a{arm}", float(i % 2), now)
            await producer.send(settings.decisions_topic, encode_decision(dec), key=ev.encode())
            await producer.send(settings.feedback_topic, encode_feedback(fb), key=ev.encode())
            sent.append(now)
            i += 1
            await asyncio.sleep(0.005)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def _commit_costs(reps: int) -> tuple[float, float]:
    """Median ms to learn one commit's events apart (a part's evidence) and
    to apply them to the posterior, alternated in one loop."""
    cfg = ExperimentConfig(
        "bench", policy="lin_ts_disjoint", dim=D + 1, dense_dim=D, reward_window_s=3600.0
    )
    policy = cfg.make_policy()
    for _ in range(K):
        policy.add_arm()
    rng = np.random.default_rng(0)
    xs = np.hstack([np.ones((COMMIT_EVENTS, 1)), rng.normal(size=(COMMIT_EVENTS, D))])
    arms = rng.integers(0, K, COMMIT_EVENTS)
    rewards = (np.arange(COMMIT_EVENTS) % 2).astype(np.float64)
    times = np.full(COMMIT_EVENTS, time.time())
    part, update = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        evidence_of(policy, arms, xs, rewards, times)
        part.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        policy.update_batch(arms, xs, rewards, times)
        update.append(time.perf_counter() - t0)
    return float(np.median(part) * 1000), float(np.median(update) * 1000)


def run(quick: bool) -> tuple[dict[str, float], dict[str, Any]]:
    base = os.environ.get("BANDIT_BENCH_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")
    n_rewards = 60_000 if quick else 400_000
    repeats = 1 if quick else REPEATS
    rounds: dict[str, list[dict[str, float]]] = {"1": [], "3": [], "3turns": []}
    with (
        scratch_database(base, "bandit_bench") as dsn,
        kafka_bootstrap("BANDIT_BENCH_KAFKA") as bootstrap,
    ):
        db = dsn.rsplit("/", 1)[1].split("?")[0]
        settings = scratch_topics(bootstrap, "h", partitions=PARTITIONS)
        store = MySQLStore(dsn)
        cfg = ExperimentConfig(
            "bench", policy="lin_ts_disjoint", dim=D + 1, dense_dim=D, reward_window_s=3600.0
        )
        store.create_experiment("bench", cfg.to_dict(), time.time())
        store.upsert_arms([ArmRow("bench", f"a{i}", i, {}, True) for i in range(K)])
        progress(f"learners: producing {n_rewards} decisions + rewards, {PARTITIONS} partitions")
        asyncio.run(ensure_topics(settings))
        asyncio.run(_produce(settings, _records(settings, n_rewards, seed=7)))
        for rep in range(repeats):
            for key, n, parts in (("1", 1, True), ("3", 3, True), ("3turns", 3, False)):
                progress(f"learners: round {rep + 1}/{repeats}: {n} learner(s), parts={parts}")
                r = _round(dsn, db, settings, n, parts, f"{key}r{rep}", n_rewards)
                progress(
                    f"learners:   {r['rewards_per_s']:,.0f} rewards/s (10-90%: "
                    f"{r['steady_rewards_per_s']:,.0f}; first commit after "
                    f"{r['first_commit_s']:.1f} s), lock wait "
                    f"{r['lock_wait_s']:.3f} s of {r['commit_s']:.2f} s commit time"
                )
                rounds[key].append(r)
        store.close()
        progress("learners: reward to posterior, 200 rewards/s, 1 learner and 3 learners")
        visible = {n: _visibility(dsn, bootstrap, n, 4.0 if quick else 10.0) for n in (1, 3)}

    def med(key: str, field: str) -> float:
        return float(np.median([r[field] for r in rounds[key]]))

    def share(key: str) -> float:
        return float(np.median([r["lock_wait_s"] / max(r["commit_s"], 1e-9) for r in rounds[key]]))

    part_ms, update_ms = _commit_costs(5 if quick else 30)
    figures = {
        "learner_part_ms": part_ms,
        "learner_update_ms": update_ms,
        "learner_lock_wait_share": share("3"),
        "learners_1_visible_p50_ms": float(np.percentile(visible[1], 50) * 1000),
        "learners_1_visible_p99_ms": float(np.percentile(visible[1], 99) * 1000),
        "learners_3_visible_p50_ms": float(np.percentile(visible[3], 50) * 1000),
        "learners_3_visible_p99_ms": float(np.percentile(visible[3], 99) * 1000),
        "learner_lock_wait_share_turns": share("3turns"),
        "learners_1_rewards_per_s": med("1", "steady_rewards_per_s"),
        "learners_3_rewards_per_s": med("3", "steady_rewards_per_s"),
        "learners_3_turns_rewards_per_s": med("3turns", "steady_rewards_per_s"),
        "learners_3_vs_1": float(
            np.median(
                [
                    a["steady_rewards_per_s"] / b["steady_rewards_per_s"]
                    for a, b in zip(rounds["3"], rounds["1"], strict=True)
                ]
            )
        ),
        "learners_1_overall_rewards_per_s": med("1", "rewards_per_s"),
        "learners_3_overall_rewards_per_s": med("3", "rewards_per_s"),
        "learners_first_commit_s": med("3", "first_commit_s"),
    }
    return figures, {"rounds": rounds}
