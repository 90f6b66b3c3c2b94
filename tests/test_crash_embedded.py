"""SIGKILL under load in embedded mode (SQLite), with decisions that show 3 arms.

A server subprocess takes Recommend(k=3) and Feedback from several threads
(most Feedbacks leave their decision open, some close it) and is killed with
SIGKILL several times, restarted on the same state dir each time. Checked:

- every Feedback answered APPLIED before a kill answers DUPLICATE when it is
  retried after the restart (never NOT_FOUND: its decision is durable);
- no reward row in the store lacks its decision row;
- no counter of GetExperiment goes backwards across a kill and restart;
- at the end the counters equal what the store holds (decision rows, reward
  rows by source), and the posterior's pulls equal the reward rows.
"""

from __future__ import annotations

import random
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from harness.chaos.cluster import Proc, serving, stub, wait_until
from harness.local_broker import free_port

from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb

EXP = "crash"
ARMS = tuple(f"arm{i}" for i in range(6))
COUNTERS = (
    "decisions",
    "rewards_applied",
    "rewards_defaulted",
    "rewards_duplicate",
    "rewards_late",
    "rewards_unknown",
)
WINDOW = 2.0  # seconds: some windows close (default rewards) during the run


@dataclass
class Round:
    """What the traffic of one server lifetime saw."""

    applied: list[tuple[str, str]] = field(default_factory=list)  # (event, arm)
    last_counters: dict[str, int] = field(default_factory=dict)  # last read before the kill
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)


def _counters(s: object) -> dict[str, int]:
    exp = s.GetExperiment(pb.GetExperimentRequest(experiment_id=EXP), timeout=5)  # type: ignore[attr-defined]
    return {name: int(getattr(exp.counters, name)) for name in COUNTERS}


def _traffic(port: int, rnd: Round, seed: int) -> None:
    rng = random.Random(seed)
    ch, s = stub(port)
    try:
        while not rnd.stop.is_set():
            try:
                dense = [rng.uniform(-1, 1), rng.uniform(-1, 1)]
                rec = s.Recommend(
                    pb.RecommendRequest(experiment_id=EXP, context=pb.Features(dense=dense), k=3),
                    timeout=5,
                )
                shown = [a.arm_id for a in rec.arms]
                n = 3 if rng.random() < 0.1 else (2 if rng.random() < 0.3 else 1)
                for arm in shown[:n]:
                    fb = s.Feedback(
                        pb.FeedbackRequest(
                            event_id=rec.event_id, arm_id=arm, reward=float(rng.random() < 0.3)
                        ),
                        timeout=5,
                    )
                    if fb.outcome == pb.APPLIED:
                        with rnd.lock:
                            rnd.applied.append((rec.event_id, arm))
            except grpc.RpcError:
                return  # the server was killed
    finally:
        ch.close()


def _reader(port: int, rnd: Round) -> None:
    ch, s = stub(port)
    try:
        while not rnd.stop.is_set():
            try:
                c = _counters(s)
            except grpc.RpcError:
                return
            with rnd.lock:
                rnd.last_counters = c
            time.sleep(0.05)
    finally:
        ch.close()


def test_sigkill_under_load_keeps_decisions_before_rewards_and_counters(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port = free_port()
    cmd = [sys.executable, "-m", "bandit_engine", "--log-level", "WARNING", "serve"]
    cmd += ["--port", str(port), "--state-dir", str(state), "--checkpoint-interval", "0.5"]
    server = Proc("server", cmd, tmp_path / "server.log", port)
    rng = random.Random(17)
    kills = 4
    previous: Round | None = None
    not_duplicate: list[tuple[str, str, int]] = []
    went_back: list[tuple[int, str, int, int]] = []
    total_applied = 0
    try:
        for i in range(kills + 1):
            server.start()
            wait_until("server serving", lambda: serving(port), 60)
            ch, s = stub(port)
            try:
                if i == 0:
                    s.CreateExperiment(
                        pb.CreateExperimentRequest(
                            spec=pb.ExperimentSpec(
                                experiment_id=EXP,
                                policy=pb.LIN_TS_DISJOINT,
                                dim=4,
                                dense_dim=2,
                                reward_window_seconds=WINDOW,
                            )
                        ),
                        timeout=10,
                    )
                    s.AddArms(
                        pb.AddArmsRequest(
                            experiment_id=EXP, arms=[pb.ArmSpec(arm_id=a) for a in ARMS]
                        ),
                        timeout=10,
                    )
                after = _counters(s)
                if previous is not None:
                    for name, before in previous.last_counters.items():
                        if after[name] < before:
                            went_back.append((i, name, before, after[name]))
                    for ev, arm in previous.applied:
                        try:
                            out = s.Feedback(
                                pb.FeedbackRequest(event_id=ev, arm_id=arm, reward=1.0), timeout=5
                            ).outcome
                        except grpc.RpcError as exc:
                            out = -exc.code().value[0]
                        if out != pb.DUPLICATE:
                            not_duplicate.append((ev, arm, out))
            finally:
                ch.close()
            if i == kills:
                break
            rnd = Round()
            threads = [
                threading.Thread(target=_traffic, args=(port, rnd, 100 * i + t)) for t in range(4)
            ]
            threads.append(threading.Thread(target=_reader, args=(port, rnd)))
            for th in threads:
                th.start()
            time.sleep(rng.uniform(1.0, 1.8))
            server.kill()
            rnd.stop.set()
            for th in threads:
                th.join(10)
            total_applied += len(rnd.applied)
            previous = rnd
        # the last windows close, then the counters are final
        time.sleep(WINDOW + 1.0)
        ch, s = stub(port)
        try:
            final = _counters(s)
            arms = s.ListArms(pb.ListArmsRequest(experiment_id=EXP), timeout=5).arms
            pulls = sum(a.posterior.pulls for a in arms)
        finally:
            ch.close()
    finally:
        server.stop()

    db = sqlite3.connect(state / "state.db")
    try:
        (orphans,) = db.execute(
            "SELECT COUNT(*) FROM rewards r LEFT JOIN decisions d ON r.event_id = d.event_id "
            "WHERE d.event_id IS NULL"
        ).fetchone()
        (decisions,) = db.execute("SELECT COUNT(*) FROM decisions").fetchone()
        by_source = dict(db.execute("SELECT source, COUNT(*) FROM rewards GROUP BY source"))
    finally:
        db.close()
    stored = {
        "decisions": decisions,
        "rewards_applied": by_source.get("feedback", 0),
        "rewards_defaulted": by_source.get("default", 0),
    }
    rows = stored["rewards_applied"] + stored["rewards_defaulted"]
    problems = {
        # (restart, counter, last read before the kill, first read after)
        "counters went back": went_back,
        "retries not DUPLICATE": (len(not_duplicate), not_duplicate[:3]),
        "reward rows without their decision": orphans,
        "counters unlike the store": {k: (final[k], v) for k, v in stored.items() if final[k] != v},
        "pulls unlike the reward rows": (pulls, rows),
        "duplicates uncounted": (final["rewards_duplicate"], total_applied),
    }
    ok = {
        "counters went back": not went_back,
        "retries not DUPLICATE": not not_duplicate,
        "reward rows without their decision": orphans == 0,
        "counters unlike the store": all(final[k] == v for k, v in stored.items()),
        "pulls unlike the reward rows": pulls == rows,
        # every applied Feedback was retried once, and answered DUPLICATE
        "duplicates uncounted": final["rewards_duplicate"] >= total_applied,
    }
    assert total_applied > 100, total_applied  # the run had load
    assert all(ok.values()), {k: problems[k] for k, good in ok.items() if not good}
