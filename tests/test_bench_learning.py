"""The ``learning`` section of the benchmarks and the simulator parts it uses.

The section runs in quick mode through the benchmark's command line; the
drift world, the discounted Thompson-sampling reference and the cached world
are checked on their own.
"""

from __future__ import annotations

import importlib.util
import json
import math
from typing import Any

import numpy as np
import pytest
from harness.bench import learning, learning_drift
from harness.bench.runner import TARGETS, main

from bandit_engine import InvalidArgument
from simulators.baselines import DiscountedTS, make_baseline
from simulators.simulate import make_contender
from simulators.worlds import CachedWorld, SwitchingBernoulliWorld, make_world


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# ------------------------------------------------------------ the section
@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "learning.json"
    assert main(["--quick", "--only", "learning", "--out", str(out)]) == 0
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_quick_section_has_every_figure_finite_and_in_range(
    quick_run: dict[str, Any],
) -> None:
    figures = {k: v for k, v in quick_run.items() if k != "meta"}
    for key in (
        "drift_share_last",
        "shared_rank_us",
        "shared_rank_us_jd512",
        "shared_update_us",
        *(f"drift_share_last_{w}_{c}" for w in learning_drift.WORLDS
          for c in learning_drift.CONTENDERS),
    ):  # fmt: skip
        assert key in figures, key
    worlds = [w.name for w in learning.WORLDS if w.world != "supervised"]
    if _have("sklearn"):
        worlds += ["iris", "wine", "breast_cancer"]
    for w in worlds:
        for kind in learning.ENGINE:
            assert f"learning_{w}_{kind}" in figures
            assert f"learning_{w}_{kind}_sweep_best" in figures
    assert "learning_destinations_lin_ts_shared" in figures
    for kind, sfx in learning.SUFFIX.items():
        assert f"learning_default_vs_sweep_best{sfx}" in figures, kind
    if _have("mabwiser") or _have("vowpalwabbit"):
        assert "learning_default_vs_best_peer" in figures
        assert "learning_default_vs_best_peer_logistic" in figures
    if _have("mabwiser"):
        assert "learning_iris_mabwiser_linucb" in figures or not _have("sklearn")
        assert "learning_bernoulli_mabwiser_lints" in figures
    if _have("vowpalwabbit"):
        assert "learning_destinations_vw_squarecb" in figures
    for key, value in figures.items():
        assert isinstance(value, float) and math.isfinite(value), key
        if key.startswith(("learning_", "drift_share")) and "_vs_" not in key:
            assert 0.0 <= value <= 1.0, (key, value)  # rewards and shares are rates
        elif "_vs_" in key:
            assert 0.1 < value < 10.0, (key, value)
        else:
            assert value > 0.0, (key, value)
    # a bigger model costs more per rank once its factor is stale
    assert figures["shared_rank_us_jd512"] > figures["shared_rank_us"]


def test_quick_section_targets_and_details(quick_run: dict[str, Any]) -> None:
    for key in learning.TARGETS:
        assert key in TARGETS
    meta = quick_run["meta"]
    assert isinstance(meta, dict)
    assert meta["failures"] == {}
    info = meta["learning"]
    assert info["failed"] == {}
    assert set(info["drift"]["per_seed"]) == set(learning_drift.WORLDS)
    sweep = info["sweeps"]["lin_ts_disjoint"]["bernoulli"]
    # every grid point has a figure (the default's point reuses the default's runs)
    assert len(sweep) == len(learning.sweep_points("lin_ts_disjoint"))
    # every figure is described, so the table and the JSON explain themselves
    assert all(meta["descriptions"][k] for k in quick_run if k != "meta")
    units = meta["units"]
    assert units["learning_destinations_lin_ts_shared"] == "reward"  # not "_share": a fraction
    assert units["drift_share_last"] == "fraction" and units["shared_rank_us"] == "us"


def test_sweep_is_the_product_of_its_lists() -> None:
    points = learning.sweep_points("lin_ts_disjoint")
    grid = learning.SWEEPS["lin_ts_disjoint"]
    assert len(points) == math.prod(len(v) for v in grid.values())
    assert {"noise_scale": 0.05, "prior_precision": 10.0, "exploration": 1.0} in points
    assert len({json.dumps(p, sort_keys=True) for p in points}) == len(points)


def test_a_sweep_parameter_the_policy_lacks_is_skipped_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(
        learning.SWEEPS, "logistic_ts", {"prior_precision": (1.0,), "no_such_knob": (2.0,)}
    )
    monkeypatch.setattr(learning, "WORLDS", (learning.WORLDS[-1],))  # bernoulli only
    monkeypatch.setattr(learning, "PEERS", {})
    bench = learning.LearningBench(quick=True)
    figures = bench.run(parts=("worlds",))
    (reason,) = bench.info["skipped"].values()
    assert "no_such_knob" in reason
    assert "learning_bernoulli_logistic_ts_sweep_best" not in figures
    assert 0.0 < figures["learning_bernoulli_lin_ts_disjoint_sweep_best"] <= 0.5


