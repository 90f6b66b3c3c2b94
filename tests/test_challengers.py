"""Challengers: they learn from every reward the champion learns from, once,
through the same path; restarts rebuild them; they never change what is
served; promotion and rollback are recorded and survive restarts; bad
requests are refused naming the bad value, with no state change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit_engine import (
    AlreadyExists,
    Context,
    Engine,
    ExperimentConfig,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from bandit_engine.core import Limits, Store
from bandit_engine.core.ports import DecisionRow, FeedbackEvent
from bandit_engine.store import SQLiteStore

ARMS = ("a", "b", "c")


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def engine(store: Store, clock: Clock | None = None, **kw: Any) -> Engine:
    return Engine(store, seed=5, clock=clock or Clock(), **kw)


def create(e: Engine, policy: str = "beta_ts", **kw: Any) -> None:
    e.create_experiment(
        ExperimentConfig(
            "exp",
            policy=policy,
            dim=4,
            dense_dim=3,
            reward_window_s=60.0,
            half_life_s=0.0,
            **kw,
        )
    )
    e.add_arms("exp", [(a, None) for a in ARMS])


def beta_closed_form(events: list[tuple[str, float]], alpha0: float, beta0: float) -> Any:
    alpha = np.full(len(ARMS), alpha0)
    beta = np.full(len(ARMS), beta0)
    for arm, r in events:
        alpha[ARMS.index(arm)] += r
        beta[ARMS.index(arm)] += 1.0 - r
    return alpha, beta


# one step: (reward or None: left to the window's default, close windows now?)
steps = st.lists(
    st.tuples(st.one_of(st.none(), st.sampled_from([0.0, 0.25, 1.0])), st.booleans()),
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None)
@given(steps=steps)
def test_challenger_posterior_is_the_closed_form_over_the_champions_events(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[float | None, bool]]
) -> None:
    """Feedback and window-close defaults, swept in any batching: a beta
    challenger with its own prior holds the closed form over exactly the
    events the champion learned from, and a copy of the champion's settings
    holds the champion's state."""
    clock = Clock()
    e = engine(SQLiteStore(tmp_path_factory.mktemp("c") / "s.db"), clock)
    create(e, shadow_rate=1.0)
    e.challengers.add(
        "exp",
        "prior",
        {"policy": "beta_ts", "prior_alpha": 2.0, "prior_beta": 3.0, "half_life_s": 0},
    )
    e.challengers.add("exp", "twin", {"policy": "beta_ts", "half_life_s": 0.0})
    events: list[tuple[str, float]] = []
    for reward, sweep in steps:
        d = e.recommend("exp", Context(dense=[0.1, -0.2, 0.3]))
        arm = d.arm_ids[0]
        if reward is not None:
            assert e.feedback(d.event_id, arm, reward).outcome == "applied"
            assert e.feedback(d.event_id, arm, reward).outcome == "duplicate"
        events.append((arm, 0.0 if reward is None else reward))
        clock.t += 1.0
        if sweep:
            clock.t += 61.0
            e.sweep()
    clock.t += 61.0
    e.sweep()
    alpha, beta = beta_closed_form(events, 2.0, 3.0)
    state = e.challengers.posterior_state("exp", "prior")
    np.testing.assert_allclose(state["alpha"], alpha)
    np.testing.assert_allclose(state["beta"], beta)
    champion = e.posterior_state("exp")
    twin = e.challengers.posterior_state("exp", "twin")
    for key in champion:
        np.testing.assert_array_equal(champion[key], twin[key])
    e.close()


def drive(e: Engine, n: int, rng: np.random.Generator) -> None:
    for _ in range(n):
        z = rng.normal(size=3)
        d = e.recommend("exp", Context(dense=list(z)))
        arm = d.arm_ids[0]
        p = 0.8 if (arm == "a") == (z[0] > 0) else 0.2
        e.feedback(d.event_id, arm, float(rng.random() < p))


