"""Engine semantics without gRPC: crash recovery, joins, closed form, seeds."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from bandit_engine import Context, Engine, ExperimentConfig, InvalidArgument, NotFound
from bandit_engine.policies import PRIOR_MEAN
from bandit_engine.store import SQLiteStore


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def open_engine(path: Path, clock: Clock, seed: int = 3) -> Engine:
    return Engine(SQLiteStore(path / "state.db"), seed=seed, clock=clock)


def setup(e: Engine, policy: str = "lin_ts_disjoint", **kw: object) -> None:
    e.create_experiment(
        ExperimentConfig(
            "exp",
            policy=policy,
            dim=6,
            dense_dim=3,
            reward_window_s=60.0,
            reward_min=0.0,
            reward_max=5.0,
            **kw,  # type: ignore[arg-type]
        )
    )
    e.add_arms("exp", [(f"arm{i}", {"categorical": [f"kind={i % 2}"]}) for i in range(5)])


def ctx(rng: random.Random) -> Context:
    return Context(dense=[rng.uniform(-1, 1) for _ in range(3)], categorical=["device=mobile"])


@pytest.mark.parametrize("policy", ["beta_ts", "lin_ts_disjoint", "lin_ts_shared", "logistic_ts"])
def test_crash_without_checkpoint_recovers_by_replay(tmp_path: Path, policy: str) -> None:
    clock = Clock()
    e = open_engine(tmp_path, clock)
    setup(e, policy)
    rng = random.Random(1)
    decisions = [e.recommend("exp", ctx(rng), k=2) for _ in range(40)]
    for i, d in enumerate(decisions[:30]):
        e.feedback(d.event_id, d.arm_ids[i % 2], rng.choice([0.0, 2.5, 5.0]))
        if i == 12:
            e.checkpoint()  # a snapshot in the middle: recovery = snapshot + replay
    e.flush()
    expected = e.state_checksum()
    # "Crash": drop the engine without close(): no final checkpoint.
    e2 = open_engine(tmp_path, clock)
    assert e2.state_checksum() == expected
    # Pending decisions survived too; their rewards still join, once.
    d = decisions[35]
    assert e2.feedback(d.event_id, d.arm_ids[0], 5.0).outcome == "applied"
    assert e2.feedback(d.event_id, d.arm_ids[0], 5.0).outcome == "duplicate"
    d = decisions[3]
    assert e2.feedback(d.event_id, d.arm_ids[3 % 2], 5.0).outcome == "duplicate"
    e2.close()


@pytest.mark.parametrize("half_life_s", [0.0, 3600.0, None])
def test_posterior_equals_closed_form_over_applied_events(
    tmp_path: Path, half_life_s: float | None
) -> None:
    """Feedback and default rewards reach the policy exactly once each, each
    weighted 2^((t - clock) / half_life_s) by its decision's time t (None:
    the default half-life)."""
    clock = Clock()
    e = open_engine(tmp_path, clock)
    setup(e, "lin_ts_disjoint", default_reward=1.0, half_life_s=half_life_s)
    h = e.get_experiment("exp").config.half_life_s
    rng = random.Random(5)
    space = e.get_experiment("exp").config.feature_space()
    applied: list[tuple[str, np.ndarray, float, float]] = []
    decisions = []
    for _ in range(60):
        c = ctx(rng)
        d = e.recommend("exp", c, k=3)
        x = space.vector(c.dense, c.numeric, c.categorical)
        decisions.append((d, x, clock.t))
        for arm in d.arm_ids:
            if rng.random() < 0.4:
                r = rng.uniform(0, 5)
                assert e.feedback(d.event_id, arm, r).outcome == "applied"
                applied.append((arm, x, r, clock.t))
                # a retry is not applied again
                assert e.feedback(d.event_id, arm, r).outcome == "duplicate"
        clock.t += 60.0
    got = {
        (d.event_id, a)
        for d, x, _ in decisions
        for a in d.arm_ids
        if any(a == aa and x is xx for aa, xx, _, _ in applied)
    }
    rewarded = {(d.event_id, a) for d, _, _ in decisions for a in d.arm_ids}
    clock.t += 120.0
    n_default = e.sweep()
    assert n_default == len(rewarded) - len(got)
    for d, x, t in decisions:
        for arm in d.arm_ids:
            if (d.event_id, arm) not in got:
                applied.append((arm, x, 1.0, t))
    state = e.posterior_state("exp")
    if h:
        # an hour of decisions: the clock moved, and the evidence with it
        assert state["clock"][0] > decisions[0][2]
        weight = {t: 2.0 ** ((t - state["clock"][0]) / h) for _, _, _, t in applied}
        assert min(weight.values()) <= 2.0 ** (-3000.0 / h)
    else:
        assert "clock" not in state
        weight = {t: 1.0 for _, _, _, t in applied}
    for i in range(5):
        rows = [(x, r, weight[t]) for a, x, r, t in applied if a == f"arm{i}"]
        a_ref = np.eye(6) + sum((w * np.outer(x, x) for x, _, w in rows), np.zeros((6, 6)))
        # lin_ts_disjoint learns rewards mapped onto [0, 1] and centred
        b_ref = sum((w * x * (r / 5.0 - PRIOR_MEAN) for x, r, w in rows), np.zeros(6))
        np.testing.assert_allclose(state["A"][i], a_ref, rtol=1e-12)
        np.testing.assert_allclose(state["b"][i], b_ref, rtol=1e-9, atol=1e-12)
    e.close()


def test_seeded_engines_reproduce(tmp_path: Path) -> None:
    runs = []
    for k in range(2):
        clock = Clock()
        e = open_engine(tmp_path / str(k), clock, seed=11)
        setup(e, "lin_ts_shared")
        rng = random.Random(2)
        out = []
        for _ in range(30):
            d = e.recommend("exp", ctx(rng), k=3)
            e.feedback(d.event_id, d.arm_ids[0], rng.uniform(0, 5))
            out.append((d.arm_ids, d.scores.tolist(), d.propensities.tolist()))
        runs.append(out)
        e.close()
    assert runs[0] == runs[1]


def test_decision_log_records_what_was_served(tmp_path: Path) -> None:
    clock = Clock()
    e = open_engine(tmp_path, clock)
    setup(e)
    d = e.recommend("exp", Context(dense=[1.0, 2.0, 3.0]), candidates=["arm1", "arm3", "arm4"], k=2)
    e.flush()
    (row,) = list(e.store.decisions("exp"))
    assert row.event_id == d.event_id
    assert row.arms == d.arm_ids
    assert row.propensities == tuple(d.propensities.tolist())
    assert row.scores == tuple(d.scores.tolist())
    assert row.candidates == ("arm1", "arm3", "arm4")
    np.testing.assert_array_equal(row.x[:4], [1.0, 1.0, 2.0, 3.0])
    assert row.deadline == clock.t + 60.0
    e.close()


def test_feedback_validation_order(tmp_path: Path) -> None:
    e = open_engine(tmp_path, Clock())
    setup(e)
    d = e.recommend("exp", Context(dense=[0.0, 0.0, 0.0]), k=1)
    with pytest.raises(NotFound, match="'missing'"):
        e.feedback("missing", "arm0", 1.0)
    with pytest.raises(InvalidArgument, match=r"5\.5"):
        e.feedback(d.event_id, d.arm_ids[0], 5.5)
    assert e.unknown_rewards == 1
    e.close()
