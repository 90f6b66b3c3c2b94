"""Property-based and statistical tests of the four Thompson-sampling policies.

Every expected value is computed here (or in ``tests/reference.py``) from the
events and the math, never read back from the code under test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import reference as ref
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bandit_engine import InvalidArgument
from bandit_engine.features import ArmFeatures
from bandit_engine.policies import (
    MAX_ABS_FEATURE,
    NOISE_PRIOR_SHAPE,
    NOISE_PRIOR_STD,
    PRIOR_MEAN,
    BetaTS,
    LinTSDisjoint,
    LinTSShared,
    LogisticTS,
    PerArmGaussian,
    Policy,
    make_policy,
)

KINDS = ("beta_ts", "lin_ts_disjoint", "lin_ts_shared", "logistic_ts")
CONTEXTUAL = ("lin_ts_disjoint", "lin_ts_shared", "logistic_ts")
EPS = np.finfo(np.float64).eps

FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ------------------------------------------------------------------ helpers
@dataclass
class Config:
    lam: float = 1.0  # prior precision (linear, logistic)
    a0: float = 1.0  # Beta prior
    b0: float = 1.0
    gamma: float = 1.0  # decay
    noise: float | None = 0.25  # noise scale (linear models); None: learned (lin_ts_disjoint)
    expl: float = 1.0  # exploration (lin_ts_disjoint, logistic_ts)


@dataclass
class Events:
    n_arms: int
    dim: int
    arms: np.ndarray
    xs: np.ndarray
    rewards: np.ndarray

    @property
    def n(self) -> int:
        return int(self.arms.shape[0])


def arm_features(i: int) -> ArmFeatures:
    """Arm attributes for the shared model: arms of the same parity share a group."""
    return ArmFeatures.build(
        f"arm-{i}", numeric={"size": 0.5 + 0.25 * i}, categorical=[f"group={i % 2}"]
    )


def build(kind: str, n_arms: int, dim: int, cfg: Config | None = None, **extra: Any) -> Policy:
    cfg = cfg or Config()
    p: Policy
    if kind == "beta_ts":
        p = BetaTS(dim, prior_alpha=cfg.a0, prior_beta=cfg.b0, decay=cfg.gamma, **extra)
    elif kind == "lin_ts_disjoint":
        p = LinTSDisjoint(
            dim,
            prior_precision=cfg.lam,
            noise_scale=cfg.noise,
            exploration=cfg.expl,
            decay=cfg.gamma,
            **extra,
        )
    elif kind == "lin_ts_shared":
        p = LinTSShared(
            dim, prior_precision=cfg.lam, noise_scale=cfg.noise or 0.25, decay=cfg.gamma, **extra
        )
    else:
        p = LogisticTS(dim, prior_precision=cfg.lam, exploration=cfg.expl, decay=cfg.gamma, **extra)
    for i in range(n_arms):
        assert p.add_arm(arm_features(i) if kind == "lin_ts_shared" else None) == i
    return p


def precision_key(kind: str) -> str:
    return "P" if kind == "logistic_ts" else "A"


def shared_phis(p: LinTSShared, ev: Events) -> np.ndarray:
    """phi(x_e, a_e) for every event: the model's own feature map (its definition)."""
    return np.stack(
        [p.joint(np.array([a], dtype=np.int64), x)[0] for a, x in zip(ev.arms, ev.xs, strict=True)]
    ).reshape(ev.n, p.joint_dim)


