"""Forgetting by time (``half_life_s``): closed form, batch and order
invariance, restart, bad input, and the configuration around it."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit_engine import InvalidArgument
from bandit_engine.core import ExperimentConfig
from bandit_engine.features import ArmFeatures
from bandit_engine.policies import (
    DEFAULT_HALF_LIFE_S,
    PRIOR_MEAN,
    BetaTS,
    LinTSDisjoint,
    LinTSShared,
    LogisticTS,
    Policy,
)
from bandit_engine.store._codec import config_from_json

KINDS = ("beta_ts", "lin_ts_disjoint", "lin_ts_shared", "logistic_ts")
N_ARMS = 4
DIM = 3


def build(kind: str, half_life_s: float) -> Policy:
    p: Policy
    if kind == "beta_ts":
        p = BetaTS(1, half_life_s=half_life_s)
    elif kind == "lin_ts_disjoint":
        p = LinTSDisjoint(DIM, half_life_s=half_life_s)
    elif kind == "lin_ts_shared":
        p = LinTSShared(DIM, joint_dim=16, half_life_s=half_life_s)
    else:
        p = LogisticTS(DIM, half_life_s=half_life_s)
    for i in range(N_ARMS):
        feats = ArmFeatures.build(f"a{i}", categorical=[f"g={i % 2}"])
        p.add_arm(feats if kind == "lin_ts_shared" else None)
    return p


def events(seed: int, n: int, span: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arms, contexts, rewards and decision times (mostly increasing, some late)."""
    rng = np.random.default_rng(seed)
    arms = rng.integers(0, N_ARMS, n)
    xs = np.column_stack([np.ones(n), rng.normal(size=(n, DIM - 1))])
    rewards = rng.random(n)
    times = np.sort(rng.uniform(0.0, span, n))
    late = rng.random(n) < 0.2
    times[late] -= rng.uniform(0.0, span / 5, int(late.sum()))
    return arms, xs, rewards, times


def feed(p: Policy, ev: tuple[np.ndarray, ...], cuts: list[int]) -> None:
    arms, xs, rewards, times = ev
    bounds = [0, *sorted(set(cuts)), arms.shape[0]]
    for lo, hi in itertools.pairwise(bounds):
        if hi > lo:
            x = None if isinstance(p, BetaTS) else xs[lo:hi]
            p.update_batch(arms[lo:hi], x, rewards[lo:hi], times[lo:hi])


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), cuts=st.lists(st.integers(0, 120), max_size=8))
def test_batches_do_not_change_a_bit(kind: str, seed: int, cuts: list[int]) -> None:
    """The same events in the same order give the same state, bit for bit,
    however they are batched (a replay, a learner's commits)."""
    ev = events(seed, 120, 20_000.0)
    one, many = build(kind, 3600.0), build(kind, 3600.0)
    feed(one, ev, [])
    feed(many, ev, cuts)
    s1, s2 = one.state_dict(), many.state_dict()
    assert s1.keys() == s2.keys() and "clock" in s1
    for k in s1:
        assert np.array_equal(s1[k], s2[k]), k


