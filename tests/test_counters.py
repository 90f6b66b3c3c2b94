"""Embedded mode's durability of a reward's decision, and its counters, on each store.

A "crash" here is an engine dropped without ``close()`` (no final flush or
checkpoint), its store reopened by a new engine: what the new engine sees is
what was durable.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bandit_engine import Context, Engine, ExperimentConfig, NotFound
from bandit_engine.store import DecisionRow, MySQLStore, RewardRow, SQLiteStore, Store

WINDOW = 60.0
COUNTERS = (
    "decisions",
    "rewards_applied",
    "rewards_defaulted",
    "rewards_duplicate",
    "rewards_late",
    "rewards_unknown",
)


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["sqlite", "mysql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """Opens a new store on one SQLite file or one MySQL database each call."""
    if request.param == "sqlite":
        return lambda: SQLiteStore(tmp_path / "state.db")
    dsn = request.getfixturevalue("mysql_dsn")
    return lambda: MySQLStore(dsn)


def _engine(store: Store, clock: Clock) -> Engine:
    return Engine(store, seed=3, clock=clock)


def _setup(e: Engine) -> None:
    e.create_experiment(
        ExperimentConfig(
            "exp", policy="lin_ts_disjoint", dim=4, dense_dim=2, reward_window_s=WINDOW
        )
    )
    e.add_arms("exp", [(f"arm{i}", {}) for i in range(5)])


def _ctx(rng: random.Random) -> Context:
    return Context(dense=[rng.uniform(-1, 1), rng.uniform(-1, 1)])


def _stored(store: Store) -> dict[str, int]:
    rewards = list(store.rewards("exp"))
    return {
        "decisions": len(list(store.decisions("exp"))),
        "rewards_applied": sum(r.source == "feedback" for r in rewards),
        "rewards_defaulted": sum(r.source == "default" for r in rewards),
    }


def test_a_reward_is_never_durable_before_its_decision(
    open_store: Callable[[], Store],
) -> None:
    """A Feedback that leaves its decision open (1 of 3 arms), before the
    decision writer ran: after a crash the decision is there with its reward,
    the retried Feedback is a DUPLICATE and the other arms still get their
    default reward."""
    clock = Clock()
    e = _engine(open_store(), clock)  # not started: the writer never runs on its own
    _setup(e)
    d = e.recommend("exp", _ctx(random.Random(1)), k=3)
    assert e.feedback(d.event_id, d.arm_ids[0], 1.0).outcome == "applied"
    # crash: e is dropped as it is
    e2 = _engine(open_store(), clock)
    assert e2.store.decision_status(d.event_id) == ("exp", False)
    assert e2.feedback(d.event_id, d.arm_ids[0], 1.0).outcome == "duplicate"
    clock.t += 2 * WINDOW
    assert e2.sweep() == 2  # the two other shown arms
    assert {(r.arm_id, r.source) for r in e2.store.rewards("exp")} == {
        (d.arm_ids[0], "feedback"),
        (d.arm_ids[1], "default"),
        (d.arm_ids[2], "default"),
    }
    e2.close()


def test_counters_survive_a_crash_and_equal_the_store(open_store: Callable[[], Store]) -> None:
    clock = Clock()
    e = _engine(open_store(), clock)
    _setup(e)
    rng = random.Random(2)
    decisions = [e.recommend("exp", _ctx(rng), k=2) for _ in range(30)]
    e.checkpoint()  # a snapshot in the middle: counters must not come from it
    for d in decisions[:20]:
        e.feedback(d.event_id, d.arm_ids[0], 1.0)
    for d in decisions[:5]:
        assert e.feedback(d.event_id, d.arm_ids[0], 0.0).outcome == "duplicate"
    for _ in range(3):
        with pytest.raises(NotFound):
            e.feedback("0" * 32, "arm0", 1.0)
    clock.t += 2 * WINDOW
    assert e.sweep() == 40  # 30 decisions x 2 arms, 20 with a Feedback
    assert e.feedback(decisions[25].event_id, decisions[25].arm_ids[0], 1.0).outcome == "late"
    late_ones = [e.recommend("exp", _ctx(rng), k=1) for _ in range(2)]
    clock.t += 1.0
    assert e.feedback(late_ones[0].event_id, late_ones[0].arm_ids[0], 1.0).outcome == "applied"
    e.checkpoint()
    e.recommend("exp", _ctx(rng), k=2)  # not stored yet: GetExperiment stores it first
    before = e.get_experiment("exp").counters
    assert before == {
        "decisions": 33,
        "rewards_applied": 21,
        "rewards_defaulted": 40,
        "rewards_duplicate": 5,
        "rewards_late": 1,
        "rewards_unknown": 3,
    }
    assert e.unknown_rewards == 3
    # crash, and a new engine on the same store
    e2 = _engine(open_store(), clock)
    after = e2.get_experiment("exp").counters
    assert after == before
    assert {k: after[k] for k in ("decisions", "rewards_applied", "rewards_defaulted")} == (
        _stored(e2.store)
    )
    assert e2.list_experiments()[0].counters == after
    assert e2.unknown_rewards == 3
    e2.close()


def test_counters_count_each_row_once_in_every_path(open_store: Callable[[], Store]) -> None:
    """Decisions stored by the writer, with a reward, or both (the second
    store of a row inserts nothing and counts nothing)."""
    store = open_store()
    store.create_experiment("e", {}, 1.0)
    rows = [_decision(f"ev{i}") for i in range(4)]
    store.log_decisions(rows[:2])
    store.log_decisions(rows[:3])  # ev0 and ev1 again: only ev2 is new
    seqs = store.commit_rewards(
        [_reward("ev3", "a"), _reward("ev0", "a"), _reward("ev0", "b", "default")],
        close_events=["ev3"],
        decisions=rows[2:],  # ev2 again, ev3 new
    )
    assert all(isinstance(s, int) for s in seqs)
    assert store.decision_status("ev3") == ("e", True)
    again = store.commit_rewards([_reward("ev0", "a")])
    assert again == [None]
    store.add_counters({("e", "rewards_duplicate"): 1, ("", "rewards_unknown"): 2})
    store.add_counters({("e", "rewards_duplicate"): 1})
    want = {
        ("e", "decisions"): 4,
        ("e", "rewards_applied"): 2,
        ("e", "rewards_defaulted"): 1,
        ("e", "rewards_duplicate"): 2,
    }
    assert store.counters("e") == want
    assert store.counters() == {**want, ("", "rewards_unknown"): 2}
    store.close()


def test_counters_of_an_older_store_are_seeded_from_its_snapshot(tmp_path: Path) -> None:
    """A SQLite store of schema 3 kept the counters in snapshots only: they,
    plus the rewards stored after the snapshot, become the stored counters."""
    clock = Clock()
    path = tmp_path / "state.db"
    e = _engine(SQLiteStore(path), clock)
    _setup(e)
    rng = random.Random(3)
    ds = [e.recommend("exp", _ctx(rng), k=2) for _ in range(10)]
    for d in ds[:4]:
        e.feedback(d.event_id, d.arm_ids[0], 1.0)
    e.checkpoint()
    for d in ds[4:7]:
        e.feedback(d.event_id, d.arm_ids[1], 1.0)
    e.flush()
    old = {"decisions": 10, "rewards_applied": 4, "rewards_duplicate": 6, "rewards_late": 2}
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE snapshots SET counters = ?", (json.dumps(old),))
        db.execute("DELETE FROM engine_counters")
        db.execute("UPDATE schema_version SET version = 3")
    db.close()
    e2 = _engine(SQLiteStore(path), clock)
    want = {**dict.fromkeys(COUNTERS, 0), **old, "rewards_applied": 7}
    assert e2.get_experiment("exp").counters == want
    e2.close()
    e3 = _engine(SQLiteStore(path), clock)  # seeded once, not again
    assert e3.get_experiment("exp").counters == want
    e3.close()


def _decision(ev: str) -> DecisionRow:
    return DecisionRow(
        ev, "e", 10.0, 70.0, 3, np.array([1.0, 0.5]), ("a", "b"), (0.9, 0.1), (0.7, 0.3)
    )


def _reward(ev: str, arm: str, source: str = "feedback") -> RewardRow:
    return RewardRow(ev, arm, "e", 0, np.array([1.0, 0.5]), 1.0, 1.0, source, 12.0)