def test_challengers_never_change_what_is_served(tmp_path: Path) -> None:
    plain = engine(SQLiteStore(tmp_path / "a.db"))
    shadowed = engine(SQLiteStore(tmp_path / "b.db"))
    for e in (plain, shadowed):
        create(e, policy="lin_ts_disjoint", shadow_rate=1.0)
    shadowed.challengers.add("exp", "beta", {"policy": "beta_ts"})
    shadowed.challengers.add("exp", "lin2", {"policy": "lin_ts_disjoint", "exploration": 2.0})
    rng = np.random.default_rng(0)
    for _ in range(200):
        ctx = Context(dense=list(rng.normal(size=3)))
        d1, d2 = plain.recommend("exp", ctx, k=2), shadowed.recommend("exp", ctx, k=2)
        assert d1.arm_ids == d2.arm_ids
        np.testing.assert_array_equal(d1.scores, d2.scores)
        np.testing.assert_array_equal(d1.propensities, d2.propensities)
        r = float(rng.random() < 0.5)
        plain.feedback(d1.event_id, d1.arm_ids[0], r)
        shadowed.feedback(d2.event_id, d2.arm_ids[0], r)
    assert shadowed.challengers.report("exp").estimates[1].n == 200
    plain.close()
    shadowed.close()


def test_restart_rebuilds_challengers_from_snapshot_and_replay(tmp_path: Path) -> None:
    """Checkpoint + replay rebuild every challenger: one added after the
    snapshot learns only from the rewards after it; a name removed and
    added again starts over; the champion stays the one promoted."""
    path = tmp_path / "s.db"
    e = engine(SQLiteStore(path))
    create(e, policy="lin_ts_disjoint", shadow_rate=0.5)
    rng = np.random.default_rng(1)
    e.challengers.add("exp", "early", {"policy": "beta_ts"})
    drive(e, 40, rng)
    e.checkpoint()
    drive(e, 20, rng)
    e.challengers.add("exp", "late", {"policy": "beta_ts", "prior_alpha": 5.0, "half_life_s": 0})
    e.challengers.remove("exp", "early")
    e.challengers.add("exp", "early", {"policy": "lin_ts_disjoint", "exploration": 1.0})
    drive(e, 30, rng)
    e.challengers.promote("exp", "late")
    drive(e, 10, rng)
    late = e.challengers.posterior_state("exp", "late")
    assert late["alpha"].sum() + late["beta"].sum() == pytest.approx(3 * 6.0 + 40)
    names = ("late", "early", "initial")
    before = {n: e.challengers.posterior_state("exp", n) for n in names}
    checksum = e.state_checksum()
    e.flush()  # a crash: no clean stop, no snapshot since the first
    e2 = engine(SQLiteStore(path))
    info = e2.get_experiment("exp")
    assert info.champion == "late" and info.config.policy == "beta_ts"
    assert [n for n, _ in info.challengers] == ["early", "initial"]
    for n in names:
        after = e2.challengers.posterior_state("exp", n)
        assert set(after) == set(before[n])
        for key in after:
            np.testing.assert_allclose(after[key], before[n][key], rtol=1e-9, atol=1e-12)
    assert e2.state_checksum() == checksum
    e2.close()


