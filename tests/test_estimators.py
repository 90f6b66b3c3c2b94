"""Off-policy estimators: hand-computed values, coverage of the truth, seeds."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from simulators import estimators as est
from simulators.estimators.refit import refit_bootstrap
from simulators.logs import BanditLog, SyntheticWorld
from simulators.replay import policy_for_log


def tiny_log() -> BanditLog:
    # four rounds over three arms: (logged arm, reward, logging propensity)
    return BanditLog(
        arm_ids=("a", "b", "c"),
        x=np.ones((4, 1)),
        shown=np.array([[0], [1], [1], [2]]),
        propensity=np.array([[0.5], [0.25], [0.25], [0.25]]),
        reward=np.array([[1.0], [0.0], [1.0], [1.0]]),
        event_id=("e1", "e2", "e3", "e4"),
        timestamp=np.arange(4.0),
    )


def tiny_target(log: BanditLog) -> est.TargetProbs:
    # target probabilities of every arm on each row
    pi = np.array(
        [
            [0.8, 0.1, 0.1],  # logged a: pi = 0.8
            [0.5, 0.1, 0.4],  # logged b: pi = 0.1
            [0.3, 0.5, 0.2],  # logged b: pi = 0.5
            [0.4, 0.4, 0.2],  # logged c: pi = 0.2
        ]
    )
    return est.matrix_target(log, pi, name="tiny")


def test_ips_and_snips_match_hand_computation() -> None:
    log = tiny_log()
    terms = est.OPETerms.build(log, tiny_target(log), reward_model=False)
    # w = pi / p:  0.8/0.5 = 1.6,  0.1/0.25 = 0.4,  0.5/0.25 = 2.0,  0.2/0.25 = 0.8
    np.testing.assert_allclose(terms.weights, [1.6, 0.4, 2.0, 0.8])
    # IPS = (1.6*1 + 0.4*0 + 2.0*1 + 0.8*1) / 4 = 4.4 / 4 = 1.1
    assert est.ips(terms) == pytest.approx(1.1, rel=1e-12)
    # SNIPS = 4.4 / (1.6 + 0.4 + 2.0 + 0.8) = 4.4 / 4.8 = 0.91666...
    assert est.snips(terms) == pytest.approx(11 / 12, rel=1e-12)


def test_dm_and_dr_match_hand_computation() -> None:
    log = tiny_log()
    target = tiny_target(log)
    # a reward model that says q(x, a) = 0.5, q(x, b) = 0.2, q(x, c) = 0.9 everywhere
    q = np.array([0.5, 0.2, 0.9])
    q_target = np.array(
        [
            0.8 * 0.5 + 0.1 * 0.2 + 0.1 * 0.9,  # 0.51
            0.5 * 0.5 + 0.1 * 0.2 + 0.4 * 0.9,  # 0.63
            0.3 * 0.5 + 0.5 * 0.2 + 0.2 * 0.9,  # 0.43
            0.4 * 0.5 + 0.4 * 0.2 + 0.2 * 0.9,
        ]
    )  # 0.46
    q_logged = q[log.action]  # 0.5, 0.2, 0.2, 0.9
    t = est.OPETerms(log.logged_reward, log.logged_propensity, target.logged, q_logged, q_target)
    # DM = (0.51 + 0.63 + 0.43 + 0.46) / 4 = 2.03 / 4 = 0.5075
    assert est.dm(t) == pytest.approx(0.5075, rel=1e-12)
    # DR = DM + mean(w (r - q_logged))
    #    = 0.5075 + (1.6*0.5 + 0.4*(-0.2) + 2.0*0.8 + 0.8*0.1) / 4
    #    = 0.5075 + (0.8 - 0.08 + 1.6 + 0.08) / 4 = 0.5075 + 0.6 = 1.1075
    assert est.dr(t) == pytest.approx(1.1075, rel=1e-12)


def test_unknown_estimator_and_missing_rewards_are_refused() -> None:
    log = tiny_log()
    terms = est.OPETerms.build(log, tiny_target(log), reward_model=False)
    with pytest.raises(ValueError, match="unknown estimator 'magic'"):
        est.estimate(terms, ["magic"])
    with pytest.raises(ValueError, match="dm needs a reward model"):
        est.estimate(terms, ["dm"])
    reward = log.reward.copy()
    reward[2, 0] = np.nan
    holed = BanditLog(
        log.arm_ids, log.x, log.shown, log.propensity, reward, log.event_id, log.timestamp
    )
    with pytest.raises(ValueError, match="1 rows have no reward"):
        est.OPETerms.build(holed, tiny_target(holed), reward_model=False)
    assert holed.complete().n == 3


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def test_truth_inside_95pct_interval_in_90pct_of_seeds(
    statistical_seeds: Callable[[int], range],
) -> None:
    world = SyntheticWorld.make(n_contexts=20, n_arms=5, dim=4, seed=11)
    rng = np.random.default_rng(5)
    logging = softmax(rng.standard_normal(world.mu.shape))  # non-uniform, known
    target = softmax(3.0 * world.mu + 0.5 * rng.standard_normal(world.mu.shape))
    truth = world.value(target)
    assert abs(truth - world.value(logging)) > 0.02  # the estimators have work to do
    names = ["ips", "snips", "dr"]
    covered = dict.fromkeys(names, 0)
    seeds = 200
    for seed in statistical_seeds(seeds):
        log, m = world.sample(3000, logging, seed=seed)
        tp = est.matrix_target(log, target[m], seed=seed)
        for e in est.evaluate(log, tp, names, n_boot=400, seed=seed):
            covered[e.estimator] += e.covers(truth)
    for name in names:
        assert covered[name] / seeds >= 0.90, (name, covered[name], seeds)


def test_engine_policy_evaluated_through_its_own_propensities() -> None:
    world = SyntheticWorld.make(n_contexts=8, n_arms=4, dim=3, seed=3)
    train, _ = world.sample(400, seed=100)
    policy = policy_for_log(train, "lin_ts_disjoint", {"noise_scale": 0.5})
    policy.update_batch(train.action, train.x, train.logged_reward)
    # exact-enough pi of the frozen policy per context, for the truth
    rng = np.random.default_rng(0)
    arms = np.arange(4)
    pi = np.array([policy.propensities(arms, x, 200_000, rng) for x in world.contexts])
    truth = world.value(pi)
    log, _ = world.sample(3000, seed=7)
    target = est.policy_target(policy, log, draws=2000, seed=1)
    assert target.name == "lin_ts_disjoint"
    res = {e.estimator: e for e in est.evaluate(log, target, n_boot=500, seed=2)}
    assert set(res) == {"logged", "replay", "ips", "snips", "dm", "dr"}
    for name in ("ips", "snips", "dr", "replay"):
        assert res[name].covers(truth), (name, res[name], truth)
    # the frozen policy was not changed by being evaluated
    assert policy.pulls(0) + policy.pulls(1) + policy.pulls(2) + policy.pulls(3) == 400


def test_progressive_mode_trains_on_each_row_after_scoring_it() -> None:
    world = SyntheticWorld.make(n_contexts=4, n_arms=3, dim=2, seed=1)
    log, _ = world.sample(50, seed=0)
    fixed = policy_for_log(log, "lin_ts_disjoint")
    prog = policy_for_log(log, "lin_ts_disjoint")
    t_fixed = est.policy_target(fixed, log, draws=100, seed=0)
    t_prog = est.policy_target(prog, log, draws=100, seed=0, learn=True)
    assert sum(fixed.pulls(a) for a in range(3)) == 0
    assert sum(prog.pulls(a) for a in range(3)) == 50
    # row 0 is scored before any update: both modes agree there, then part ways
    np.testing.assert_array_equal(t_fixed.p[:3], t_prog.p[:3])
    assert not np.array_equal(t_fixed.p, t_prog.p)
    assert t_prog.name == "lin_ts_disjoint (progressive)"


def test_bootstrap_is_reproducible_from_its_seed() -> None:
    world = SyntheticWorld.make(seed=2)
    log, m = world.sample(500, seed=3)
    tp = est.matrix_target(log, world.uniform()[m])
    a = est.evaluate(log, tp, n_boot=200, seed=9)
    b = est.evaluate(log, tp, n_boot=200, seed=9)
    c = est.evaluate(log, tp, n_boot=200, seed=10)
    assert [e.to_dict() for e in a] == [e.to_dict() for e in b]
    assert [e.ci_low for e in a] != [e.ci_low for e in c]
    # the uniform target on a uniform log: IPS is exactly the logged mean
    by = {e.estimator: e for e in a}
    assert by["ips"].value == pytest.approx(by["logged"].value, rel=1e-12)


def test_bootstrap_kernel_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    num = rng.random((2, 30))
    den = rng.random((2, 30)) + 0.5
    boots = est.bootstrap(num, den, n_boot=5, seed=4)
    idx = np.random.default_rng(4).integers(0, 30, size=(5, 30))
    expect = num[:, idx].sum(axis=2) / den[:, idx].sum(axis=2)
    np.testing.assert_allclose(boots, expect, rtol=1e-12)


def test_ridge_reward_model_recovers_a_linear_truth() -> None:
    rng = np.random.default_rng(1)
    x = np.column_stack([np.ones(4000), rng.standard_normal((4000, 2))])
    arms = rng.integers(0, 3, 4000)
    theta = np.array([[0.3, 0.1, 0.0], [0.5, -0.1, 0.05], [0.2, 0.0, 0.1]])
    r = np.einsum("ij,ij->i", x, theta[arms]) + 0.01 * rng.standard_normal(4000)
    model = est.RidgeRewardModel(1e-3).fit(x, arms, r, 3)
    probe = np.array([[1.0, 0.5, -1.0]] * 3)
    np.testing.assert_allclose(
        model.predict(probe, np.arange(3)), np.einsum("ij,ij->i", probe, theta), atol=2e-3
    )


def test_dm_interval_covers_the_truth_when_the_model_is_refitted_per_resample(
    statistical_seeds: Callable[[int], range],
) -> None:
    # one-hot contexts: the per-arm ridge model is saturated (cell means), so it is
    # correctly specified and a confidence interval for DM can exist; the model's
    # own error is most of DM's error, and only refitting per resample covers it
    base = SyntheticWorld.make(n_contexts=8, n_arms=4, dim=3, seed=21)
    world = SyntheticWorld(np.eye(8), base.weights, base.mu)
    rng = np.random.default_rng(3)
    logging = softmax(0.5 * rng.standard_normal(world.mu.shape))
    target = softmax(4.0 * world.mu)
    truth = world.value(target)
    assert truth - world.value(logging) > 0.1
    seeds = 150
    refit = fixed = 0
    for seed in statistical_seeds(seeds):
        log, m = world.sample(1000, logging, seed=seed)
        terms = est.OPETerms.build(log, est.matrix_target(log, target[m]), lam=1e-3, seed=seed)
        (a,) = est.estimate(terms, ["dm"], n_boot=200, seed=seed)
        (b,) = est.estimate(terms, ["dm"], n_boot=200, seed=seed, model_boot=0)
        refit += a.covers(truth)
        fixed += b.covers(truth)
    assert refit / seeds >= 0.88, refit
    assert fixed / seeds <= 0.6, fixed  # the fixed-model interval is far too narrow
    assert a.note == est.estimates.DM_NOTE_REFIT and "only if the model is right" in a.note
    assert b.note.startswith("not a confidence interval")


def test_refit_bootstrap_matches_a_plain_refit() -> None:
    world = SyntheticWorld.make(n_contexts=12, n_arms=4, dim=3, seed=4)
    log, m = world.sample(600, seed=1)
    target = softmax(np.random.default_rng(0).standard_normal(world.mu.shape))
    terms = est.OPETerms.build(log, est.matrix_target(log, target[m]), seed=2)
    assert terms.model is not None and terms.model.refit is not None
    refit, w = terms.model.refit, terms.weights
    # all counts one: the resample is the log, and DM / DR are the point estimates
    dm, dr = refit_bootstrap(refit, w, n_boot=1, seed=0, counts=np.ones((1, log.n)))
    assert dm[0] == pytest.approx(est.dm(terms), rel=1e-10)
    assert dr[0] == pytest.approx(est.dr(terms), rel=1e-10)
    # bootstrap counts: the batched refit equals fitting each fold's model on the
    # resampled rows one by one
    c = np.bincount(np.random.default_rng(5).integers(0, log.n, log.n), minlength=log.n)
    q_logged, q_target = refit.crossfit(c.astype(np.float64))
    dm, dr = refit_bootstrap(refit, w, n_boot=1, seed=0, counts=c[None].astype(np.float64))
    assert dm[0] == pytest.approx(c @ q_target / log.n, rel=1e-10)
    assert dr[0] == pytest.approx(c @ (q_target + w * (log.logged_reward - q_logged)) / log.n)
    # seeded, and the estimate reports how many resamples refitted the model
    a = est.estimate(terms, ["dm", "dr", "ips"], n_boot=50, seed=3, model_boot=20)
    b = est.estimate(terms, ["dm", "dr", "ips"], n_boot=50, seed=3, model_boot=20)
    assert [e.to_dict() for e in a] == [e.to_dict() for e in b]
    assert [e.n_boot for e in a] == [20, 20, 50]
    with pytest.raises(ValueError, match="model_boot=-1"):
        est.estimate(terms, ["dm"], model_boot=-1)