@pytest.mark.parametrize("kind", ["beta_ts", "lin_ts_disjoint", "lin_ts_shared"])
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_order_does_not_change_the_posterior(kind: str, seed: int) -> None:
    """Shuffled events give the same statistics once both clocks stand at
    one time: the statistics are sums of weighted evidence."""
    arms, xs, rewards, times = events(seed, 150, 30_000.0)
    perm = np.random.default_rng(seed + 1).permutation(arms.shape[0])
    a, b = build(kind, 7200.0), build(kind, 7200.0)
    feed(a, (arms, xs, rewards, times), [50])
    feed(b, (arms[perm], xs[perm], rewards[perm], times[perm]), [30, 90])
    a.advance_clock(31_000.0)
    b.advance_clock(31_000.0)
    sa, sb = a.state_dict(), b.state_dict()
    for k in sa:
        np.testing.assert_allclose(sa[k], sb[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_closed_form_beta_and_linear() -> None:
    """alpha = alpha0 + sum w r, A = lam I + sum w x x', b = sum w (r - 0.5) x,
    w = 2^((t - clock) / h): played or not, every arm at the one clock."""
    h = 3600.0
    arms, xs, rewards, times = events(7, 400, 40_000.0)
    beta, lin = build("beta_ts", h), build("lin_ts_disjoint", h)
    feed(beta, (arms, xs, rewards, times), [100, 250])
    feed(lin, (arms, xs, rewards, times), [7])
    sb, sl = beta.state_dict(), lin.state_dict()
    clock = float(sb["clock"][0])
    assert clock == float(sl["clock"][0])
    # the clock stands within a grid step (1% of a half-life's weight) of the newest event
    assert times.max() - h * math.log2(1 / 0.99) < clock <= times.max()
    w = np.exp2((times - clock) / h)
    np.testing.assert_allclose(
        sb["alpha"], 1.0 + np.bincount(arms, w * rewards, N_ARMS), rtol=1e-12
    )
    np.testing.assert_allclose(
        sb["beta"], 1.0 + np.bincount(arms, w * (1 - rewards), N_ARMS), rtol=1e-12
    )
    for a in range(N_ARMS):
        m = arms == a
        a_ref = np.eye(DIM) + (w[m, None] * xs[m]).T @ xs[m]
        b_ref = (w[m] * (rewards[m] - PRIOR_MEAN)) @ xs[m]
        np.testing.assert_allclose(sl["A"][a], a_ref, rtol=1e-11)
        np.testing.assert_allclose(sl["b"][a], b_ref, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(sl["noise"][a, 1], w[m].sum(), rtol=1e-12)


def test_an_unplayed_arm_regains_its_uncertainty() -> None:
    """Evidence of an arm that is no longer played halves every half-life
    while other arms are rewarded; its posterior spread grows back."""
    h = 3600.0
    p = build("beta_ts", h)
    p.update_batch(np.zeros(200, dtype=np.int64), None, np.full(200, 0.3), np.zeros(200))
    std0 = p.posterior(0)[1]
    ones = np.ones(50, dtype=np.int64)
    p.update_batch(ones, None, np.full(50, 0.6), np.linspace(1.0, 2 * h, 50))
    a, b = p.state_dict()["alpha"][0], p.state_dict()["beta"][0]
    clock = float(p.state_dict()["clock"][0])
    f = 2.0 ** (-clock / h)
    assert 0.25 <= f < 0.26
    np.testing.assert_allclose([a, b], [1 + f * 60.0, 1 + f * 140.0], rtol=1e-12)
    assert p.posterior(0)[1] > 1.8 * std0
    assert p.pulls(0) == 200  # counters stay counts


@pytest.mark.parametrize("kind", KINDS)
def test_a_restart_continues_bit_for_bit(kind: str) -> None:
    arms, xs, rewards, times = events(3, 200, 50_000.0)
    whole = build(kind, 1800.0)
    feed(whole, (arms, xs, rewards, times), [])
    first = build(kind, 1800.0)
    feed(first, (arms[:80], xs[:80], rewards[:80], times[:80]), [])
    restarted = build(kind, 1800.0)
    restarted.load_state_dict(first.state_dict())
    feed(restarted, (arms[80:], xs[80:], rewards[80:], times[80:]), [33])
    s1, s2 = whole.state_dict(), restarted.state_dict()
    for k in s1:
        assert np.array_equal(s1[k], s2[k]), k


def test_no_times_and_unknown_times_count_whole() -> None:
    p, q = build("beta_ts", 600.0), build("beta_ts", 0.0)
    arms = np.array([0, 1, 1], dtype=np.int64)
    p.update_batch(arms, None, np.array([1.0, 0.0, 1.0]))
    p.update_batch(arms, None, np.array([1.0, 0.0, 1.0]), np.full(3, np.nan))
    q.update_batch(arms, None, np.array([1.0, 0.0, 1.0]), np.array([0.0, 1e6, 2e6]))
    q.update_batch(arms, None, np.array([1.0, 0.0, 1.0]), np.array([0.0, 1e6, 2e6]))
    for k in ("alpha", "beta"):
        assert np.array_equal(p.state_dict()[k], q.state_dict()[k])
    assert "clock" not in p.state_dict() and "clock" not in q.state_dict()


@pytest.mark.parametrize("kind", KINDS)
def test_bad_times_are_refused_and_change_nothing(kind: str) -> None:
    p = build(kind, 600.0)
    feed(p, events(1, 20, 1000.0), [])
    before = p.state_dict()
    x = None if kind == "beta_ts" else np.ones((2, DIM))
    arms = np.array([0, 1], dtype=np.int64)
    with pytest.raises(InvalidArgument, match=r"time\[1\]=inf"):
        p.update_batch(arms, x, np.array([0.5, 0.5]), np.array([5.0, np.inf]))
    with pytest.raises(InvalidArgument, match="3 times for 2 arms"):
        p.update_batch(arms, x, np.array([0.5, 0.5]), np.zeros(3))
    after = p.state_dict()
    for k in before:
        assert np.array_equal(before[k], after[k]), k
    for arr in after.values():
        assert np.isfinite(arr).all()


def test_config_half_life() -> None:
    cfg = ExperimentConfig("e")
    assert cfg.half_life_s == DEFAULT_HALF_LIFE_S == 86_400.0
    assert cfg.make_policy().half_life_s == DEFAULT_HALF_LIFE_S
    assert ExperimentConfig("e", half_life_s=0).make_policy().half_life_s == 0.0
    for bad in (30.0, -1.0, math.inf, 4e8):
        with pytest.raises(InvalidArgument, match=rf"half_life_s={bad!r}"):
            ExperimentConfig("e", half_life_s=bad)
    # a config stored before forgetting by time keeps its evidence
    stored = ExperimentConfig("e").to_dict()
    del stored["half_life_s"]
    assert ExperimentConfig.from_dict(config_from_json(json.dumps(stored))).half_life_s == 0.0


def test_default_policies_forget_by_a_day() -> None:
    for kind in KINDS:
        assert build(kind, DEFAULT_HALF_LIFE_S).params()["half_life_s"] == 86_400.0
    assert LinTSDisjoint(2).half_life_s == DEFAULT_HALF_LIFE_S
