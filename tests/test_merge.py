"""Posteriors as sums (``bandit_engine.policies.merge``): evidence learned
apart from disjoint events and absorbed gives the posterior of learning them
all in one place, with and without forgetting by time; bad parts change
nothing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_forgetting import build, events

from bandit_engine import InvalidArgument
from bandit_engine.policies import LinTSDisjoint, LogisticTS, Policy
from bandit_engine.policies.merge import absorb, evidence, evidence_of, mergeable

SUMS = ("beta_ts", "lin_ts_disjoint", "lin_ts_shared")


def _apply(p: Policy, ev: tuple[np.ndarray, ...], idx: np.ndarray) -> None:
    arms, xs, rewards, times = ev
    if idx.size:
        x = None if not p.contextual else xs[idx]
        p.update_batch(arms[idx], x, rewards[idx], times[idx])


def _learned_apart(
    kind: str, half_life: float, ev: tuple[np.ndarray, ...], owner: np.ndarray, k: int
) -> Policy:
    """Events of owner 0 learned by the base, those of owner i by part i."""
    base = build(kind, half_life)
    _apply(base, ev, np.flatnonzero(owner == 0))
    parts = []
    for i in range(1, k + 1):
        fresh = build(kind, half_life)
        prior = fresh.state_dict()
        _apply(fresh, ev, np.flatnonzero(owner == i))
        parts.append(evidence(fresh, prior))
    absorb(base, parts)
    return base


def _assert_same_state(a: Policy, b: Policy) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        np.testing.assert_allclose(sa[key], sb[key], rtol=1e-9, atol=1e-9, err_msg=key)


@pytest.mark.parametrize("kind", SUMS)
@pytest.mark.parametrize("half_life", [0.0, 3600.0])
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), k=st.integers(1, 4), data=st.data())
def test_evidence_learned_apart_and_absorbed_is_the_posterior_of_all_events(
    kind: str, half_life: float, seed: int, k: int, data: st.DataObject
) -> None:
    ev = events(seed, 90, 30_000.0)
    owner = np.array(data.draw(st.lists(st.integers(0, k), min_size=90, max_size=90)))
    together = build(kind, half_life)
    _apply(together, ev, np.arange(90))
    apart = _learned_apart(kind, half_life, ev, owner, k)
    _assert_same_state(together, apart)
    for arm in range(together.n_arms):
        m1, s1 = together.posterior(arm)
        m2, s2 = apart.posterior(arm)
        assert m2 == pytest.approx(m1, rel=1e-9, abs=1e-12)
        assert s2 == pytest.approx(s1, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("kind", SUMS)
@pytest.mark.parametrize("half_life", [0.0, 3600.0])
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 60), weighted=st.booleans())
def test_evidence_summed_directly_is_the_evidence_of_updating(
    kind: str, half_life: float, seed: int, n: int, weighted: bool
) -> None:
    """``evidence_of`` (sums, no caches) against ``update_batch`` on a fresh
    policy; some times unknown (NaN), some weights 0 or fractional."""
    arms, xs, rewards, times = events(seed, n, 30_000.0)
    rng = np.random.default_rng(seed)
    times[rng.random(n) < 0.1] = np.nan
    weights = rng.choice([0.0, 0.3, 1.0], size=n) if weighted else None
    fresh = build(kind, half_life)
    prior = fresh.state_dict()
    x = xs if fresh.contextual else None
    fresh.update_batch(arms, x, rewards, times, weights)
    want = evidence(fresh, prior)
    policy = build(kind, half_life)
    before = policy.state_dict()
    got = evidence_of(policy, arms, x, rewards, times, weights)
    assert got.keys() == want.keys()
    np.testing.assert_array_equal(got["arms"], want["arms"])
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-9, atol=1e-9, err_msg=key)
    after = policy.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("kind", SUMS)
def test_no_events_are_no_evidence(kind: str) -> None:
    policy = build(kind, 3600.0)
    part = evidence_of(policy, np.zeros(0, dtype=np.int64), None, np.zeros(0))
    assert part["arms"].size == 0 and part["pulls"].size == 0 and "clock" not in part
    before = policy.state_dict()
    absorb(policy, [part])
    after = policy.state_dict()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


def test_evidence_of_bad_events_names_the_bad_value() -> None:
    policy = build("lin_ts_disjoint", 0.0)
    arms, xs, rewards, times = events(0, 5, 100.0)
    rewards[3] = 1.5
    with pytest.raises(InvalidArgument, match=r"reward\[3\]=1.5"):
        evidence_of(policy, arms, xs, rewards, times)


def test_a_part_held_at_an_older_clock_counts_less_by_the_half_life() -> None:
    """Beta-Bernoulli, closed form: a success decided one half-life before
    the newest event counts one half."""
    base, part = build("beta_ts", 3600.0), build("beta_ts", 3600.0)
    base.update(0, None, 1.0, time=7200.0)
    prior = part.state_dict()
    part.update(1, None, 1.0, time=3600.0)
    absorb(base, [evidence(part, prior)])
    alpha = base.state_dict()["alpha"]
    assert alpha[1] == pytest.approx(1.0 + 0.5, rel=1e-2)  # 1% grid: within one step
    assert alpha[0] == pytest.approx(2.0, rel=1e-2)
    assert base.pulls(1) == 1


def test_a_part_may_know_fewer_arms_never_more() -> None:
    base, small = build("lin_ts_disjoint", 0.0), LinTSDisjoint(3)
    small.add_arm()
    prior = small.state_dict()
    small.update(0, np.array([1.0, 0.5, -0.5]), 1.0)
    absorb(base, [evidence(small, prior)])
    assert base.pulls(0) == 1 and base.pulls(1) == 0
    big = build("lin_ts_disjoint", 0.0)
    big.add_arm()
    prior = big.state_dict()
    big.update(4, np.array([1.0, 0.5, -0.5]), 1.0)
    before = base.state_dict()
    with pytest.raises(InvalidArgument, match="names arms"):
        absorb(base, [evidence(big, prior)])
    after = base.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_bad_parts_name_what_is_wrong_and_change_nothing() -> None:
    base = build("beta_ts", 0.0)
    base.update(2, None, 1.0)
    before = base.state_dict()
    fresh = build("beta_ts", 0.0)
    prior = fresh.state_dict()
    fresh.update(1, None, 0.0)
    good = evidence(fresh, prior)
    nan = dict(good, alpha=np.array([np.nan, 0.0, 0.0, 0.0]))
    with pytest.raises(InvalidArgument, match=r"part\[1\]\['alpha'\] holds a NaN"):
        absorb(base, [good, nan])
    with pytest.raises(InvalidArgument, match=r"part\[0\] has no 'beta'"):
        absorb(base, [{k: v for k, v in good.items() if k != "beta"}])
    after = base.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_what_is_not_a_sum_is_refused() -> None:
    logistic = LogisticTS(3)
    logistic.add_arm()
    assert not mergeable(logistic)
    with pytest.raises(InvalidArgument, match="logistic_ts"):
        evidence(logistic, logistic.state_dict())
    decaying = LinTSDisjoint(3, decay=0.99)
    decaying.add_arm()
    assert not mergeable(decaying)
    assert mergeable(LinTSDisjoint(3))


def test_an_event_whose_weight_underflows_teaches_nothing_either_way() -> None:
    arms, xs, rewards = np.array([0, 1]), None, np.array([1.0, 1.0])
    times = np.array([1.7e9, 1.0])  # the second is far too old to count
    fresh = build("beta_ts", 3600.0)
    prior = fresh.state_dict()
    fresh.update_batch(arms, xs, rewards, times)
    want = evidence(fresh, prior)
    got = evidence_of(build("beta_ts", 3600.0), arms, xs, rewards, times)
    np.testing.assert_array_equal(got["arms"], want["arms"])
    np.testing.assert_array_equal(got["pulls"], want["pulls"])


@pytest.mark.parametrize("clock", [[np.nan], [np.inf], [1.0, 2.0]])
def test_a_part_with_a_bad_clock_is_refused_and_changes_nothing(clock: list[float]) -> None:
    base = build("beta_ts", 3600.0)
    base.update(0, None, 1.0, time=7200.0)
    before = base.state_dict()
    fresh = build("beta_ts", 3600.0)
    prior = fresh.state_dict()
    fresh.update(1, None, 1.0, time=3600.0)
    part = dict(evidence(fresh, prior), clock=np.array(clock))
    with pytest.raises(InvalidArgument, match=r"part\[0\] has clock"):
        absorb(base, [part])
    after = base.state_dict()
    assert all(np.array_equal(before[k], after[k], equal_nan=True) for k in before)
