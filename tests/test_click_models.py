"""Click models: which impressions of a ranked list count, and how much.

The posterior equals the closed form over the impressions each model
counts, in embedded mode (through restarts) and in the Kafka learner's join.
The expected weights are computed here from the models' definitions, not
from the engine's code.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from learner_world import ARMS, T0, make_world

from bandit_engine import Context, Engine, ExperimentConfig, InvalidArgument
from bandit_engine.core.click_models import ClickModel, default_examination
from bandit_engine.policies import PRIOR_MEAN
from bandit_engine.store import SQLiteStore
from bandit_engine.stream.learner import JoinState, decode_decisions, decode_rewards

MODELS = ["independent", "cascade", "position_based"]
CURVE = (1.0, 0.5, 0.25)

# outcome of one shown slot: no Feedback, a click (reward 1), an explicit 0
NONE, CLICK, ZERO = 0, 1, 2


def expected_default_weight(model: str, outcomes: list[int], p: int) -> float:
    """How much slot ``p``'s default reward counts, by the models' definitions."""
    if model == "independent":
        return 1.0
    if model == "position_based":
        return CURVE[min(p, len(CURVE) - 1)]
    clicks = [q for q, o in enumerate(outcomes) if o == CLICK]
    return 1.0 if not clicks or p <= max(clicks) else 0.0


def expected_events(
    model: str, decisions: list[tuple[list[int], list[int], np.ndarray]]
) -> list[tuple[int, np.ndarray, float, float]]:
    """(arm, x, reward in [0, 1], weight) of every impression."""
    out = []
    for arms, outcomes, x in decisions:
        for p, (a, o) in enumerate(zip(arms, outcomes, strict=True)):
            if o == CLICK:
                out.append((a, x, 1.0, 1.0))
            elif o == ZERO:
                out.append((a, x, 0.0, 1.0))
            else:
                out.append((a, x, 0.0, expected_default_weight(model, outcomes, p)))
    return out


def assert_closed_form(
    policy: str, state: dict[str, np.ndarray], events: list[tuple[int, np.ndarray, float, float]]
) -> None:
    n = len(ARMS)
    if policy == "beta_ts":
        alpha = np.ones(n)
        beta = np.ones(n)
        for a, _, r, w in events:
            alpha[a] += w * r
            beta[a] += w * (1.0 - r)
        np.testing.assert_allclose(state["alpha"], alpha, rtol=1e-12)
        np.testing.assert_allclose(state["beta"], beta, rtol=1e-12)
        return
    d = state["A"].shape[1]
    a_ref = np.stack([np.eye(d) for _ in range(n)])
    b_ref = np.zeros((n, d))
    for a, x, r, w in events:
        a_ref[a] += w * np.outer(x, x)
        b_ref[a] += w * (r - PRIOR_MEAN) * x
    np.testing.assert_allclose(state["A"], a_ref, rtol=1e-12)
    np.testing.assert_allclose(state["b"], b_ref, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ the models
def test_default_weights_follow_each_model() -> None:
    assert ClickModel("independent").default_weights(3, [0]).tolist() == [1, 1, 1]
    cascade = ClickModel("cascade")
    assert cascade.default_weights(4, []).tolist() == [1, 1, 1, 1]  # no click: all examined
    assert cascade.default_weights(4, [1]).tolist() == [1, 1, 0, 0]
    assert cascade.default_weights(4, [0, 2]).tolist() == [1, 1, 1, 0]
    pbm = ClickModel("position_based", (1.0, 0.5))
    assert pbm.default_weights(4, [0]).tolist() == [1.0, 0.5, 0.5, 0.5]  # past the curve: its last
    default = ClickModel("position_based")
    assert default.examination[:3] == pytest.approx((1.0, 1 / math.log2(3), 0.5))
    assert default_examination(2) == (1.0, 1 / math.log2(3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"click_model": "dbn"}, "click_model='dbn' unknown"),
        ({"click_model": "position_based", "examination": [1.0, 1.5]}, r"examination\[1\]=1.5"),
        ({"click_model": "position_based", "examination": [0.0]}, r"examination\[0\]=0.0"),
        ({"click_model": "position_based", "examination": [float("nan")]}, r"examination\[0\]"),
        ({"click_model": "position_based", "examination": ["x"]}, r"examination\[0\]='x'"),
        ({"click_model": "cascade", "examination": [1.0]}, "examination is for"),
        ({"propensity_kind": "joint"}, "propensity_kind='joint' unknown"),
    ],
)
def test_bad_settings_are_refused_naming_the_value(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        ExperimentConfig("e", **kwargs)  # type: ignore[arg-type]


def test_settings_round_trip_through_storage() -> None:
    cfg = ExperimentConfig("e", click_model="position_based", examination=[1.0, 0.4])
    assert cfg.examination == (1.0, 0.4)
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg
    assert ExperimentConfig("f", click_model="position_based").examination[:2] == pytest.approx(
        (1.0, 1 / math.log2(3))
    )


# ---------------------------------------------------------- embedded mode
class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


outcomes_st = st.lists(st.sampled_from([NONE, CLICK, ZERO]), min_size=1, max_size=3)


def _config(model: str, policy: str) -> ExperimentConfig:
    return ExperimentConfig(
        "exp",
        policy=policy,
        dim=3,
        dense_dim=2,
        reward_window_s=60.0,
        half_life_s=0.0,
        click_model=model,
        examination=CURVE if model == "position_based" else (),
    )


@settings(max_examples=40, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    policy=st.sampled_from(["beta_ts", "lin_ts_disjoint"]),
    rounds=st.lists(outcomes_st, min_size=1, max_size=12),
    seed=st.integers(0, 1000),
)
def test_embedded_posterior_is_the_closed_form_over_counted_impressions(
    model: str, policy: str, rounds: list[list[int]], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        clock = Clock()
        e = Engine(SQLiteStore(Path(tmp) / "state.db"), seed=seed, clock=clock)
        e.create_experiment(_config(model, policy))
        e.add_arms("exp", [(a, {}) for a in ARMS])
        space = e.get_experiment("exp").config.feature_space()
        decisions = []
        for outcomes in rounds:
            dense = rng.uniform(-1, 1, 2).tolist()
            d = e.recommend("exp", Context(dense=dense), k=len(outcomes))
            for arm, o in zip(d.arm_ids, outcomes, strict=True):
                if o != NONE:
                    r = 1.0 if o == CLICK else 0.0
                    assert e.feedback(d.event_id, arm, r).outcome == "applied"
            x = space.vector(dense, {}, ())
            decisions.append(([ARMS.index(a) for a in d.arm_ids], outcomes, x))
            clock.t += 1.0
        clock.t += 120.0
        e.sweep()
        events = expected_events(model, decisions)
        state = e.posterior_state("exp")
        assert_closed_form(policy, state, events)
        counted = sum(1 for *_, w in events if w > 0)
        assert int(state["pulls"].sum()) == counted
        e.flush()
        checksum = e.state_checksum()
        # a restart without a checkpoint replays the stored rows, weights and all
        e2 = Engine(SQLiteStore(Path(tmp) / "state.db"), seed=seed, clock=clock)
        assert e2.state_checksum() == checksum
        assert_closed_form(policy, e2.posterior_state("exp"), events)
        e2.close()
        e.close()


def test_open_decision_keeps_its_clicks_across_a_restart(tmp_path: Path) -> None:
    """A cascade decision clicked at slot 0 before a restart: after it, the
    slots below the click still teach nothing when the window closes."""
    clock = Clock()
    e = Engine(SQLiteStore(tmp_path / "state.db"), seed=1, clock=clock)
    e.create_experiment(_config("cascade", "beta_ts"))
    e.add_arms("exp", [(a, {}) for a in ARMS])
    d = e.recommend("exp", Context(dense=[0.1, 0.2]), k=3)
    assert e.feedback(d.event_id, d.arm_ids[0], 1.0).outcome == "applied"
    e.flush()
    e2 = Engine(SQLiteStore(tmp_path / "state.db"), seed=1, clock=clock)
    clock.t += 120.0
    assert e2.sweep() == 2  # two default rows stored, of weight 0
    state = e2.posterior_state("exp")
    first = ARMS.index(d.arm_ids[0])
    want_alpha = np.ones(3)
    want_alpha[first] += 1.0
    np.testing.assert_array_equal(state["alpha"], want_alpha)
    np.testing.assert_array_equal(state["beta"], np.ones(3))
    rows = {r.arm_id: r.weight for r in e2.store.rewards("exp")}
    assert rows == {d.arm_ids[0]: 1.0, d.arm_ids[1]: 0.0, d.arm_ids[2]: 0.0}
    e2.close()
    e.close()


# ------------------------------------------------------- the Kafka learner
@settings(max_examples=60, deadline=None)
@given(model=st.sampled_from(MODELS), rounds=st.lists(outcomes_st, min_size=1, max_size=10))
def test_learner_join_counts_the_impressions_each_model_counts(
    model: str, rounds: list[list[int]]
) -> None:
    """The learner's join (Kafka mode) gives every impression the weight of
    the embedded engine: Feedback 1, default rewards as the model says."""
    decisions = []
    feedback = []
    for i, outcomes in enumerate(rounds):
        shown = list(range(len(outcomes)))[::-1] if i % 2 else list(range(len(outcomes)))
        decisions.append((f"ev{i}", shown, T0 + i))
        for s, o in zip(shown, outcomes, strict=True):
            if o != NONE:
                feedback.append((T0 + i + 0.5, f"ev{i}", ARMS[s], 1.0 if o == CLICK else 0.0))
    world = make_world(decisions, feedback, window=10.0)
    join = JoinState(lateness=0.0)
    join.assign(0)
    cfg = ExperimentConfig(
        "e",
        policy="lin_ts_disjoint",
        dim=2,
        click_model=model,
        examination=CURVE if model == "position_based" else (),
        reward_window_s=10.0,
    )
    join.set_experiment("e", cfg, {a: i for i, a in enumerate(ARMS)}, len(ARMS))
    assert join.take_decisions(0, decode_decisions(world.decisions)) is None
    join.take_rewards(0, decode_rewards(world.feedback))
    join.advance(T0 + 1000.0)
    cp = join.checkpoint()
    got = sorted((slot, x, r, w) for slot, x, r, _, w, _ in cp.events["e"])
    want = []
    for i, outcomes in enumerate(rounds):
        shown = decisions[i][1]
        x = np.array([1.0, float(i + 1)]).astype("<f8").tobytes()
        for a, _, r, w in expected_events(model, [(shown, outcomes, np.zeros(1))]):
            want.append((a, x, r, w))
    assert got == sorted(want)