def assert_rel(
    actual: Any, expected: Any, scale: float = 0.0, tol: float = 1e-9, what: str = ""
) -> None:
    """||actual - expected|| <= tol * max(||expected||, scale); exact when both are 0.

    ``scale`` is the magnitude of the terms that were summed, for quantities
    (like b = sum r x) that can cancel to far below their terms.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    diff = float(np.linalg.norm((actual - expected).ravel()))
    denom = max(float(np.linalg.norm(expected.ravel())), scale)
    assert diff <= tol * denom, f"{what}: |diff|={diff:.3g} > {tol:g} * {denom:.3g}"


def assert_states_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert np.array_equal(a[k], b[k]), f"state array {k!r} changed"


def assert_states_close(
    kind: str, s1: dict[str, np.ndarray], s2: dict[str, np.ndarray], tol: float = 1e-9
) -> None:
    """Every statistic of s1 within tol of s2 (norm-relative, per arm)."""
    assert s1.keys() == s2.keys()
    assert np.array_equal(s1["pulls"], s2["pulls"])
    assert_rel(s1["reward_sum"], s2["reward_sum"], tol=tol, what="reward_sum")
    for k in s1:
        if k in ("pulls", "reward_sum") or k.startswith("feat_"):
            if k.startswith("feat_"):
                assert np.array_equal(s1[k], s2[k]), k
            continue
        if kind == "lin_ts_shared":
            # b can cancel: compare against the size of A (which bounds |phi|^2 terms)
            scale = float(np.linalg.norm(s2["A"])) if k == "b" else 0.0
            assert_rel(s1[k], s2[k], scale=scale, tol=tol, what=k)
        else:
            for arm in range(s1[k].shape[0]):
                # b = sum r x and m = sum c P^-1 x can cancel: bound by the size of
                # their terms (|A| bounds sum |x|^2 + lam; each c is at most 1)
                scale = {
                    "b": float(np.linalg.norm(s2["A"][arm])) if k == "b" else 0.0,
                    "m": 1.0,
                }.get(k, 0.0)
                assert_rel(s1[k][arm], s2[k][arm], scale=scale, tol=tol, what=f"{k}[{arm}]")


# --------------------------------------------------------------- strategies
def finite(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def event_sets(
    draw: st.DrawFn, max_events: int = 40, max_abs: float = 10.0, min_events: int = 1
) -> Events:
    n_arms = draw(st.integers(1, 5))
    dim = draw(st.integers(1, 6))
    n = draw(st.integers(min_events, max_events))
    arms = draw(arrays(np.int64, n, elements=st.integers(0, n_arms - 1)))
    xs = draw(arrays(np.float64, (n, dim), elements=finite(-max_abs, max_abs)))
    rewards = draw(arrays(np.float64, n, elements=finite(0.0, 1.0)))
    return Events(n_arms, dim, arms, xs, rewards)


@st.composite
def configs(draw: st.DrawFn, decay: bool = True) -> Config:
    return Config(
        lam=draw(st.sampled_from([0.25, 1.0]) | finite(0.1, 10.0)),
        a0=draw(finite(0.5, 5.0)),
        b0=draw(finite(0.5, 5.0)),
        gamma=draw(st.just(1.0) | finite(0.5, 1.0)) if decay else 1.0,
        noise=draw(st.none() | finite(0.05, 2.0)),
        expl=draw(st.just(1.0) | finite(0.1, 2.0)),
    )


# ------------------------------------------------------ 1. closed form
def reference_state(kind: str, p: Policy, ev: Events, cfg: Config) -> dict[str, Any]:
    """Reference statistics computed from the events alone."""
    out: dict[str, Any] = {
        "pulls": np.bincount(ev.arms, minlength=ev.n_arms),
        "reward_sum": np.bincount(ev.arms, weights=ev.rewards, minlength=ev.n_arms),
    }
    if kind == "beta_ts":
        out["alpha"], out["beta"] = ref.beta_stats(
            ev.n_arms, ev.arms, ev.rewards, cfg.a0, cfg.b0, cfg.gamma
        )
    elif kind == "lin_ts_disjoint":
        out["A"], out["b"], out["b_scale"], out["noise"] = ref.disjoint_stats(
            ev.n_arms, ev.dim, ev.arms, ev.xs, ev.rewards, cfg.lam, cfg.gamma, PRIOR_MEAN
        )
    elif kind == "lin_ts_shared":
        assert isinstance(p, LinTSShared)
        out["A"], out["b"], out["b_scale"] = ref.shared_stats(
            shared_phis(p, ev), ev.rewards, cfg.lam, cfg.gamma
        )
    else:
        lap = ref.laplace_fold(ev.n_arms, ev.dim, ev.arms, ev.xs, ev.rewards, cfg.lam, cfg.gamma)
        out["P"], out["m"], out["m_scale"] = lap.P, lap.m, lap.m_scale
    return out


def linear_noise_var(r: dict[str, Any], arm: int, cfg: Config) -> float:
    """sigma_a^2 of ``lin_ts_disjoint``: fixed, or learned (normal-inverse-gamma)."""
    if cfg.noise is not None:
        return cfg.noise**2
    return ref.nig_noise_var(
        r["A"][arm], r["b"][arm], r["noise"][arm], NOISE_PRIOR_SHAPE, NOISE_PRIOR_STD
    )


def check_against_reference(
    kind: str, p: Policy, ev: Events, cfg: Config, probes: list[np.ndarray], tol: float = 1e-9
) -> None:
    r = reference_state(kind, p, ev, cfg)
    sd = p.state_dict()
    assert np.array_equal(sd["pulls"], r["pulls"])
    assert_rel(sd["reward_sum"], r["reward_sum"], tol=1e-12, what="reward_sum")
    for arm in range(ev.n_arms):
        if kind == "beta_ts":
            assert_rel(sd["alpha"][arm], r["alpha"][arm], tol=tol, what="alpha")
            assert_rel(sd["beta"][arm], r["beta"][arm], tol=tol, what="beta")
        elif kind == "lin_ts_disjoint":
            assert_rel(sd["A"][arm], r["A"][arm], tol=tol, what="A")
            assert_rel(sd["b"][arm], r["b"][arm], scale=r["b_scale"][arm], tol=tol, what="b")
            assert_rel(sd["noise"][arm], r["noise"][arm], tol=tol, what="noise sums")
        elif kind == "logistic_ts":
            assert_rel(sd["P"][arm], r["P"][arm], tol=tol, what="P")
            assert_rel(sd["m"][arm], r["m"][arm], scale=r["m_scale"][arm], tol=tol, what="m")
    if kind == "lin_ts_shared":
        assert_rel(sd["A"], r["A"], tol=tol, what="A")
        assert_rel(sd["b"], r["b"], scale=r["b_scale"], tol=tol, what="b")

    # posterior mean / std against the reference
    for arm in range(ev.n_arms):
        for x in probes:
            mean, std = p.posterior(arm, x)
            if kind == "beta_ts":
                em, es = ref.beta_mean_std(r["alpha"][arm], r["beta"][arm])
                assert_rel(mean, em, tol=tol, what="beta mean")
                assert_rel(std, es, tol=tol, what="beta std")
                continue
            if kind == "lin_ts_shared":
                assert isinstance(p, LinTSShared)
                z = p.joint(np.array([arm], dtype=np.int64), x)[0]
                a_mat, center, v, is_b = r["A"], r["b"], cfg.noise or 0.25, True
                center_scale = max(float(np.linalg.norm(r["b"])), r["b_scale"])
            elif kind == "lin_ts_disjoint":
                z = x
                a_mat, center, is_b = r["A"][arm], r["b"][arm], True
                v = cfg.expl * math.sqrt(linear_noise_var(r, arm, cfg))
                center_scale = max(float(np.linalg.norm(r["b"][arm])), r["b_scale"][arm])
            else:
                z = x
                a_mat, center, v, is_b = r["P"][arm], r["m"][arm], cfg.expl, False
                center_scale = max(float(np.linalg.norm(r["m"][arm])), r["m_scale"][arm])
            em, es = ref.gauss_score(a_mat, center, z, v, is_b)
            if kind == "lin_ts_disjoint":
                em += PRIOR_MEAN
            inv_norm = float(np.linalg.norm(np.linalg.inv(a_mat), 2))
            znorm = float(np.linalg.norm(z))
            # error bounds: |z| |A^-1| |b| for the mean, v^2 |z|^2 |A^-1| for the variance
            mean_scale = znorm * center_scale * (inv_norm if is_b else 1.0)
            assert_rel(mean, em, scale=mean_scale, tol=tol, what=f"mean[{arm}]")
            assert_rel(
                std * std,
                es * es,
                scale=v * v * znorm * znorm * inv_norm,
                tol=tol,
                what=f"var[{arm}]",
            )
            assert std >= 0.0


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(ev=event_sets(), cfg=configs(), probe=arrays(np.float64, 6, elements=finite(-3.0, 3.0)))
# the old safeguarded Newton in kernels.laplace_step bounced between the ends of
# its bracket here and returned c = 0.176 for a root at 0.045
@example(
    ev=Events(1, 3, np.array([0]), np.array([[7.375, 9.625, 1.0]]), np.array([0.94318042])),
    cfg=Config(lam=3.0625),
    probe=np.zeros(6),
)
def test_state_matches_closed_form(kind: str, ev: Events, cfg: Config, probe: np.ndarray) -> None:
    p = build(kind, ev.n_arms, ev.dim, cfg)
    p.update_batch(ev.arms, ev.xs, ev.rewards)
    check_against_reference(kind, p, ev, cfg, [probe[: ev.dim], ev.xs[-1]])


@settings(max_examples=300, deadline=None)
@given(
    mx=finite(-40.0, 40.0),
    log_s=finite(-6.0, 13.0),
    y=st.sampled_from([0.0, 1.0]) | finite(0.0, 1.0),
)
@example(mx=0.0, log_s=math.log10(48.33673469387755), y=0.94318042)
def test_laplace_step_finds_the_root(mx: float, log_s: float, y: float) -> None:
    """The scalar root c = y - sigmoid(mx + c s) that the logistic update rests on."""
    from bandit_engine import kernels

    s = 10.0**log_s
    c = kernels.laplace_step(mx, s, y)
    assert y - 1.0 <= c <= y
    root = ref.laplace_root(mx, s, y)  # plain bisection
    assert abs(c - root) <= 1e-12 * (1.0 + abs(root))


@pytest.mark.parametrize("kind", CONTEXTUAL)
def test_posterior_without_context_is_intercept_context(kind: str) -> None:
    rng = np.random.default_rng(7)
    p = build(kind, 2, 3)
    p.update_batch(rng.integers(0, 2, 30), rng.uniform(-1, 1, (30, 3)), rng.random(30))
    e0 = np.array([1.0, 0.0, 0.0])
    for arm in range(2):
        assert p.posterior(arm) == p.posterior(arm, e0)


@pytest.mark.parametrize("kind", KINDS)
def test_prior_posterior(kind: str) -> None:
    """Before any event the posterior is the prior, computed by hand."""
    cfg = Config(lam=4.0, a0=2.0, b0=6.0, noise=0.5)
    p = build(kind, 2, 3, cfg)
    x = np.array([1.0, 2.0, -2.0])  # |x| = 3
    mean, std = p.posterior(1, x)
    if kind == "beta_ts":
        assert mean == pytest.approx(0.25, rel=1e-12)  # 2 / 8
        assert std == pytest.approx(math.sqrt(12 / (64 * 9)), rel=1e-12)
    elif kind == "lin_ts_shared":
        assert isinstance(p, LinTSShared)
        phi = p.joint(np.array([1]), x)[0]
        assert mean == 0.0
        assert std == pytest.approx(0.5 * np.linalg.norm(phi) / 2.0, rel=1e-12)
    else:
        scale = 1.0 if kind == "logistic_ts" else 0.5
        assert mean == (PRIOR_MEAN if kind == "lin_ts_disjoint" else 0.0)
        assert std == pytest.approx(scale * 3.0 / 2.0, rel=1e-12)  # v |x| / sqrt(lam)
    if kind == "lin_ts_disjoint":
        # the learned noise scale starts at its prior guess, times the exploration
        learned = build(kind, 2, 3, Config(lam=4.0, noise=None, expl=0.7))
        mean, std = learned.posterior(1, x)
        assert mean == PRIOR_MEAN
        assert std == pytest.approx(0.7 * NOISE_PRIOR_STD * 3.0 / 2.0, rel=1e-12)


# ------------------------------------------------ 2. batching and ordering
@st.composite
def splits(draw: st.DrawFn, n: int) -> list[int]:
    if n < 2:
        return []
    return sorted(draw(st.lists(st.integers(1, n - 1), unique=True, max_size=8)))


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(ev=event_sets(), cfg=configs(), data=st.data())
def test_batch_split_invariance(kind: str, ev: Events, cfg: Config, data: st.DataObject) -> None:
    cuts = data.draw(splits(ev.n), label="cuts")
    whole = build(kind, ev.n_arms, ev.dim, cfg)
    whole.update_batch(ev.arms, ev.xs, ev.rewards)

    pieces = build(kind, ev.n_arms, ev.dim, cfg)
    for a, x, r in zip(
        np.split(ev.arms, cuts), np.split(ev.xs, cuts), np.split(ev.rewards, cuts), strict=True
    ):
        pieces.update_batch(a, x, r)

    singles = build(kind, ev.n_arms, ev.dim, cfg)
    for a, x, r in zip(ev.arms, ev.xs, ev.rewards, strict=True):
        singles.update(int(a), x, float(r))

    ref_state = whole.state_dict()
    for other in (pieces, singles):
        assert_states_close(kind, other.state_dict(), ref_state)
        for arm in range(ev.n_arms):
            x = ev.xs[0]
            m1, s1 = whole.posterior(arm, x)
            m2, s2 = other.posterior(arm, x)
            assert_rel(m2, m1, scale=1e-300 + abs(m1) + s1, tol=1e-9, what="mean")
            assert_rel(s2, s1, tol=1e-9, what="std")


@pytest.mark.parametrize("kind", ["beta_ts", "lin_ts_disjoint", "lin_ts_shared"])
@FAST
@given(ev=event_sets(), cfg=configs(decay=False), data=st.data())
def test_order_invariance_without_decay(
    kind: str, ev: Events, cfg: Config, data: st.DataObject
) -> None:
    perm = np.array(data.draw(st.permutations(list(range(ev.n))), label="perm"), dtype=np.int64)
    p1 = build(kind, ev.n_arms, ev.dim, cfg)
    p1.update_batch(ev.arms, ev.xs, ev.rewards)
    p2 = build(kind, ev.n_arms, ev.dim, cfg)
    p2.update_batch(ev.arms[perm], ev.xs[perm], ev.rewards[perm])
    s1, s2 = p1.state_dict(), p2.state_dict()
    assert_states_close(kind, s2, s1)
    # ... and the shrinking scale: b within 1e-9 of the sum of |r x|
    if kind == "lin_ts_disjoint":
        r = reference_state(kind, p1, ev, cfg)
        for arm in range(ev.n_arms):
            assert_rel(s2["b"][arm], s1["b"][arm], scale=r["b_scale"][arm], what="b")


def test_logistic_depends_on_order() -> None:
    """Sanity check of the reference: the Laplace fold is order-dependent, and so is the policy."""
    xs = np.array([[1.0, 2.0], [1.0, -1.0], [1.0, 0.5]])
    ys = np.array([1.0, 0.0, 1.0])
    arms = np.zeros(3, dtype=np.int64)
    p1, p2 = build("logistic_ts", 1, 2), build("logistic_ts", 1, 2)
    p1.update_batch(arms, xs, ys)
    p2.update_batch(arms, xs[::-1], ys[::-1])
    m1, m2 = p1.state_dict()["m"], p2.state_dict()["m"]
    assert not np.allclose(m1, m2, rtol=1e-6, atol=0)
    r = ref.laplace_fold(1, 2, arms, xs[::-1], ys[::-1], 1.0, 1.0)
    assert_rel(m2[0], r.m[0], tol=1e-9)


def test_decay_forgets() -> None:
    """With gamma < 1 old events weigh gamma^k: hand-computed two-event case."""
    p = LinTSDisjoint(1, prior_precision=1.0, decay=0.5)
    p.add_arm()
    # rewards centred on PRIOR_MEAN = 0.5: +0.5 and -0.5
    p.update(0, np.array([2.0]), 1.0)  # A = 1 + 4 = 5, b = 2*0.5 = 1
    p.update(0, np.array([1.0]), 0.0)  # A = 1 + 0.5*(5-1) + 1 = 4, b = 0.5*1 - 0.5 = 0
    sd = p.state_dict()
    assert PRIOR_MEAN == 0.5
    assert sd["A"][0, 0, 0] == pytest.approx(4.0, rel=1e-15)
    assert sd["b"][0, 0] == pytest.approx(0.0, abs=1e-15)
    # noise sums: 0.5 * 0.25 + 0.25, and 0.5 * 1 + 1
    assert sd["noise"][0] == pytest.approx([0.375, 1.5], rel=1e-15)
    b = BetaTS(prior_alpha=1.0, prior_beta=1.0, decay=0.5)
    b.add_arm()
    b.update(0, None, 1.0)  # alpha 2, beta 1
    b.update(0, None, 1.0)  # alpha 1 + 0.5*1 + 1 = 2.5, beta 1
    assert b.state_dict()["alpha"][0] == pytest.approx(2.5, rel=1e-15)
    assert b.state_dict()["beta"][0] == pytest.approx(1.0, rel=1e-15)


# -------------------------------------------------------- 3. SPD at scale
def check_spd(kind: str, p: Policy, lam: float) -> None:
    sd = p.state_dict()
    mats = sd[precision_key(kind)]
    if mats.ndim == 2:
        mats = mats[None]
    for m in mats:
        assert np.array_equal(m, m.T), "precision matrix not exactly symmetric"
        np.linalg.cholesky(m)  # raises LinAlgError if not positive definite
        w = np.linalg.eigvalsh(m)
        assert w[0] > 0.0
        # the data part is PSD, so the spectrum stays above the prior up to rounding
        assert w[0] >= lam - 1e-12 * w[-1]
    if kind == "lin_ts_shared":
        assert isinstance(p, LinTSShared)
        lo = p.cholesky_factor()
        a_mat = sd["A"]
        assert_rel(lo @ lo.T, a_mat, tol=64 * EPS * a_mat.shape[0], what="L L'")
    else:
        assert isinstance(p, LinTSDisjoint | LogisticTS)
        for arm, m in enumerate(mats):
            exact = ref.exact_inverse(m)
            cond = float(np.linalg.cond(m))
            cache = p.arrays().cov[arm]
            assert np.array_equal(cache, cache.T)
            # as accurate as the conditioning allows: a direct inverse is off by ~cond*eps
            # (the old cache, Sherman-Morrison steps with no guard, was off by 1e-4 at
            # |x| = 1e6 even with cond(A) < 10)
            assert_rel(cache, exact, tol=1e-9 + 1e-14 * cond, what=f"cached inverse[{arm}]")


@pytest.mark.parametrize("kind", CONTEXTUAL)
@FAST
@given(
    exponent=finite(-6.0, 6.0),
    seed=st.integers(0, 2**32 - 1),
    dim=st.integers(1, 6),
    n=st.integers(1, 40),
    intercept=st.booleans(),
    binary=st.booleans(),
)
@example(exponent=-6.0, seed=0, dim=6, n=40, intercept=False, binary=False)
@example(exponent=6.0, seed=0, dim=6, n=40, intercept=False, binary=False)
@example(exponent=6.0, seed=1, dim=5, n=3, intercept=True, binary=True)
@example(exponent=6.0, seed=2, dim=6, n=19, intercept=False, binary=False)
def test_spd_at_any_scale(
    kind: str, exponent: float, seed: int, dim: int, n: int, intercept: bool, binary: bool
) -> None:
    rng = np.random.default_rng(seed)
    scale = min(10.0**exponent, MAX_ABS_FEATURE)
    xs = scale * rng.uniform(-1.0, 1.0, (n, dim))
    if intercept:
        xs[:, 0] = 1.0  # mixed scales: an intercept next to huge features
    rewards = (rng.random(n) < 0.5).astype(float) if binary else rng.random(n)
    arms = rng.integers(0, 3, n)
    p = build(kind, 3, dim)
    p.update_batch(arms, xs, rewards)
    check_spd(kind, p, 1.0)
    probe = scale * rng.uniform(-1.0, 1.0, dim)
    ranking = p.rank(np.arange(3), probe, 3, rng)
    assert sorted(ranking.order.tolist()) == [0, 1, 2]
    assert np.all(np.isfinite(ranking.scores))
    assert np.all(np.diff(ranking.scores) <= 0.0)
    props = p.propensities(np.arange(3), probe, 1000, rng)
    assert np.all(np.isfinite(props))
    assert props.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("kind", ["lin_ts_disjoint", "logistic_ts"])
def test_sherman_morrison_cache_does_not_drift(kind: str) -> None:
    """3000 updates of one arm: the cache tracks A^-1 between refreshes (every 1000)."""
    rng = np.random.default_rng(11)
    d = 6
    p = build(kind, 2, d)
    fresh = build(kind, 2, d, refresh_every=1)  # inverse rebuilt after every event
    n = 3000
    xs = np.column_stack([np.ones(n), rng.uniform(-2.0, 2.0, (n, d - 1))])
    rewards = (rng.random(n) < 0.3).astype(float)
    arms = np.zeros(n, dtype=np.int64)
    done = 0
    for stop in (999, 1999, 2999, 3000):
        p.update_batch(arms[done:stop], xs[done:stop], rewards[done:stop])
        fresh.update_batch(arms[done:stop], xs[done:stop], rewards[done:stop])
        done = stop
        a_mat = p.state_dict()[precision_key(kind)][0]
        assert isinstance(p, PerArmGaussian)
        cache = p.arrays().cov[0]
        assert_rel(cache, ref.exact_inverse(a_mat), tol=1e-9, what=f"after {stop} updates")
        for x in (xs[0], rng.uniform(-2.0, 2.0, d)):
            m1, s1 = p.posterior(0, x)
            m2, s2 = fresh.posterior(0, x)
            assert_rel(s1, s2, tol=1e-9)
            assert_rel(m1, m2, scale=s2, tol=1e-9)
    # 3000 = 3 * refresh_every: the cache was rebuilt from A on the last event, so it
    # is bit-identical to a rebuild now
    rebuilt = p.clone()
    rebuilt.load_state_dict(p.state_dict())
    rebuilt.refresh()
    assert isinstance(p, PerArmGaussian) and isinstance(rebuilt, PerArmGaussian)
    assert np.array_equal(p.arrays().cov[0], rebuilt.arrays().cov[0])


# -------------------------------------------------- 4. bad input, no change
BAD_FEATURES = [math.nan, math.inf, -math.inf, 2.0 * MAX_ABS_FEATURE, -1e300]
BAD_REWARDS = [math.nan, math.inf, -math.inf, 1.5, -0.25, 1.0 + 1e-9]


def trained(kind: str, n_arms: int = 3, dim: int = 3, seed: int = 0, n: int = 25) -> Policy:
    rng = np.random.default_rng(seed)
    p = build(kind, n_arms, dim)
    p.update_batch(rng.integers(0, n_arms, n), rng.uniform(-1, 1, (n, dim)), rng.random(n))
    return p


def snapshot(p: Policy) -> tuple[dict[str, np.ndarray], list[tuple[float, float]]]:
    x = np.linspace(1.0, -0.5, p.dim)
    return p.state_dict(), [p.posterior(a, x) for a in range(p.n_arms)]


def assert_unchanged(p: Policy, before: tuple[dict[str, np.ndarray], list[Any]]) -> None:
    after = snapshot(p)
    assert_states_equal(after[0], before[0])
    assert after[1] == before[1]  # caches untouched too


@st.composite
def bad_events(draw: st.DrawFn, kind: str) -> tuple[str, Any, int, int]:
    """(what is bad, the bad value, position in the batch, batch length)."""
    whats = ["reward", "arm"] + (["feature"] if kind in CONTEXTUAL else [])
    what = draw(st.sampled_from(whats))
    if what == "reward":
        value: Any = draw(
            st.sampled_from(BAD_REWARDS) | finite(1.0 + EPS, 1e9) | finite(-1e9, -5e-324)
        )
    elif what == "feature":
        value = draw(
            st.sampled_from(BAD_FEATURES) | finite(np.nextafter(MAX_ABS_FEATURE, np.inf), 1e300)
        )
    else:
        value = draw(st.sampled_from([3, 4, 1000, -1, -7]))
    length = draw(st.integers(1, 6))
    pos = draw(st.integers(0, length - 1))
    return what, value, pos, length


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_bad_event_in_batch_applies_nothing(kind: str, data: st.DataObject) -> None:
    p = trained(kind)
    what, value, pos, length = data.draw(bad_events(kind))
    rng = np.random.default_rng(pos)
    arms = rng.integers(0, 3, length)
    xs = rng.uniform(-1, 1, (length, 3))
    rewards = rng.random(length)
    if what == "reward":
        rewards[pos] = value
        shown = [str(float(value)), f"reward[{pos}]"]
    elif what == "feature":
        col = int(rng.integers(0, 3))
        xs[pos, col] = value
        shown = [str(float(value)), f"(event {pos}, index {col})"]
    else:
        arms[pos] = value
        shown = [f"arm index {value} "]
    before = snapshot(p)
    with pytest.raises(InvalidArgument) as info:
        p.update_batch(arms, xs, rewards)
    for s in shown:
        assert s in str(info.value)
    assert_unchanged(p, before)
    if length == 1:
        with pytest.raises(InvalidArgument) as info:
            p.update(int(arms[0]), xs[0], float(rewards[0]))
        for s in shown:
            assert s in str(info.value)
        assert_unchanged(p, before)
    # the same batch with the bad event repaired applies cleanly
    if what == "reward":
        rewards[pos] = 0.5
    elif what == "feature":
        xs[pos] = 0.5
    else:
        arms[pos] = 0
    p.update_batch(arms, xs, rewards)
    assert p.state_dict()["pulls"].sum() == before[0]["pulls"].sum() + length


@pytest.mark.parametrize("kind", CONTEXTUAL)
def test_wrong_context_shapes(kind: str) -> None:
    p = trained(kind)
    before = snapshot(p)
    bad_single: list[Any] = [
        np.zeros(2),
        np.zeros(4),
        np.zeros((1, 3)),
        np.float64(1.0),
        np.zeros((3, 1)),
    ]
    for x in bad_single:
        # a 0-d context is read as shape (1,) by rank: name the shape it was read as
        shape = re_escape(str(np.shape(x) or (1,))) + r".*expected \(3,\)"
        # update() makes a batch of one: the message shows the batch's shape
        with pytest.raises(InvalidArgument, match=re_escape(str((1, *np.shape(x))))):
            p.update(0, x, 0.5)
        with pytest.raises(InvalidArgument, match=shape):
            p.rank(np.arange(3), x, 1, np.random.default_rng(0))
        with pytest.raises(InvalidArgument, match=shape):
            p.propensities(np.arange(3), x, 10, np.random.default_rng(0))
    with pytest.raises(InvalidArgument, match=re_escape("(2, 4)")):
        p.update_batch(np.array([0, 1]), np.zeros((2, 4)), np.array([0.1, 0.2]))
    with pytest.raises(InvalidArgument, match=re_escape("(3,)")):
        p.update_batch(np.array([0, 1]), np.zeros(3), np.array([0.1, 0.2]))
    with pytest.raises(InvalidArgument, match="context"):
        p.update_batch(np.array([0]), None, np.array([0.1]))
    with pytest.raises(InvalidArgument, match="context"):
        p.rank(np.arange(3), None, 1, np.random.default_rng(0))
    with pytest.raises(InvalidArgument, match="3 rewards for 2 arms"):
        p.update_batch(np.array([0, 1]), np.zeros((2, 3)), np.array([0.1, 0.2, 0.3]))
    for bad in (math.nan, -math.inf, 3e6):
        x = np.array([1.0, bad, 0.0])
        with pytest.raises(InvalidArgument, match=re_escape(str(bad))):
            p.rank(np.arange(3), x, 1, np.random.default_rng(0))
        with pytest.raises(InvalidArgument, match=re_escape(str(bad))):
            p.posterior(0, x)
    assert_unchanged(p, before)


def re_escape(s: str) -> str:
    import re

    return re.escape(s)


@pytest.mark.parametrize("kind", KINDS)
def test_bad_ranking_arguments(kind: str) -> None:
    p = trained(kind)
    before = snapshot(p)
    x = np.ones(3)
    rng = np.random.default_rng(0)
    for k in (0, -1, 4, 100):
        with pytest.raises(InvalidArgument, match=f"k={k}"):
            p.rank(np.arange(3), x, k, rng)
    for arms, bad in (([0, 3], 3), ([-1, 0], -1), ([0, 1, 99], 99)):
        with pytest.raises(InvalidArgument, match=f"arm index {bad}"):
            p.rank(np.array(arms), x, 1, rng)
        with pytest.raises(InvalidArgument, match=f"arm index {bad}"):
            p.propensities(np.array(arms), x, 10, rng)
    for arm in (3, -1):
        with pytest.raises(InvalidArgument, match=f"arm index {arm}"):
            p.posterior(arm, x)
        with pytest.raises(InvalidArgument, match=f"arm index {arm}"):
            p.update(arm, x, 0.5)
    with pytest.raises(InvalidArgument, match="non-empty"):
        p.rank(np.array([], dtype=np.int64), x, 1, rng)
    with pytest.raises(InvalidArgument, match="draws=0"):
        p.propensities(np.arange(3), x, 0, rng)
    assert_unchanged(p, before)


@pytest.mark.parametrize(
    ("kind", "params", "bad"),
    [
        ("beta_ts", {"prior_alpha": 0.0}, "prior_alpha=0.0"),
        ("beta_ts", {"prior_beta": math.nan}, "prior_beta=nan"),
        ("lin_ts_disjoint", {"dim": 0}, "dim=0"),
        ("lin_ts_disjoint", {"dim": 3, "decay": 1.5}, "decay=1.5"),
        ("lin_ts_disjoint", {"dim": 3, "decay": 0.0}, "decay=0.0"),
        ("lin_ts_disjoint", {"dim": 3, "noise_scale": -1.0}, "noise_scale=-1.0"),
        ("lin_ts_shared", {"dim": 3, "joint_dim": 0}, "joint_dim=0"),
        ("logistic_ts", {"dim": 3, "prior_precision": math.inf}, "prior_precision=inf"),
        ("logistic_ts", {"dim": 3, "refresh_every": 0}, "refresh_every=0"),
        ("no_such_policy", {"dim": 3}, "no_such_policy"),
    ],
)
def test_bad_configuration(kind: str, params: dict[str, Any], bad: str) -> None:
    with pytest.raises(InvalidArgument, match=re_escape(bad)):
        make_policy(kind, **params)


def test_beta_ignores_context() -> None:
    """A non-contextual policy accepts and ignores the context (and its shape)."""
    p1, p2 = build("beta_ts", 2, 1), build("beta_ts", 2, 1)
    p1.update_batch(np.array([0, 1]), np.full((2, 7), np.nan), np.array([1.0, 0.0]))
    p2.update_batch(np.array([0, 1]), None, np.array([1.0, 0.0]))
    assert_states_equal(p1.state_dict(), p2.state_dict())
    r1 = p1.rank(np.arange(2), np.zeros(5), 2, np.random.default_rng(3))
    r2 = p2.rank(np.arange(2), None, 2, np.random.default_rng(3))
    assert np.array_equal(r1.order, r2.order)
    assert np.array_equal(r1.scores, r2.scores)


# ---------------------------------------------------- 5. reproducibility
@pytest.mark.parametrize("kind", KINDS)
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(ev=event_sets(max_events=25), cfg=configs(), seed=st.integers(0, 2**63 - 1))
def test_seeded_reproducibility(kind: str, ev: Events, cfg: Config, seed: int) -> None:
    p1 = build(kind, ev.n_arms, ev.dim, cfg)
    p2 = build(kind, ev.n_arms, ev.dim, cfg)
    for p in (p1, p2):
        p.update_batch(ev.arms, ev.xs, ev.rewards)
    arms = np.arange(ev.n_arms)
    x = ev.xs[0]
    k = ev.n_arms
    g1, g2 = np.random.default_rng(seed), np.random.default_rng(seed)
    for _ in range(3):
        r1, r2 = p1.rank(arms, x, k, g1), p2.rank(arms, x, k, g2)
        assert np.array_equal(r1.order, r2.order)
        assert np.array_equal(r1.scores, r2.scores)
        pr1, pr2 = p1.propensities(arms, x, 500, g1), p2.propensities(arms, x, 500, g2)
        assert np.array_equal(pr1, pr2)

    # state_dict round trip into a clone
    c = p1.clone()
    assert c.n_arms == 0
    assert c.params() == p1.params()
    c.load_state_dict(p1.state_dict())
    assert_states_equal(c.state_dict(), p1.state_dict())
    g1, g3 = np.random.default_rng(seed + 1), np.random.default_rng(seed + 1)
    for _ in range(3):
        r1, r3 = p1.rank(arms, x, k, g1), c.rank(arms, x, k, g3)
        # caches are rebuilt on load, so scores agree to rounding, not to the bit
        np.testing.assert_allclose(r3.scores, r1.scores, rtol=1e-9, atol=1e-12)
        assert np.array_equal(r1.order, r3.order)
        pr1, pr3 = p1.propensities(arms, x, 500, g1), c.propensities(arms, x, 500, g3)
        np.testing.assert_allclose(pr3, pr1, atol=2 / 500)
    # the loaded clone keeps learning like the original
    p1.update_batch(ev.arms, ev.xs, ev.rewards)
    c.update_batch(ev.arms, ev.xs, ev.rewards)
    assert_states_close(kind, c.state_dict(), p1.state_dict())


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ev=event_sets(max_events=20), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_decide_equals_rank_then_propensities(
    kind: str, ev: Events, seed: int, data: st.DataObject
) -> None:
    """decide() makes the same draws, in the same order, as rank() then propensities()."""
    p = build(kind, ev.n_arms, ev.dim)
    p.update_batch(ev.arms, ev.xs, ev.rewards)
    arms = np.arange(ev.n_arms)
    k = data.draw(st.integers(1, ev.n_arms), label="k")
    draws = data.draw(st.integers(1, 3000), label="draws")
    g1, g2 = np.random.default_rng(seed), np.random.default_rng(seed)
    ranking, counts = p.decide(arms, ev.xs[0], k, draws, g1)
    r2 = p.rank(arms, ev.xs[0], k, g2)
    props = p.propensities(arms, ev.xs[0], draws, g2)
    assert np.array_equal(ranking.order, r2.order)
    assert np.array_equal(ranking.scores, r2.scores)
    assert np.array_equal(np.asarray(counts) / draws, props)
    assert int(np.sum(counts)) == draws
    before = snapshot(p)
    for bad_k, bad_draws, shown in (
        (0, 10, "k=0"),
        (ev.n_arms + 1, 10, f"k={ev.n_arms + 1}"),
        (1, 0, "draws=0"),
    ):
        with pytest.raises(InvalidArgument, match=shown):
            p.decide(arms, ev.xs[0], bad_k, bad_draws, g1)
    assert_unchanged(p, before)


@pytest.mark.parametrize("kind", KINDS)
def test_clone_has_no_learned_state(kind: str) -> None:
    cfg = Config(lam=2.0, a0=3.0, b0=0.5, gamma=0.9, noise=0.7)
    p = build(kind, 3, 3, cfg)
    rng = np.random.default_rng(1)
    p.update_batch(rng.integers(0, 3, 20), rng.uniform(-1, 1, (20, 3)), rng.random(20))
    c = p.clone()
    assert type(c) is type(p)
    assert c.params() == p.params()
    assert c.n_arms == 0
    sd = c.state_dict()
    assert sd["pulls"].shape == (0,)
    # a fresh arm of the clone is at the prior: equal to a never-updated policy's arm
    blank = build(kind, 1, 3, cfg)
    c.add_arm(arm_features(0) if kind == "lin_ts_shared" else None)
    assert_states_equal(c.state_dict(), blank.state_dict())
    # and learning in the clone does not touch the original
    before = snapshot(p)
    c.update(0, np.ones(3), 1.0)
    assert_unchanged(p, before)


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_is_a_copy(kind: str) -> None:
    p = trained(kind)
    before = snapshot(p)
    sd = p.state_dict()
    for v in sd.values():
        v[...] = 0
    assert_unchanged(p, before)


# ------------------------------------------------------- 6. propensities
def propensity_setup(kind: str) -> tuple[Policy, np.ndarray, np.ndarray]:
    """A policy whose arms differ, a context, and the reference first-slot probabilities."""
    rng = np.random.default_rng(2024)
    n_arms, dim = 4, 3
    p = build(kind, n_arms, dim)
    # arm 0 most data, mediocre; arm 1 little data, good; arm 2 some data, bad; arm 3 prior
    counts = [12, 4, 8, 0]
    means = [0.45, 0.6, 0.2, 0.0]
    arms, xs, rs = [], [], []
    for a, (c, mu) in enumerate(zip(counts, means, strict=True)):
        for _ in range(c):
            arms.append(a)
            xs.append(np.array([1.0, *rng.uniform(-0.3, 0.3, dim - 1)]))
            rs.append(float(rng.random() < mu))
    order = rng.permutation(len(arms))
    p.update_batch(np.array(arms)[order], np.array(xs)[order], np.array(rs)[order])
    x = np.array([1.0, 0.1, -0.1])
    ev = Events(n_arms, dim, np.array(arms)[order], np.array(xs)[order], np.array(rs)[order])
    r = reference_state(kind, p, ev, Config())
    if kind == "beta_ts":
        exact = ref.first_slot_beta(r["alpha"], r["beta"])
    elif kind == "lin_ts_shared":
        assert isinstance(p, LinTSShared)
        phi = p.joint(np.arange(n_arms), x)
        cov_theta = 0.25**2 * np.linalg.inv(r["A"])
        exact = ref.first_slot_mvn(
            phi @ np.linalg.solve(r["A"], r["b"]), phi @ cov_theta @ phi.T, 400_000, seed=5
        )
    else:
        is_b = kind == "lin_ts_disjoint"
        a_key, c_key = ("A", "b") if is_b else ("P", "m")
        ms = [
            ref.gauss_score(r[a_key][a], r[c_key][a], x, 0.25 if is_b else 1.0, is_b)
            for a in range(n_arms)
        ]
        exact = ref.first_slot_gauss(np.array([m for m, _ in ms]), np.array([s for _, s in ms]))
    return p, x, exact


@pytest.mark.parametrize("kind", KINDS)
def test_propensities_match_first_slot_frequency(kind: str) -> None:
    p, x, exact = propensity_setup(kind)
    arms = np.arange(p.n_arms)
    # the setup is informative: no arm certain, at least two arms plausible
    assert exact.max() < 0.9
    assert np.sum(exact > 0.05) >= 2
    assert exact.sum() == pytest.approx(1.0, abs=1e-3)

    # draws * joint_dim stays inside the normal table, so every draw is fresh
    draws = 80_000 if kind == "lin_ts_shared" else 200_000
    props = p.propensities(arms, x, draws, np.random.default_rng(1))
    assert props.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(props >= 0.0)

    rng = np.random.default_rng(2)
    n_calls = 40_000
    firsts = np.empty(n_calls, dtype=np.int64)
    for i in range(n_calls):
        firsts[i] = p.rank(arms, x, 1, rng).order[0]
    freq = np.bincount(firsts, minlength=p.n_arms) / n_calls

    assert np.max(np.abs(props - freq)) <= 0.01, (props, freq)
    assert np.max(np.abs(props - exact)) <= 0.01, (props, exact)
    assert np.max(np.abs(freq - exact)) <= 0.01, (freq, exact)


@pytest.mark.parametrize("kind", KINDS)
def test_first_slot_of_full_ranking_is_the_top_one(kind: str) -> None:
    """rank(k=n) and rank(k=1) with the same draws put the same arm first; top-k is sorted."""
    p, x, _ = propensity_setup(kind)
    arms = np.arange(p.n_arms)
    for seed in range(200):
        full = p.rank(arms, x, p.n_arms, np.random.default_rng(seed))
        top = p.rank(arms, x, 1, np.random.default_rng(seed))
        two = p.rank(arms, x, 2, np.random.default_rng(seed))
        assert full.order[0] == top.order[0]
        assert np.array_equal(full.order[:2], two.order)
        assert np.all(np.diff(full.scores) <= 0)
        assert sorted(full.order.tolist()) == list(range(p.n_arms))


@pytest.mark.parametrize("kind", KINDS)
def test_propensities_over_a_subset_of_arms(kind: str) -> None:
    """Positions refer to the ``arms`` array: a permuted subset permutes the estimates."""
    p, x, _ = propensity_setup(kind)
    sub = np.array([2, 0])
    pr = p.propensities(
        sub, x, 100_000 if kind != "lin_ts_shared" else 60_000, np.random.default_rng(4)
    )
    rev = p.propensities(
        sub[::-1].copy(),
        x,
        100_000 if kind != "lin_ts_shared" else 60_000,
        np.random.default_rng(5),
    )
    assert pr.shape == (2,)
    assert abs(pr[0] - rev[1]) <= 0.01
    # arm 2 is the bad one
    assert pr[0] < pr[1]


@pytest.mark.parametrize("kind", ["lin_ts_disjoint", "logistic_ts"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ev=event_sets(max_events=20), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_fused_rank_equals_the_step_by_step_path(
    kind: str, ev: Events, seed: int, data: st.DataObject
) -> None:
    """rank() (checks in one kernel call, repack + draw + top k in another)
    makes the same draws as the step-by-step _rank, and a refused call spends
    no draw: the next ranking is the one it would have been without it."""
    p, q = build(kind, ev.n_arms, ev.dim), build(kind, ev.n_arms, ev.dim)
    p.update_batch(ev.arms, ev.xs, ev.rewards)
    q.update_batch(ev.arms, ev.xs, ev.rewards)
    arms = np.arange(ev.n_arms)
    k = data.draw(st.integers(1, ev.n_arms), label="k")
    g1, g2 = np.random.default_rng(seed), np.random.default_rng(seed)
    fused = p.rank(arms, ev.xs[0], k, g1)
    stepwise, _, _ = q._rank(arms, ev.xs[0], k, g2)  # type: ignore[attr-defined]
    assert np.array_equal(fused.order, stepwise.order)
    assert np.array_equal(fused.scores, stepwise.scores)
    bad_x = ev.xs[0].copy()
    bad_x[-1] = np.nan
    for a, x, shown in (
        (np.array([0, ev.n_arms]), ev.xs[0], f"arm index {ev.n_arms}"),
        (arms, bad_x, "feature value nan"),
        (arms, ev.xs[0][:-1], "context has shape"),
        (arms, None, "needs a context"),
    ):
        with pytest.raises(InvalidArgument, match=shown):
            p.rank(a, x, 1, g1)
    after_refusals = p.rank(arms, ev.xs[-1], k, g1)
    without = q.rank(arms, ev.xs[-1], k, g2)
    assert np.array_equal(after_refusals.order, without.order)
    assert np.array_equal(after_refusals.scores, without.scores)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ev=event_sets(max_events=30))
def test_linear_posterior_summary_survives_a_reload_bit_for_bit(ev: Events) -> None:
    """A restart reloads (A, b) and rebuilds the caches; GetArm's mean and std
    come from (A, b), so they do not move, not even in the last digit."""
    p = build("lin_ts_disjoint", ev.n_arms, ev.dim)
    for a, x, r in zip(ev.arms, ev.xs, ev.rewards, strict=True):
        p.update(int(a), x, float(r))  # Sherman-Morrison caches, event by event
    q = p.clone()
    for _ in range(ev.n_arms):
        q.add_arm()
    q.load_state_dict(p.state_dict())
    for arm in range(ev.n_arms):
        assert p.posterior(arm, ev.xs[0]) == q.posterior(arm, ev.xs[0])


@pytest.mark.parametrize(
    ("alpha", "beta"),
    [
        ((0.3, 2.0, 0.8), (0.5, 5.0, 0.8)),  # shapes below 1: the boosted Gamma draw
        ((1.0, 30.0, 3.0), (1.0, 70.0, 6.0)),
        ((250.0, 240.0), (750.0, 760.0)),  # narrow posteriors, close means
        # two contenders among hopeless arms, which the kernel skips (it cannot
        # draw them above the contenders' smallest possible draw)
        ((500.0, 510.0, *[100.0] * 30), (500.0, 490.0, *[900.0] * 30)),
        # one leader and 40 arms 5 sd below it: each rarely wins, together often
        # enough to see if the kernel skipped arms that can still win
        ((2000.0, *[1820.0] * 40), (8000.0, *[8180.0] * 40)),
    ],
)
def test_beta_first_slot_kernel_matches_numpy_beta_draws(
    alpha: tuple[float, ...], beta: tuple[float, ...]
) -> None:
    """The Beta first-slot kernel (Gamma draws by Marsaglia-Tsang from the
    seeded tables) against numpy's own Beta sampler: same first-slot
    probabilities within 5 standard errors."""
    a, b = np.array(alpha), np.array(beta)
    p = BetaTS(1)
    for _ in a:
        p.add_arm()
    n = a.shape[0]
    p.load_state_dict(
        {"pulls": np.zeros(n, np.int64), "reward_sum": np.zeros(n), "alpha": a, "beta": b}
    )
    arms = np.arange(a.shape[0])
    draws = 100_000  # inside the tables: every draw fresh
    ours = p.propensities(arms, None, draws, np.random.default_rng(7))
    ref_draws = np.random.default_rng(8).beta(a, b, size=(1_000_000, a.shape[0]))
    theirs = np.bincount(ref_draws.argmax(axis=1), minlength=a.shape[0]) / 1_000_000
    se = np.sqrt(theirs * (1 - theirs) / draws) + 1e-4
    assert np.all(np.abs(ours - theirs) <= 5 * se), (ours, theirs)
    rare = theirs < 0.01  # together
    se_rare = np.sqrt(theirs[rare].sum() / draws) + 1e-4
    assert abs(ours[rare].sum() - theirs[rare].sum()) <= 5 * se_rare, (ours, theirs)


@pytest.mark.parametrize("shape", [0.2, 0.9, 1.0, 3.7, 50.0, 5000.0])
def test_gamma_draws_stay_within_the_bounds_the_beta_kernel_skips_by(shape: float) -> None:
    from bandit_engine import kernels
    from bandit_engine.policies import normal_table, uniform_table

    normals, uniforms = normal_table(), uniform_table()
    a1 = shape + 1.0 if shape < 1.0 else shape
    d = a1 - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * d)
    boost = 1.0 / shape if shape < 1.0 else 0.0
    lo, hi = kernels.gamma_bounds(d, c, boost, normals.min(), normals.max(), uniforms.min())
    pos_n, pos_u = 12345, 678
    draws = []
    for _ in range(20_000):
        g, pos_n, pos_u = kernels.gamma_draw(d, c, boost, normals, uniforms, pos_n, pos_u)
        draws.append(g)
    g = np.array(draws)
    assert lo <= g.min() and g.max() <= hi
    assert g.mean() == pytest.approx(shape, rel=0.05)  # Gamma(shape, 1) has mean shape
    # The bounds are attained: the table's extreme normal, accepted at once
    # (the smallest uniform passes the test), gives the extreme draw.
    u_first = int(np.argmin(uniforms))
    top, _, _ = kernels.gamma_draw(d, c, boost, normals, uniforms, int(np.argmax(normals)), u_first)
    assert top <= hi and (boost > 0 or top == hi)
    if boost == 0 and 1.0 + c * normals.min() > 0:
        bottom, _, _ = kernels.gamma_draw(
            d, c, boost, normals, uniforms, int(np.argmin(normals)), u_first
        )
        assert bottom == lo
