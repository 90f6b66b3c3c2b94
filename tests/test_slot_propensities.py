"""Per-slot propensities: the probability that the policy puts each shown
arm at its slot for this context, from the draws of the first-slot figure.

Checked against brute-force Monte Carlo of each policy's own Thompson draws
(``sample_scores`` ranked by ``top_k``), within sampling error.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from bandit_engine import Context, Engine, ExperimentConfig, kernels
from bandit_engine.core import DecisionRow
from bandit_engine.policies import Policy, make_policy, normal_table32
from bandit_engine.store import SQLiteStore
from bandit_engine.stream.records import decode_decision, encode_decision

DRAWS = 20_000


def trained(kind: str, n_arms: int = 6, dim: int = 3, seed: int = 0) -> Policy:
    pol = make_policy(kind, dim=dim, half_life_s=0.0)
    for _ in range(n_arms):
        pol.add_arm()
    rng = np.random.default_rng(seed)
    n = 40 * n_arms
    arms = rng.integers(0, n_arms, n).astype(np.int64)
    xs = np.column_stack([np.ones(n), rng.uniform(-1, 1, (n, dim - 1))])
    p = 0.2 + 0.1 * arms / n_arms  # close rates: the slots are contested
    pol.update_batch(arms, xs, (rng.random(n) < p).astype(float))
    return pol


def brute_force(
    pol: Policy,
    arms: np.ndarray,
    x: np.ndarray,
    order: np.ndarray,
    n: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Slot and prefix shares of ``order`` over ``n`` independent Thompson draws."""
    k = order.shape[0]
    slot = np.zeros(k)
    prefix = np.zeros(k)
    for _ in range(n):
        top = kernels.top_k(pol.sample_scores(arms, x, rng), k)
        hit = top == order
        slot += hit
        prefix += np.cumprod(hit)
    return slot / n, prefix / n


@pytest.mark.parametrize("kind", ["beta_ts", "lin_ts_disjoint", "logistic_ts", "lin_ts_shared"])
def test_slot_counts_match_the_policys_own_draws(kind: str) -> None:
    pol = trained(kind)
    arms = np.arange(6, dtype=np.int64)
    x = np.array([1.0, 0.3, -0.2])
    rng = np.random.default_rng(1)
    order = pol.rank(arms, x, 3, rng).order
    slot, prefix = pol.slot_counts(arms, x, order, DRAWS, rng)
    assert slot.shape == prefix.shape == (3,)
    assert slot[0] == prefix[0] and (prefix <= slot).all()
    assert (np.diff(prefix) <= 0).all()  # a longer prefix is rarer
    want_slot, want_prefix = brute_force(pol, arms, x, order, 4000, np.random.default_rng(2))
    # sampling error of both estimates: a few standard errors of a share
    tol = 4.5 * np.sqrt(0.25 / 4000 + 0.25 / DRAWS)
    np.testing.assert_allclose(slot / DRAWS, want_slot, atol=tol)
    np.testing.assert_allclose(prefix / DRAWS, want_prefix, atol=tol)


def test_the_first_slot_figure_is_the_first_slot_kernels() -> None:
    """With the same table offset, slot 0 of the Gaussian kernel counts the
    very draws that ``first_slot_counts_gauss`` counts."""
    rng = np.random.default_rng(3)
    mean = rng.normal(0, 0.3, 50)
    std = np.abs(rng.normal(0.2, 0.05, 50))
    table = normal_table32()
    for offset in (0, 777, 65_000):
        first = kernels.first_slot_counts_gauss(mean, std, table, offset, 3000)
        top = np.array([int(np.argmax(mean))])
        slot, _ = kernels.slot_counts_gauss(mean, std, table, offset, 3000, top)
        assert slot[0] == first[top[0]]


def test_a_shown_arm_that_cannot_reach_its_slot_counts_zero() -> None:
    """An arm whose every draw is below the k-th arm's every draw holds no
    slot of the top k in any draw: the kernel counts none, exactly."""
    mean = np.array([10.0, 9.0, 8.0, -50.0])
    std = np.full(4, 0.01)
    shown = np.array([0, 1, 3], dtype=np.int64)  # arm 3 shown third: impossible
    slot, prefix = kernels.slot_counts_gauss(mean, std, normal_table32(), 5, 500, shown)
    assert slot.tolist() == [500, 500, 0] and prefix.tolist() == [500, 500, 0]
    shown, props, pre = kernels.slot_propensities(
        np.arange(4, dtype=np.int64), shown, slot, prefix, 500
    )
    assert props[2] == pre[2] == 1 / 501  # the served draw itself