def test_promotion_and_rollback_are_recorded_and_serve(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "s.db"
    e = engine(SQLiteStore(path), clock)
    create(e, shadow_rate=1.0)
    e.challengers.add("exp", "lin", {"policy": "lin_ts_disjoint"}, actor="alice")
    drive(e, 30, np.random.default_rng(2))
    lin_state = e.challengers.posterior_state("exp", "lin")
    clock.t += 5
    info = e.challengers.promote("exp", "lin", actor="bob")
    assert info.champion == "lin" and info.config.policy == "lin_ts_disjoint"
    assert [n for n, _ in info.challengers] == ["initial"]
    # the promoted state serves: nothing was reset
    np.testing.assert_array_equal(e.posterior_state("exp")["A"], lin_state["A"])
    d = e.recommend("exp", Context(dense=[1.0, 0.0, 0.0]))
    assert d.propensity_kind == "first_slot"
    clock.t += 5
    assert e.challengers.rollback("exp", actor="carol").champion == "initial"
    clock.t += 5
    assert e.challengers.rollback("exp", actor="dave").champion == "lin"
    e.close()
    e2 = engine(SQLiteStore(path), clock)
    report = e2.challengers.report("exp")
    assert report.champion == "lin"
    got = [(c.action, c.name, c.actor, c.at) for c in report.changes]
    t0 = 1_000_000.0
    assert got == [
        ("add", "lin", "alice", t0),
        ("promote", "lin", "bob", t0 + 5),
        ("rollback", "initial", "carol", t0 + 10),
        ("rollback", "lin", "dave", t0 + 15),
    ]
    assert [c.settings.get("previous") for c in report.changes[1:]] == ["initial", "lin", "initial"]
    e2.close()


def test_bad_requests_name_the_value_and_change_nothing(tmp_path: Path) -> None:
    e = engine(SQLiteStore(tmp_path / "s.db"), limits=Limits(max_challengers=2))
    create(e)
    e.challengers.add("exp", "one", {"policy": "lin_ts_disjoint"})
    before = (e.get_experiment("exp"), e.challengers.report("exp").changes, e.state_checksum())
    ch, beta = e.challengers, {"policy": "beta_ts"}
    bad: list[tuple[type[Exception], str, Any]] = [
        (NotFound, "'ghost'", lambda: ch.remove("exp", "ghost")),
        (NotFound, "'ghost'", lambda: ch.promote("exp", "ghost")),
        (FailedPrecondition, "'initial' is the champion", lambda: ch.remove("exp", "initial")),
        (AlreadyExists, "'one'", lambda: ch.add("exp", "one", beta)),
        (AlreadyExists, "'initial'", lambda: ch.add("exp", "initial", beta)),
        (InvalidArgument, "'bad name'", lambda: ch.add("exp", "bad name", beta)),
        (InvalidArgument, "'dim'", lambda: ch.add("exp", "two", {**beta, "dim": 9})),
        (InvalidArgument, "'sarsa'", lambda: ch.add("exp", "two", {"policy": "sarsa"})),
        (InvalidArgument, "decay=0.1", lambda: ch.add("exp", "two", {**beta, "decay": 0.1})),
        (FailedPrecondition, "no promotion", lambda: ch.rollback("exp")),
        (NotFound, "'nope'", lambda: ch.add("nope", "two", beta)),
    ]
    for cls, needle, call in bad:
        with pytest.raises(cls, match=needle.replace("(", r"\(")):
            call()
    e.challengers.add("exp", "two", {"policy": "beta_ts"})
    with pytest.raises(ResourceExhausted, match="max_challengers=2"):
        e.challengers.add("exp", "three", {"policy": "beta_ts"})
    e.challengers.remove("exp", "two")
    after = (e.get_experiment("exp"), e.challengers.report("exp").changes[:1], e.state_checksum())
    assert after == before
    for value in (-0.1, 1.5, float("nan"), "0.2"):
        with pytest.raises(InvalidArgument, match="shadow_rate"):
            ExperimentConfig("x", shadow_rate=value)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="shadow_window=5"):
        ExperimentConfig("x", shadow_window=5)
    e.close()


class _Log:
    def publish_decision(self, row: DecisionRow) -> bool:
        return True

    def publish_feedback(self, event: FeedbackEvent, timeout: float) -> bool:
        return True

    def pending(self) -> int:
        return 0

    def close(self) -> None:
        pass


def test_kafka_mode_servers_follow_changes_at_their_refresh(tmp_path: Path) -> None:
    """Kafka mode: a change made on one server is stored; another server
    applies it at its next refresh, a promotion included."""
    path = tmp_path / "s.db"
    a = engine(SQLiteStore(path), event_log=_Log())
    create(a)
    b = engine(SQLiteStore(path), event_log=_Log())
    assert b.get_experiment("exp").challengers == ()
    a.challengers.add("exp", "lin", {"policy": "lin_ts_disjoint"}, actor="alice")
    assert b.refresh() == 1
    assert [n for n, _ in b.get_experiment("exp").challengers] == ["lin"]
    assert b.refresh() == 0
    a.challengers.promote("exp", "lin", actor="bob")
    assert b.refresh() == 1
    info = b.get_experiment("exp")
    assert info.champion == "lin" and info.config.policy == "lin_ts_disjoint"
    assert b.recommend("exp", Context(dense=[1.0, 0.0, 0.0])).arm_ids[0] in ARMS
    assert [c.actor for c in b.challengers.report("exp").changes] == ["alice", "bob"]
    a.close()
    b.close()
