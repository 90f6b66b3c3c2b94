"""Slate off-policy evaluation: hand computations, exact worlds, bias, real-log adapters."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bandit_engine import InvalidArgument
from simulators import obd
from simulators.slate import (
    SlateWorld,
    estimate_all,
    pair_marginals,
    run_study,
    slate_iips,
    slate_ips,
    slate_pi,
    slate_pi_independent,
    slate_rips,
    slot_item_marginals,
)
from simulators.slate.cli import evaluate_slates
from simulators.slate.estimators import impression_iips
from simulators.slate.logs import read_slate_jsonl, slates_from_records
from simulators.slate.targets import ranking_slates, uniform_slates

# --------------------------------------------------------------- a tiny log
# three slates of two slots
R = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


def rng0() -> np.random.Generator:
    return np.random.default_rng(0)


def sd_se(terms: list[float]) -> float:
    t = np.array(terms)
    return float(t.std(ddof=1) / math.sqrt(len(terms)))


def test_standard_ips_matches_hand_computation() -> None:
    # joint ratios 0.2/0.1 = 2, 0.1/0.2 = 0.5, 0.3/0.1 = 3; slate rewards 1, 1, 2
    e = slate_ips(R, [0.2, 0.1, 0.3], [0.1, 0.2, 0.1])
    terms = [2.0 * 1, 0.5 * 1, 3.0 * 2]  # 2, 0.5, 6
    assert e.value == pytest.approx(8.5 / 3, rel=1e-12)
    assert e.se == pytest.approx(sd_se(terms), rel=1e-12)
    assert e.ci_low == pytest.approx(8.5 / 3 - 1.959963984540054 * e.se, rel=1e-9)
    # self-normalised: slot 0 (2*1 + 0 + 3*1) / 5.5, slot 1 (0 + 0.5*1 + 3*1) / 5.5
    sn = slate_ips(R, [0.2, 0.1, 0.3], [0.1, 0.2, 0.1], self_normalized=True)
    assert sn.value == pytest.approx(5 / 5.5 + 3.5 / 5.5, rel=1e-12)


def test_iips_and_rips_match_hand_computation() -> None:
    tm = [[0.5, 0.2], [0.4, 0.4], [0.3, 0.6]]
    lm = [[0.25, 0.4], [0.2, 0.5], [0.3, 0.3]]
    # marginal ratios [[2, .5], [2, .8], [1, 2]]: rows 2*1, .8*1, 1*1 + 2*1
    e = slate_iips(R, tm, lm)
    assert e.value == pytest.approx((2.0 + 0.8 + 3.0) / 3, rel=1e-12)
    assert e.se == pytest.approx(sd_se([2.0, 0.8, 3.0]), rel=1e-12)
    # self-normalised per slot: (2 + 1) / (2 + 2 + 1) + (0.8 + 2) / (0.5 + 0.8 + 2)
    sn = slate_iips(R, tm, lm, self_normalized=True)
    assert sn.value == pytest.approx(3 / 5 + 2.8 / 3.3, rel=1e-12)
    tp = [[0.5, 0.2], [0.4, 0.1], [0.3, 0.3]]
    lp = [[0.25, 0.1], [0.2, 0.2], [0.3, 0.1]]
    # prefix ratios [[2, 2], [2, .5], [1, 3]]: rows 2*1, .5*1, 1*1 + 3*1
    e = slate_rips(R, tp, lp)
    assert e.value == pytest.approx((2.0 + 0.5 + 4.0) / 3, rel=1e-12)


def test_pseudo_inverse_matches_hand_computation() -> None:
    tm = [[0.5, 0.2], [0.4, 0.4], [0.3, 0.6]]
    lm = [[0.25, 0.4], [0.2, 0.5], [0.3, 0.3]]
    # independent logging slots: joint = product of marginals
    joint = [0.1, 0.1, 0.09]
    # coefficients sum_k t/m - (K - 1): 1.5, 1.8, 2.0; slate rewards 1, 1, 2
    e = slate_pi_independent(R, tm, lm, logging_joint=joint)
    assert e.value == pytest.approx((1.5 + 1.8 + 4.0) / 3, rel=1e-12)
    # general form, one slot, two items: Gamma = diag(mu), so PI is IPS
    slates = np.array([[0], [1]])
    mu = np.array([[0.25, 0.75]])
    gamma = pair_marginals(np.array([[0], [1]]), mu, 2)
    np.testing.assert_allclose(gamma[0], np.diag([0.25, 0.75]))
    q = np.array([[[0.5, 0.5]]])
    e = slate_pi([[1.0], [1.0]], slates, q, gamma, context=np.array([0, 0]))
    assert e.value == pytest.approx((0.5 / 0.25 + 0.5 / 0.75) / 2, rel=1e-9)
    # one matrix per row instead of per context: the same
    per_row = slate_pi([1.0, 1.0], slates, np.repeat(q, 2, 0), np.repeat(gamma, 2, 0))
    assert per_row.value == pytest.approx(e.value, rel=1e-12)
    with pytest.raises(InvalidArgument, match="unknown slate estimator 'magic'"):
        estimate_all(SlateWorld.make().inputs(SlateWorld.make().sample(5, rng0())), ("magic",))


def test_impression_iips_adds_the_slots() -> None:
    pos = np.array([0, 0, 1, 1, 1])
    r = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    t = np.array([0.5, 0.1, 0.2, 0.2, 0.4])
    m = np.array([0.25, 0.1, 0.1, 0.4, 0.2])
    # slot 0: mean(2, 0) = 1; slot 1: mean(2, 0, 2) = 4/3
    e = impression_iips(pos, r, t, m, 2)
    assert e.value == pytest.approx(1 + 4 / 3, rel=1e-12)
    var = np.var([2.0, 0.0], ddof=1) / 2 + np.var([2.0, 0.0, 2.0], ddof=1) / 3
    assert e.se == pytest.approx(math.sqrt(var), rel=1e-12)


def test_bootstrap_interval_is_seeded_and_brackets_the_value() -> None:
    rng = np.random.default_rng(0)
    r = rng.random((200, 2))
    t, m = rng.uniform(0.1, 0.5, 200), rng.uniform(0.1, 0.5, 200)
    a = slate_ips(r, t, m, interval="bootstrap", n_boot=300, seed=3)
    b = slate_ips(r, t, m, interval="bootstrap", n_boot=300, seed=3)
    c = slate_ips(r, t, m, interval="bootstrap", n_boot=300, seed=4)
    assert a == b and a.ci_low != c.ci_low
    assert a.ci_low < a.value < a.ci_high
    normal = slate_ips(r, t, m)
    assert abs((a.ci_high - a.ci_low) / (normal.ci_high - normal.ci_low) - 1) < 0.25


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: slate_ips(R, [0.2, 0.1], [0.1, 0.2, 0.1]), r"target_joint has shape \(2,\)"),
        (lambda: slate_ips(R, [0.2, 0.1, 0.3], [0.1, 0.0, 0.1]), r"logging_joint\[1\] = 0.0"),
        (lambda: slate_ips(R, [0.2, 1.5, 0.3], [0.1, 0.2, 0.1]), r"target_joint\[1\] = 1.5"),
        (lambda: slate_ips(R[:, :1].ravel(), [1, 1, 1], [1, 1, 1]), "slot_rewards has shape"),
        (
            lambda: slate_iips([[1.0, np.nan]] * 3, [[0.5, 0.5]] * 3, [[0.5, 0.5]] * 3),
            r"slot_rewards\[0, 1\] is nan",
        ),
        (
            lambda: slate_iips(R, [[0.5, 0.5]] * 3, [[0.5, -0.1]] * 3),
            r"logging_marginal\[0, 1\] = -0.1 is outside \(0, 1\]",
        ),
        (
            lambda: slate_rips(R, [[0.2, 0.3]] * 3, [[0.5, 0.5]] * 3),
            r"target_prefix\[0, 1\] = 0.3 exceeds",
        ),
        (lambda: slate_ips(R, [0.2] * 3, [0.1] * 3, alpha=1.5), "alpha=1.5"),
        (
            lambda: slate_pi_independent(
                R, [[0.5, 0.5]] * 3, [[0.5, 0.5]] * 3, logging_joint=[0.25, 0.25, 0.2]
            ),
            r"logging_joint\[2\] = 0.2 but the product .* not independent",
        ),
        (
            # the logging policy never shows item 1; the target does
            lambda: slate_pi(
                [[1.0]], np.array([[0]]), [[[0.5, 0.5]]], pair_marginals([[0], [1]], [[1, 0]], 2)
                [:1], context=np.array([0]),
            ),
            "not in the range",
        ),
        (
            lambda: slate_pi([[1.0]], np.array([[2]]), [[[0.5, 0.5]]], np.eye(2)[None] / 2),
            r"slates\[0, 0\] = 2",
        ),
    ],
)  # fmt: skip
def test_bad_input_is_refused_naming_the_value(call: Any, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        call()


# ------------------------------------------------------------ the worlds
@pytest.mark.parametrize("structure", ["independent", "cascade", "interaction"])
def test_exact_value_matches_brute_force_monte_carlo(structure: str) -> None:
    world = SlateWorld.make(structure, seed=3)
    assert world.slates.shape == (60, 3)
    np.testing.assert_allclose(world.logging.sum(axis=1), 1.0)
    np.testing.assert_allclose(world.target.sum(axis=1), 1.0)
    np.testing.assert_allclose(world.marginals("target").sum(axis=2), 1.0)
    np.testing.assert_allclose(world.prefixes("logging")[:, :, -1], world.logging)
    for policy in ("target", "logging"):
        log = world.sample(200_000, np.random.default_rng(11), policy)
        total = log.slot_rewards.sum(axis=1)
        se = total.std() / math.sqrt(log.n)
        assert abs(total.mean() - world.value(policy)) < 4 * se, (policy, world.value(policy))
    if structure == "cascade":  # at most one click per slate
        assert log.slot_rewards.sum(axis=1).max() == 1.0
    # the target is better than the logging policy: there is something to estimate
    assert world.value("target") > world.value("logging") + 0.05


def test_unbiased_estimators_are_unbiased_and_iips_is_not_under_interactions() -> None:
    bias_z = {}
    for structure in ("independent", "cascade", "interaction"):
        st = run_study(SlateWorld.make(structure, seed=0), n_logs=300, n_rows=800, seed=5)
        for name, e in st.estimators.items():
            bias_z[structure, name] = e.bias_z
            if e.unbiased:
                assert e.bias_z < 4.0, (structure, name, e)
                assert e.coverage > 0.88, (structure, name, e)
    # assumptions that fail show: IIPS in cascade and interaction, RIPS in interaction
    assert bias_z["interaction", "iips"] > 8.0
    assert bias_z["cascade", "iips"] > 8.0
    assert bias_z["interaction", "rips"] > 4.0


def test_general_pi_reduces_to_the_closed_form_for_independent_logging_slots() -> None:
    world = SlateWorld.make("independent", logging="independent", seed=2)
    assert world.slates.shape == (125, 3)
    inp = world.inputs(world.sample(3000, np.random.default_rng(0)))
    general = slate_pi(
        inp.slot_rewards, inp.slates, inp.target_slot_item, inp.logging_pairs, context=inp.context
    )
    closed = slate_pi_independent(
        inp.slot_rewards, inp.target_marginal, inp.logging_marginal, logging_joint=inp.logging_joint
    )
    assert general.value == pytest.approx(closed.value, rel=1e-9)
    assert general.se == pytest.approx(closed.se, rel=1e-7)
    # Plackett-Luce logging has dependent slots: the closed form refuses it
    pl = SlateWorld.make("independent", seed=2)
    inp = pl.inputs(pl.sample(100, np.random.default_rng(0)))
    with pytest.raises(InvalidArgument, match="not independent"):
        slate_pi_independent(
            inp.slot_rewards, inp.target_marginal, inp.logging_marginal,
            logging_joint=inp.logging_joint,
        )  # fmt: skip
    q = slot_item_marginals(pl.slates, pl.target, pl.n_items)
    np.testing.assert_allclose(q, pl.marginals("target"))


# ------------------------------------------------------------ engine logs
def header(arms: list[str]) -> dict[str, Any]:
    return {
        "type": "header", "format": "bandit-engine-log", "version": 1,
        "arms": [{"arm_id": a, "active": True} for a in arms],
        "config": {"propensity_kind": "per_slot"},
    }  # fmt: skip


def decision(
    arms: list[str], props: list[float], prefix: list[float] | None, rewards: list[Any], **kw: Any
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "type": "decision", "event_id": kw.pop("event_id", "e"), "x": [1.0],
        "candidates": None, "arms": arms, "propensities": props,
        "propensity_kind": kw.pop("kind", "per_slot"),
        "rewards": [None if r is None else {"reward": r, "reward_norm": r} for r in rewards],
    }  # fmt: skip
    if prefix is not None:
        rec["prefix_propensities"] = prefix
    rec.update(kw)
    return rec


def test_engine_records_become_slate_inputs() -> None:
    recs = [
        header(["a", "b", "c", "d"]),
        decision(["b", "a", "c"], [0.5, 0.4, 0.5], [0.5, 0.2, 0.1], [1, 0, 1], event_id="1"),
        decision(["a", "c"], [0.3, 0.2], [0.3, 0.1], [0, 1], event_id="2"),
        decision(["c", "d", "a"], [0.2, 0.5, 0.6], [0.2, 0.1, 0.05], [0, None, 0], event_id="3"),
        decision(["d", "b", "a"], [0.1, 0.3, 0.2], [0.1, 0.05, 0.01], [0, 1, None], event_id="4"),
    ]
    data = slates_from_records(recs, slots=2)
    # row 2 shows two slots (kept), row 3 lacks slot 1's reward (left out), row 4 is cut
    assert data.event_id == ("1", "2", "4")
    assert data.dropped == {"fewer_slots": 0, "missing_rewards": 1}
    assert data.arm_ids == ("a", "b", "c", "d")
    np.testing.assert_array_equal(data.slates, [[1, 0], [0, 2], [3, 1]])
    np.testing.assert_array_equal(data.slot_rewards, [[1, 0], [0, 1], [0, 1]])
    np.testing.assert_array_equal(data.logging_marginal, [[0.5, 0.4], [0.3, 0.2], [0.1, 0.3]])
    np.testing.assert_array_equal(data.logging_joint, [0.2, 0.1, 0.05])  # the last prefix
    # uniform over the 4 header arms: 1/4 per slot, prefixes 1/4, 1/12
    u = uniform_slates(data)
    np.testing.assert_allclose(u.marginal, 0.25)
    np.testing.assert_allclose(u.prefix, [[0.25, 1 / 12]] * 3)
    e = slate_ips(data.slot_rewards, u.joint, data.logging_joint)
    assert e.value == pytest.approx(((1 / 12) / 0.2 + (1 / 12) / 0.1 + (1 / 12) / 0.05) / 3)
    # a fixed ranking b > a > c > d with epsilon 0.2: row 1 (b, a) matches it fully
    rk = ranking_slates(data, ["b", "a", "c", "d"], 0.2)
    np.testing.assert_allclose(rk.prefix[0], [0.2 * 0.25 + 0.8, 0.2 / 12 + 0.8])
    np.testing.assert_allclose(rk.marginal[1], [0.2 * 0.25, 0.2 * 0.25])  # (a, c): no match
    rows = {r["estimator"]: r for r in evaluate_slates(data, u)}
    assert rows["ips"]["value"] == pytest.approx(e.value)
    assert rows["pi"]["note"].startswith("n/a") and "not independent" in rows["pi"]["note"]
    # without --slots: the fewest shown (2)
    assert slates_from_records(recs).n_slots == 2


@pytest.mark.parametrize(
    ("recs", "match"),
    [
        ([decision(["a"], [0.5], [0.5], [1], kind="first_slot")], "kind is 'first_slot'"),
        ([decision(["a", "b"], [0.5, 0.4], [0.5], [1, 0])], "prefix_propensities must list"),
        (
            [
                decision(["a", "b"], [0.5, 0.4], None, [1, 0]),
                decision(["a", "b"], [0.5, 0.4], [0.5, 0.2], [1, 0]),
            ],
            "1 of 2 decisions carry prefix_propensities: all or none",
        ),
        ([decision(["a", "b"], [0.5, 0.4], [0.5, 0.45], [1, 0])], r"prefix_propensities\[1\]"),
        ([decision(["a", "b"], [0.5, 0.4], [0.4, 0.1], [1, 0])], "differs from"),
        ([decision(["a", "b"], [0.5, 0.0], [0.5, 0.1], [1, 0])], r"propensities\[1\] = 0.0"),
        ([header(["a"])], "no decisions"),
    ],
)  # fmt: skip
def test_engine_records_that_cannot_serve_are_refused(recs: list[Any], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        slates_from_records(recs)


def test_engine_log_adapter_agrees_with_the_world_tables(tmp_path: Path) -> None:
    # a world log written as per_slot engine records, read back, evaluated for
    # the uniform target: the same figure as from the world's exact tables
    world = SlateWorld.make("cascade", seed=4)
    log = world.sample(2000, np.random.default_rng(1))
    inp = world.inputs(log)
    names = [f"item{j}" for j in range(world.n_items)]
    path = tmp_path / "log.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(json.dumps(header(names)) + "\n")
        for i in range(log.n):
            rec = decision(
                [names[a] for a in log.items[i]], inp.logging_marginal[i].tolist(),
                inp.logging_prefix[i].tolist(), log.slot_rewards[i].tolist(), event_id=str(i),
            )  # fmt: skip
            f.write(json.dumps(rec) + "\n")
    data = read_slate_jsonl(path)
    assert data.n == 2000 and data.n_slots == 3
    target = uniform_slates(data)
    uniform = np.full_like(world.logging, 1.0 / 60)
    direct = slate_rips(log.slot_rewards, world.prefixes(uniform)[log.context, log.slate],
                        inp.logging_prefix)  # fmt: skip
    via_log = slate_rips(data.slot_rewards, target.prefix, data.logging_prefix)
    assert via_log.value == pytest.approx(direct.value, rel=1e-12)
    assert via_log.covers(world.value(uniform))


def test_cli_prints_every_estimator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from simulators.__main__ import main

    recs = [header(["a", "b", "c"])] + [
        decision(["a", "b"], [0.5, 0.5], [0.5, 0.3], [i % 2, 1], event_id=str(i)) for i in range(6)
    ]
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out_json = tmp_path / "out.json"
    argv = ["slate-evaluate", "--log", str(path), "--target", "uniform"]
    argv += ["--target", "ranking:order=b|a|c,epsilon=0.5", "--out", str(out_json)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    for word in ("on-policy", "ips", "iips", "rips", "pi", "ranking(epsilon=0.5)", "n/a"):
        assert word in text
    res = json.loads(out_json.read_text())["results"]
    assert len(res) == 1 + 2 * 4
    first = decision(["a"], [0.5], [0.5], [1], kind="first_slot")
    path.write_text(json.dumps(first) + "\n")
    assert main(["slate-evaluate", "--log", str(path)]) == 2
    assert "first_slot" in capsys.readouterr().err


@pytest.mark.skipif(not obd.available(), reason="OBD sample not fetched (make data)")
def test_obd_uniform_on_the_random_log_is_its_own_value() -> None:
    from simulators.slate.logs import obd_impressions

    imp = obd_impressions("random", "all")
    assert imp.n_slots == 3 and imp.n_items == 80
    u = np.full(imp.n, 1 / 80)
    on = impression_iips(imp.position, imp.reward, imp.logging_marginal, imp.logging_marginal, 3)
    e = impression_iips(imp.position, imp.reward, u, imp.logging_marginal, 3)
    assert e.value == pytest.approx(on.value, rel=1e-12)  # random logging is uniform


def test_per_slot_log_without_prefixes_supports_iips_only() -> None:
    recs = [header(["a", "b", "c"])] + [
        decision(["a", "b"], [0.5, 0.4], None, [1, i % 2], event_id=str(i)) for i in range(4)
    ]
    data = slates_from_records(recs)
    assert data.logging_prefix is None and data.logging_joint is None
    rows = {r["estimator"]: r for r in evaluate_slates(data, uniform_slates(data))}
    # uniform over 3 arms: 1/3 per slot; IIPS = mean of (1/3)/0.5 * r0 + (1/3)/0.4 * r1
    want = np.mean([(1 / 3) / 0.5 + (1 / 3) / 0.4 * (i % 2) for i in range(4)])
    assert rows["iips"]["value"] == pytest.approx(want, rel=1e-12)
    for name in ("ips", "rips", "pi"):
        assert rows[name]["note"].startswith("n/a: needs prefix_propensities")