def _engine(tmp_path: Path, kind: str, policy: str = "lin_ts_disjoint") -> Engine:
    e = Engine(SQLiteStore(tmp_path / f"{kind}.db"), seed=5)
    e.create_experiment(
        ExperimentConfig("exp", policy=policy, dim=3, dense_dim=2, propensity_kind=kind)
    )
    e.add_arms("exp", [(f"a{i}", {}) for i in range(5)])
    return e


def test_engine_serves_and_logs_per_slot_propensities(tmp_path: Path) -> None:
    first = _engine(tmp_path, "first_slot")
    per = _engine(tmp_path, "per_slot")
    for i in range(30):
        c = Context(dense=[0.1 * i % 1.0, -0.5])
        k = 1 if i % 2 else 3
        d1 = first.recommend("exp", c, k=k)
        d2 = per.recommend("exp", c, k=k)
        assert (d1.propensity_kind, d2.propensity_kind) == ("first_slot", "per_slot")
        # same seed, same draws: the same ranking, and for one slot the same
        # figure (more slots weigh more arms: other table windows)
        assert d1.arm_ids == d2.arm_ids
        if k == 1:
            assert d1.propensities[0] == d2.propensities[0]
        assert ((d2.propensities > 0) & (d2.propensities <= 1)).all()
        for e, d in ((first, d1), (per, d2)):
            e.feedback(d.event_id, d.arm_ids[0], 1.0)
    per.flush()
    rows = list(per.store.decisions("exp"))
    assert len(rows) == 30
    # the stored row holds what Recommend answered, prefixes included
    assert rows[-1].propensities == tuple(d2.propensities.tolist())
    assert d2.prefix_propensities is not None
    assert rows[-1].prefix_propensities == tuple(d2.prefix_propensities.tolist())
    assert d2.prefix_propensities[0] == d2.propensities[0]
    assert (np.diff(d2.prefix_propensities) <= 0).all()
    assert (d2.prefix_propensities <= d2.propensities).all()
    assert all(r.prefix_propensities == () for r in first.store.decisions("exp"))
    first.close()
    per.close()


def test_decisions_topic_says_which_propensities_it_holds() -> None:
    row = DecisionRow(
        "ev", "exp", 1.0, 2.0, 3, np.array([1.0, 2.0]), ("a", "b"), (0.5, 0.4), (0.3, 0.2)
    )
    assert decode_decision(encode_decision(row)).propensity_kind == "first_slot"
    per = dataclasses.replace(row, propensity_kind="per_slot")
    assert decode_decision(encode_decision(per)).propensity_kind == "per_slot"


def test_slate_estimators_run_on_the_engines_own_export(tmp_path: Path) -> None:
    """A per_slot experiment's export carries what standard, independent and
    reward-interaction IPS need: each gives an estimate on it."""
    import json
    import subprocess
    import sys

    e = Engine(SQLiteStore(tmp_path / "state.db"), seed=3)
    e.create_experiment(
        ExperimentConfig(
            "carousel", policy="beta_ts", dim=1, propensity_kind="per_slot", propensity_draws=300
        )
    )
    e.add_arms("carousel", [(a, {}) for a in ("a", "b", "c", "d")])
    rng = np.random.default_rng(0)
    for _ in range(200):
        d = e.recommend("carousel", None, k=3)
        for arm in d.arm_ids:
            if rng.random() < 0.2:
                e.feedback(d.event_id, arm, 1.0)
    e.sweep(e.clock() + 7200.0)  # close every window: default rewards for the rest
    e.close()
    log = tmp_path / "carousel.jsonl"
    run = [sys.executable, "-m", "simulators"]
    export = [*run, "export-log", "--state-dir", str(tmp_path), "--experiment", "carousel"]
    done = subprocess.run([*export, "--out", str(log)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "slate.json"
    done = subprocess.run(
        [*run, "slate-evaluate", "--log", str(log), "--target", "uniform", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = {r["estimator"]: r for r in json.loads(out.read_text())["results"]}
    # every arm is clicked at 0.2 wherever it is shown: any slate of 3 is worth 0.6
    for name in ("ips", "iips", "rips"):
        r = rows[name]
        assert r["ci_low"] <= 0.6 <= r["ci_high"], r
        assert r["se"] < 0.1, r
