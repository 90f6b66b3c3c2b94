"""Continuous off-policy evaluation: the window's sums merge by addition and
give the estimators' definitions; on the same log the engine's running
estimates agree with the offline estimators (``simulators.estimators``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bandit_engine import Context, Engine, ExperimentConfig
from bandit_engine.core.challengers import POLICY_FIELDS
from bandit_engine.core.shadow import WINDOW_BUCKETS, Window, estimates, terms
from bandit_engine.store import SQLiteStore
from simulators.estimators import OPETerms, evaluate, policy_target
from simulators.logs import from_store
from simulators.replay import policy_for_log


def v(x: float | None) -> float:
    """An estimate that must be there."""
    assert x is not None
    return x


rows = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        arrays(np.float64, n, elements=st.floats(0.01, 50.0)),
        arrays(np.float64, n, elements=st.floats(0.0, 1.0)),
        arrays(np.float64, n, elements=st.floats(-3.0, 3.0)),
        st.integers(0, n),
    )
)


@settings(max_examples=60, deadline=None)
@given(rows=rows)
def test_sums_merge_and_give_the_estimators(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray, int],
) -> None:
    w, r, d, cut = rows
    whole = terms(w, r, d)
    np.testing.assert_allclose(
        whole, terms(w[:cut], r[:cut], d[:cut]) + terms(w[cut:], r[cut:], d[cut:])
    )
    est = estimates("c", "challenger", whole)
    n = w.shape[0]
    assert est.n == n
    assert est.ips == pytest.approx(float(np.mean(w * r)))
    assert est.snips == pytest.approx(float(np.sum(w * r) / np.sum(w)))
    assert est.dr == pytest.approx(float(np.mean(d)))
    assert est.ess == pytest.approx(float(w.sum() ** 2 / (w * w).sum()))
    if n >= 2:
        se = float(np.std(w * r, ddof=1) / np.sqrt(n))
        assert v(est.ips_high) - v(est.ips) == pytest.approx(1.959964 * se, rel=1e-5, abs=1e-9)
        assert v(est.ips_low) <= v(est.ips) <= v(est.ips_high)
        assert v(est.snips_low) <= v(est.snips) <= v(est.snips_high)
    else:
        assert est.ips_low is None and est.dr_high is None
    # in reward units [lo, hi]: an affine map of the [0, 1] estimates
    scaled = estimates("c", "challenger", whole, reward_min=-1.0, reward_max=3.0)
    assert scaled.snips == pytest.approx(-1.0 + 4.0 * v(est.snips))


def test_window_keeps_the_newest_decisions() -> None:
    win = Window(100)  # buckets of 10
    one = np.ones(1)
    for i in range(250):
        win.add({"c": terms(one, np.array([float(i >= 200)]), one)})
    total = win.total("c")
    # the newest 100 decisions: 90 in full buckets plus the 10 filling now
    assert total[0] == 100
    assert total[3] == 50  # rewards 1 for i >= 200
    state = win.state()
    again = Window(100)
    again.load(state, {"c"})
    np.testing.assert_array_equal(again.total("c"), total)
    assert state["win.c"].shape[0] == WINDOW_BUCKETS
    other = Window(1000)  # another window size starts empty
    other.load(state, {"c"})
    assert other.total("c")[0] == 0


def run_logged(tmp_path: Path, n: int) -> tuple[Engine, SQLiteStore]:
    """A beta_ts champion, a lin_ts_disjoint challenger ranking every request
    in shadow, rewards that depend on the context; each Recommend answered by
    its Feedback before the next (what the offline progressive target does)."""
    store = SQLiteStore(tmp_path / "s.db")
    ticks = iter(range(10**9))
    e = Engine(store, seed=11, clock=lambda: 1e9 + 0.01 * next(ticks))  # reproducible times
    e.create_experiment(
        ExperimentConfig(
            "exp", policy="beta_ts", dim=4, dense_dim=3, shadow_rate=1.0, shadow_window=100_000
        )
    )
    e.add_arms("exp", [(a, None) for a in ("a", "b", "c")])
    e.challengers.add("exp", "lin", {"policy": "lin_ts_disjoint", "half_life_s": 0.0})
    rng = np.random.default_rng(4)
    for _ in range(n):
        z = rng.normal(size=3)
        d = e.recommend("exp", Context(dense=list(z)))
        arm = d.arm_ids[0]
        p = {"a": 0.15 + 0.7 * (z[0] > 0), "b": 0.15 + 0.7 * (z[1] > 0), "c": 0.4}[arm]
        e.feedback(d.event_id, arm, float(rng.random() < p))
    e.flush()
    return e, store


def test_continuous_estimates_agree_with_the_offline_estimators(tmp_path: Path) -> None:
    e, store = run_logged(tmp_path, 1500)
    report = {est.name: est for est in e.challengers.report("exp").estimates}
    ((name, cfg),) = e.get_experiment("exp").challengers
    log = from_store(store, "exp").complete()
    assert log.n == 1500
    # the champion's on-policy value is the logged mean, exactly
    (logged,) = evaluate(log, policy_target(policy_for_log(log), log, seed=0), ["logged"], n_boot=0)
    assert report["initial"].ips == pytest.approx(logged.value, abs=1e-12)
    # the challenger, trained on the log as it came (progressive), as the engine's was
    settings_ = {k: v for k, v in cfg.to_dict().items() if k in POLICY_FIELDS}
    target = policy_target(
        policy_for_log(log, params=settings_), log, draws=cfg.propensity_draws, seed=3, learn=True
    )
    offline = {
        est.estimator: est for est in evaluate(log, target, ["ips", "snips", "dr"], n_boot=300)
    }
    live = report[name]
    # IPS and SNIPS differ by the Monte Carlo noise of the propensities only
    assert live.ips == pytest.approx(offline["ips"].value, abs=0.005)
    assert live.snips == pytest.approx(offline["snips"].value, abs=0.005)
    ess = OPETerms.build(log, target, reward_model=False).diagnostics()["ess"]
    assert live.ess == pytest.approx(ess, rel=0.05)
    # DR's reward models differ (the champion's posterior means here, a
    # cross-fitted ridge offline): the two intervals overlap
    assert v(live.dr_low) <= offline["dr"].ci_high and offline["dr"].ci_low <= v(live.dr_high)
    # and the interval widths are alike (normal here, bootstrap offline)
    width = offline["snips"].ci_high - offline["snips"].ci_low
    assert v(live.snips_high) - v(live.snips_low) == pytest.approx(width, rel=0.25)
    e.close()
