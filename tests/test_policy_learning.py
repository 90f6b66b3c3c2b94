"""Statistical tests: the policies learn in small simulated worlds.

Each simulation is seeded, so the outcome is reproducible; the thresholds are
far from what the policies reach (typically 99% on the best arm) and far
from what a policy that ignores the signal gets (50% or 33%).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from bandit_engine.features import ArmFeatures
from bandit_engine.policies import BetaTS, LinTSDisjoint, LinTSShared, LogisticTS, Policy

Seeds = Callable[[int], range]  # the statistical_seeds fixture (conftest.py)


# ------------------------------------------------------------ Bernoulli arms
def run_bernoulli(seed: int, probs: np.ndarray, rounds: int) -> np.ndarray:
    """Thompson sampling with one pull per round; returns the arm pulled each round."""
    rng = np.random.default_rng(seed)
    world = np.random.default_rng(seed + 10_000)
    p = BetaTS()
    for _ in probs:
        p.add_arm()
    arms = np.arange(probs.shape[0])
    picks = np.empty(rounds, dtype=np.int64)
    for t in range(rounds):
        a = int(p.rank(arms, None, 1, rng).order[0])
        picks[t] = a
        p.update(a, None, float(world.random() < probs[a]))
    return picks


def test_beta_ts_finds_the_better_bernoulli_arm(statistical_seeds: Seeds) -> None:
    probs = np.array([0.1, 0.3])
    shares = np.array(
        [np.mean(run_bernoulli(seed, probs, 2000)[-500:] == 1) for seed in statistical_seeds(20)]
    )
    assert np.sum(shares >= 0.9) >= 19, shares
    # and it explores at the start: both arms are pulled in every run
    assert all(
        np.bincount(run_bernoulli(s, probs, 50), minlength=2).min() > 0
        for s in statistical_seeds(5)
    )


# ------------------------------------------------------- contextual world
N_SEGMENTS = 3
#: CLICK[segment, arm]: arm i is best in segment i
CLICK = np.full((N_SEGMENTS, N_SEGMENTS), 0.1) + 0.4 * np.eye(N_SEGMENTS)


def segment_context(seg: int) -> np.ndarray:
    x = np.zeros(1 + N_SEGMENTS)
    x[0] = 1.0  # intercept
    x[1 + seg] = 1.0
    return x


def run_contextual(policy: Policy, seed: int, rounds: int = 2000, batch: int = 10) -> np.ndarray:
    """Rank for each round's context; feedback arrives in batches of ``batch`` rounds.

    Returns, for each round, whether the arm ranked first was the segment's best.
    """
    rng = np.random.default_rng(seed)
    world = np.random.default_rng(seed + 10_000)
    arms = np.arange(N_SEGMENTS)
    segs = world.integers(0, N_SEGMENTS, rounds)
    coins = world.random(rounds)
    xs = np.stack([segment_context(int(s)) for s in segs])
    picked = np.empty(rounds, dtype=np.int64)
    for start in range(0, rounds, batch):
        stop = min(start + batch, rounds)
        for t in range(start, stop):
            picked[t] = policy.rank(arms, xs[t], 1, rng).order[0]
        rewards = (coins[start:stop] < CLICK[segs[start:stop], picked[start:stop]]).astype(float)
        policy.update_batch(picked[start:stop], xs[start:stop], rewards)
    return picked == segs


def three_arms(policy: Policy, features: bool = False) -> Policy:
    for i in range(N_SEGMENTS):
        policy.add_arm(
            ArmFeatures.build(f"offer-{i}", categorical=[f"theme={i}"]) if features else None
        )
    return policy


POLICY_FACTORIES: dict[str, Callable[[], Policy]] = {
    "lin_ts_disjoint": lambda: three_arms(LinTSDisjoint(1 + N_SEGMENTS)),
    "lin_ts_shared": lambda: three_arms(LinTSShared(1 + N_SEGMENTS, joint_dim=64), True),
    "logistic_ts": lambda: three_arms(LogisticTS(1 + N_SEGMENTS)),
}


@pytest.mark.parametrize("kind", sorted(POLICY_FACTORIES))
def test_contextual_policy_picks_the_segments_best_arm(kind: str, statistical_seeds: Seeds) -> None:
    shares = np.array(
        [
            np.mean(run_contextual(POLICY_FACTORIES[kind](), seed)[-500:])
            for seed in statistical_seeds(8)
        ]
    )
    assert np.all(shares >= 0.8), shares
    assert np.mean(shares) >= 0.9, shares


def test_context_free_policy_cannot_solve_the_contextual_world(statistical_seeds: Seeds) -> None:
    """Control: the world needs the context. Beta TS, which ignores it, stays near 1/3."""
    shares = np.array(
        [np.mean(run_contextual(three_arms(BetaTS()), s)[-500:]) for s in statistical_seeds(4)]
    )
    assert np.all(shares < 0.5), shares


def test_posteriors_are_calibrated_to_the_click_rates() -> None:
    """With uniformly random logged traffic the posterior means estimate CLICK."""
    rng = np.random.default_rng(99)
    n = 9000
    segs = rng.integers(0, N_SEGMENTS, n)
    arms = rng.integers(0, N_SEGMENTS, n)
    xs = np.stack([segment_context(int(s)) for s in segs])
    rewards = (rng.random(n) < CLICK[segs, arms]).astype(float)
    lin = three_arms(LinTSDisjoint(1 + N_SEGMENTS))
    logit = three_arms(LogisticTS(1 + N_SEGMENTS))
    for p in (lin, logit):
        p.update_batch(arms, xs, rewards)
    for seg in range(N_SEGMENTS):
        x = segment_context(seg)
        for a in range(N_SEGMENTS):
            cell = (segs == seg) & (arms == a)
            empirical = rewards[cell].mean()  # ~1000 events: sd ~0.015
            m_lin, s_lin = lin.posterior(a, x)
            m_log, s_log = logit.posterior(a, x)
            p_log = 1.0 / (1.0 + np.exp(-m_log))
            # the ridge prior shrinks a little; both land near the truth and the data
            assert abs(m_lin - CLICK[seg, a]) < 0.05, (seg, a, m_lin)
            assert abs(m_lin - empirical) < 0.02, (seg, a, m_lin, empirical)
            assert abs(p_log - CLICK[seg, a]) < 0.05, (seg, a, p_log)
            assert abs(p_log - empirical) < 0.02, (seg, a, p_log, empirical)
            # and they are confident: about 0.25 / sqrt(1000 / 2) and a logit sd of ~0.1
            assert s_lin < 0.02
            assert s_log < 0.2


# --------------------------------------------------------------- cold start
def test_shared_model_cold_start_transfers_through_arm_features(
    statistical_seeds: Seeds,
) -> None:
    """A new arm inherits what the shared weights learned about its attributes."""
    for seed in statistical_seeds(3):
        rng = np.random.default_rng(seed)
        p = LinTSShared(1 + N_SEGMENTS, joint_dim=128)
        p.add_arm(ArmFeatures.build("hotel-known-good", categorical=["type=beach"]))
        p.add_arm(ArmFeatures.build("hotel-known-bad", categorical=["type=city"]))
        rate = np.array([0.6, 0.1])
        n = 1000
        arms = rng.integers(0, 2, n)
        xs = np.stack([segment_context(int(s)) for s in rng.integers(0, N_SEGMENTS, n)])
        p.update_batch(arms, xs, (rng.random(n) < rate[arms]).astype(float))

        beach = p.add_arm(ArmFeatures.build("hotel-new-1", categorical=["type=beach"]))
        city = p.add_arm(ArmFeatures.build("hotel-new-2", categorical=["type=city"]))
        other = p.add_arm(ArmFeatures.build("hotel-new-3", categorical=["type=ski"]))
        assert p.pulls(beach) == p.pulls(city) == 0
        for seg in range(N_SEGMENTS):
            x = segment_context(seg)
            m_beach, s_beach = p.posterior(beach, x)
            m_city, _ = p.posterior(city, x)
            m_other, _ = p.posterior(other, x)
            # the known arms' effects are split between their shared type feature and
            # their identity feature, so a newcomer inherits a part of the gap (0.5)
            assert m_beach > m_city + 0.15, (seed, seg, m_beach, m_city)
            assert m_beach > m_other
            # still uncertain: the newcomer's own identity weights are at the prior
            assert s_beach > p.posterior(0, x)[1]
            props = p.propensities(np.array([beach, city]), x, 20_000, rng)
            assert props[0] > 0.55, props