# ------------------------------------------------------------- drift world
def test_switching_world_changes_its_rates_at_the_switch() -> None:
    w = SwitchingBernoulliWorld(
        np.random.default_rng(0), probs=(0.6, 0.3), probs_after=(0.3, 0.6), switch_at=5
    )
    means = [r.means.tolist() for r in w.rounds(8)]
    assert means[:5] == [[0.6, 0.3]] * 5 and means[5:] == [[0.3, 0.6]] * 3
    again = make_world("bernoulli_switch", np.random.default_rng(0), probs=(0.6, 0.3),
                       probs_after=(0.3, 0.6), switch_at=5)  # fmt: skip
    assert all(
        np.array_equal(a.uniforms, b.uniforms)
        for a, b in zip(w.rounds(8), again.rounds(8), strict=True)
    )
    assert w.describe()["probs_after"] == [0.3, 0.6]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"probs_after": (0.6, 0.8, 0.1)}, "probs_after has 3 arms; probs has 2"),
        ({"probs_after": (0.6, 1.5)}, r"probs_after\[1\]=1.5"),
        ({"switch_at": -1}, "switch_at=-1"),
    ],
)
def test_switching_world_names_a_bad_value(params: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        make_world("bernoulli_switch", np.random.default_rng(0), **params)


# ----------------------------------------------------- discounted TS (peer)
def test_discounted_ts_batch_equals_events_one_by_one() -> None:
    one, batch = DiscountedTS(gamma=0.9), DiscountedTS(gamma=0.9)
    for p in (one, batch):
        p.add_arm()
        p.add_arm()
    arms = np.array([0, 1, 0, 0, 1])
    rewards = np.array([1.0, 0.0, 0.5, 1.0, 1.0])
    for a, r in zip(arms, rewards, strict=True):
        one.update(int(a), None, float(r))
    batch.update_batch(arms, None, rewards)
    for a in (0, 1):
        assert batch.posterior(a) == pytest.approx(one.posterior(a), rel=1e-12)
    # by hand for arm 1: S = 0.9^3 * 0 + 1 (last event), F = 0.9^3 * 1
    s, f = 1.0, 0.9**3
    assert one.posterior(1)[0] == pytest.approx((s + 1.0) / (s + f + 2.0))


def test_discounted_ts_forgets_an_arm_that_is_not_played() -> None:
    p = DiscountedTS(gamma=0.99)
    p.add_arm()
    p.add_arm()
    p.update_batch(np.ones(200, dtype=np.int64), None, np.zeros(200))
    _, sd_known = p.posterior(1)
    p.update_batch(np.zeros(500, dtype=np.int64), None, np.ones(500))  # arm 1 left alone
    mean, sd = p.posterior(1)
    assert sd > 3 * sd_known and mean > 0.3  # back near the Beta(1, 1) prior
    assert p.clone().params() == {"dim": 1, "gamma": 0.99, "prior_alpha": 1.0, "prior_beta": 1.0}
    with pytest.raises(InvalidArgument, match=r"gamma=1\.5"):
        make_baseline("discounted_ts", 1, gamma=1.5)


def test_discounted_ts_finds_the_arm_that_improved() -> None:
    world = make_world("bernoulli_switch", np.random.default_rng(0), switch_at=2_000)
    tr = make_contender("discounted_ts:gamma=0.99").run(world, 4_000, 1, 0)
    assert np.mean(tr.regrets[-400:] == 0) > 0.8


# ------------------------------------------------------------ cached world
def test_cached_world_replays_the_same_rounds() -> None:
    base = make_world("destinations", np.random.default_rng(3), n_arms=6)
    cached = CachedWorld(base, 50)
    fresh = list(make_world("destinations", np.random.default_rng(3), n_arms=6).rounds(50))
    got = list(cached.rounds(50))
    assert [r.t for r in got] == list(range(50))
    assert all(
        np.array_equal(a.means, b.means) and np.array_equal(a.x, b.x)
        for a, b in zip(got, fresh, strict=True)
    )
    assert list(cached.rounds(10)) == got[:10]
    assert cached.n_arms == 6 and cached.describe() == base.describe()
    with pytest.raises(InvalidArgument, match="rounds=51 must be a positive integer of at most 50"):
        cached.rounds(51)
    # a contender sees the same stream through the cache
    a = make_contender("lin_ts_disjoint").run(cached, 50, 1, 0)
    b = make_contender("lin_ts_disjoint").run(
        make_world("destinations", np.random.default_rng(3), n_arms=6), 50, 1, 0
    )
    assert np.array_equal(a.regrets, b.regrets)


def test_descriptions_cover_the_headline_keys() -> None:
    keys = set(learning.DESCRIPTIONS)
    assert set(learning.TARGETS) <= keys
    assert all(f"drift_share_last_{w}_beta_ts" in keys for w in learning_drift.WORLDS)
