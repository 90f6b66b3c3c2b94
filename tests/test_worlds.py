"""Synthetic worlds: reproducible streams, expected rewards, regret and bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bandit_engine import Context, InvalidArgument
from simulators._simkernels import reward_uniform, reward_uniforms
from simulators.worlds import (
    BernoulliWorld,
    DestinationsWorld,
    Round,
    SupervisedWorld,
    World,
    bernoulli_kl,
    lai_robbins_constant,
    make_labelled,
    make_world,
)

WORLD_CASES = [
    ("bernoulli", {"probs": [0.1, 0.4, 0.25]}),
    ("destinations", {"n_arms": 30, "new_arms": 4, "arrival_every": 7, "candidates": 12,
                      "drift_period": 50}),
    ("supervised", {"n_samples": 300, "n_features": 4, "n_classes": 3}),
]  # fmt: skip


def _same_round(a: Round, b: Round) -> bool:
    return (
        a.t == b.t
        and a.context == b.context
        and np.array_equal(a.x, b.x)
        and np.array_equal(a.arms, b.arms)
        and np.array_equal(a.means, b.means)
        and np.array_equal(a.uniforms, b.uniforms)
        and a.new_arms == b.new_arms
    )


@pytest.mark.parametrize(("name", "params"), WORLD_CASES)
def test_same_seed_same_stream(name: str, params: dict[str, object]) -> None:
    w1 = make_world(name, np.random.default_rng(5), **params)
    w2 = make_world(name, np.random.default_rng(5), **params)
    r1 = list(w1.rounds(1500))  # crosses a context chunk boundary
    assert all(_same_round(a, b) for a, b in zip(r1, w2.rounds(1500), strict=True))
    # a world replays its own stream, and a shorter run is a prefix of a longer one
    assert all(_same_round(a, b) for a, b in zip(r1, w1.rounds(1500), strict=True))
    assert all(_same_round(a, b) for a, b in zip(r1, w1.rounds(40), strict=False))
    other = make_world(name, np.random.default_rng(6), **params)
    assert not all(_same_round(a, b) for a, b in zip(r1[:20], other.rounds(20), strict=True))


@pytest.mark.parametrize(("name", "params"), WORLD_CASES)
def test_round_shapes(name: str, params: dict[str, object]) -> None:
    w = make_world(name, np.random.default_rng(0), **params)
    seen: set[int] = set()
    for rnd in w.rounds(200):
        seen.update(rnd.new_arms)
        assert rnd.x.shape == (w.space.dim,)
        assert rnd.arms.shape == rnd.means.shape == rnd.uniforms.shape
        assert set(rnd.arms.tolist()) <= seen, "an eligible arm was never announced"
        assert np.all(np.diff(rnd.arms) > 0)
        assert np.all((rnd.means >= 0) & (rnd.means <= 1))
        assert rnd.arms.shape[0] >= w.min_eligible()
    assert sorted(seen) == list(range(len(seen)))


def test_bernoulli_expected_rewards_match_empirical_means() -> None:
    probs = [0.05, 0.3, 0.5, 0.9]
    w = BernoulliWorld(np.random.default_rng(1), probs=probs)
    n = 20_000
    hits = np.zeros(len(probs))
    for rnd in w.rounds(n):
        hits += rnd.uniforms < rnd.means
    for p, h in zip(probs, hits, strict=True):
        assert abs(h / n - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_destinations_rewards_match_click_model_and_position_bias() -> None:
    w = DestinationsWorld(np.random.default_rng(2), n_arms=40, position_bias=1.0)
    k = 3
    got = np.zeros(k)
    expected = np.zeros(k)
    var = np.zeros(k)
    for rnd in w.rounds(6000):
        order = np.arange(k)  # a fixed list: the first three eligible arms
        r = rnd.rewards(order)
        p = rnd.means[order] * rnd.examination[:k]
        got += r
        expected += p
        var += p * (1 - p)
    assert np.all(np.abs(got - expected) < 4 * np.sqrt(var))
    assert np.allclose(rnd.examination[:3], [1.0, 0.5, 1 / 3])


def test_supervised_rewards_are_the_labels() -> None:
    x = np.arange(12, dtype=float).reshape(6, 2)
    y = np.array(["b", "a", "b", "c", "a", "c"])
    w = SupervisedWorld(np.random.default_rng(0), X=x, y=y, standardise=False)
    assert [w.arm(i).arm_id for i in range(3)] == ["class-a", "class-b", "class-c"]
    label = {0: 1, 1: 0, 2: 1, 3: 2, 4: 0, 5: 2}
    for rnd in w.rounds(50):
        row = int(np.flatnonzero((x == np.asarray(rnd.context.dense)).all(axis=1))[0])
        assert rnd.means.tolist() == [1.0 if a == label[row] else 0.0 for a in range(3)]
        assert rnd.x[0] == 1.0 and rnd.x[1:].tolist() == x[row].tolist()
        for a in range(3):
            assert rnd.rewards(np.array([a]))[0] == rnd.means[a]


def test_make_labelled_is_seeded_and_shaped() -> None:
    x1, y1 = make_labelled(np.random.default_rng(3), 100, 5, 4)
    x2, y2 = make_labelled(np.random.default_rng(3), 100, 5, 4)
    assert x1.shape == (100, 5) and y1.shape == (100,)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert set(y1.tolist()) <= {0, 1, 2, 3}


def test_sklearn_dataset_when_installed() -> None:
    pytest.importorskip("sklearn")
    w = make_world("supervised", np.random.default_rng(0), dataset="iris")
    assert w.n_arms == 3 and w.space.dim == 5


# ------------------------------------------------------------ destinations
def test_destinations_arrivals_candidates_and_drift() -> None:
    w = DestinationsWorld(
        np.random.default_rng(4), n_arms=10, new_arms=3, arrival_every=5, candidates=4,
        drift_period=100,
    )  # fmt: skip
    rounds = list(w.rounds(200))
    assert rounds[0].new_arms == tuple(range(10))
    arrivals = {r.t: r.new_arms for r in rounds if r.new_arms and r.t > 0}
    assert arrivals == {5: (10,), 10: (11,), 15: (12,)}
    assert all(r.arms.shape == (4,) for r in rounds)
    assert max(int(r.arms.max()) for r in rounds) == 12  # new arms get offered
    # drift: by drift_period the cross weights are an independent draw
    w0, w1 = w.preference_weights(0), w.preference_weights(100)
    assert not np.allclose(w0, w1)
    assert abs(np.corrcoef(w0.ravel(), w1.ravel())[0, 1]) < 0.3
    static = DestinationsWorld(np.random.default_rng(4), n_arms=10)
    assert static.preference_weights(0) is static.preference_weights(10_000)


def test_destinations_context_and_arm_features() -> None:
    w = DestinationsWorld(np.random.default_rng(0), n_arms=5, dim=64)
    rnd = next(w.rounds(1))
    names = {c.split("=")[0] for c in rnd.context.categorical}
    assert names == {"home", "device", "party", "trip"}
    assert np.array_equal(rnd.x, w.space.vector(None, rnd.context.numeric, rnd.context.categorical))
    arm = w.arm(0)
    assert {c.split("=")[0] for c in arm.categorical} == {"country", "type", "price"}
    assert arm.features().ids.shape[0] == 4  # three attributes + the identity feature


# ------------------------------------------------------------------ regret
def _round(means: list[float], exam: list[float]) -> Round:
    n = len(means)
    return Round(
        0, Context(), np.ones(1), np.arange(n), np.array(means), np.array(exam), (),
        np.full(n, 0.3),
    )  # fmt: skip


def test_regret_by_hand() -> None:
    rnd = _round([0.2, 0.5, 0.1], [1.0, 0.5, 0.25])
    assert rnd.best_value(1) == 0.5
    assert rnd.best_value(2) == pytest.approx(0.5 + 0.5 * 0.2)
    assert rnd.regret(np.array([1])) == 0.0
    assert rnd.regret(np.array([2])) == pytest.approx(0.4)
    assert rnd.regret(np.array([1, 0])) == pytest.approx(0.0)
    # 0.2 on top, 0.5 half-examined: 0.45 against the best 0.6
    assert rnd.regret(np.array([0, 1])) == pytest.approx(0.15)
    assert rnd.regret(np.array([2, 0, 1])) == pytest.approx(
        (0.5 + 0.1 + 0.025) - (0.1 + 0.1 + 0.125)
    )
    # uniforms are 0.3: a slot pays when 0.3 < mean * examination
    assert rnd.rewards(np.array([1, 0])).tolist() == [1.0, 0.0]
    rewards, regret = rnd.play(np.array([0, 1]))
    assert rewards.tolist() == [0.0, 0.0] and regret == pytest.approx(0.15)


def test_regret_is_never_negative() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 8))
        rnd = _round(rng.random(n).tolist(), np.sort(rng.random(n))[::-1].tolist())
        k = int(rng.integers(1, n + 1))
        assert rnd.regret(rng.permutation(n)[:k]) >= 0.0


def test_bad_rankings_name_the_value() -> None:
    rnd = _round([0.2, 0.5], [1.0, 1.0])
    with pytest.raises(InvalidArgument, match=r"\[0, 0\]"):
        rnd.regret(np.array([0, 0]))
    with pytest.raises(InvalidArgument, match=r"\[5\]"):
        rnd.rewards(np.array([5]))
    with pytest.raises(InvalidArgument, match="k=3"):
        rnd.best_value(3)


# ------------------------------------------------------------- Lai-Robbins
def test_bernoulli_kl_by_hand() -> None:
    # 0.25 ln(0.25/0.5) + 0.75 ln(0.75/0.5)
    assert bernoulli_kl(0.25, 0.5) == pytest.approx(0.1308120359, rel=1e-9)
    assert bernoulli_kl(0.0, 0.5) == pytest.approx(math.log(2.0))
    assert bernoulli_kl(0.3, 0.3) == 0.0
    assert bernoulli_kl(0.3, 1.0) == math.inf


def test_lai_robbins_constant_by_hand() -> None:
    # one suboptimal arm: 0.25 / 0.1308120359
    assert lai_robbins_constant([0.5, 0.25]) == pytest.approx(1.911139126, rel=1e-9)
    # two arms at 0.5 against 0.9 (tied best arms add nothing):
    # KL(0.5, 0.9) = 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1) = 0.5108256238
    assert lai_robbins_constant([0.9, 0.5, 0.5, 0.9]) == pytest.approx(
        2 * 0.4 / 0.5108256238, rel=1e-9
    )
    assert lai_robbins_constant([1.0, 0.5]) == 0.0


def test_bernoulli_world_bound() -> None:
    w = BernoulliWorld(np.random.default_rng(0), probs=[0.5, 0.25])
    t = np.array([1.0, 10.0, 1000.0])
    bound = w.regret_lower_bound(t, 1)
    assert bound is not None
    assert bound == pytest.approx(1.911139126 * np.log(t), rel=1e-9)
    assert w.regret_lower_bound(t, 2) is None
    d = DestinationsWorld(np.random.default_rng(0), n_arms=5)
    assert d.regret_lower_bound(t, 1) is None


# ----------------------------------------------------------- reward stream
def test_reward_uniforms_are_uniform_and_counter_based() -> None:
    arms = np.arange(50, dtype=np.int64)
    u = np.concatenate([reward_uniforms(123, t, arms) for t in range(400)])
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    assert counts.min() > 0.9 * u.shape[0] / 10
    assert reward_uniforms(123, 7, arms)[9] == reward_uniform(123, 7, 9)
    assert reward_uniform(123, 7, 9) != reward_uniform(124, 7, 9)


# -------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("nowhere", {}, "unknown world 'nowhere'"),
        ("bernoulli", {"probs": [0.5, 1.5]}, r"probs\[1\]=1.5"),
        ("bernoulli", {"probs": [0.5]}, "at least 2"),
        ("bernoulli", {"arms": 3}, "no parameter 'arms'"),
        ("destinations", {"n_arms": 5, "candidates": 9}, "candidates=9"),
        ("destinations", {"drift_period": 0}, "drift_period=0"),
        ("destinations", {"dim": 0}, "dim=0"),
        ("supervised", {"dataset": "mnist"}, "dataset 'mnist'"),
        ("supervised", {"X": [[1.0], [2.0]], "y": [0, 0]}, "1 class"),
    ],
)
def test_bad_world_parameters_name_the_value(
    name: str, params: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        make_world(name, np.random.default_rng(0), **params)


def test_world_is_abstract() -> None:
    with pytest.raises(TypeError):
        World()  # type: ignore[abstract]
