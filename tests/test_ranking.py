"""Ranked lists: the ranking world, click-model-aware learning in the simulators,
and the examination curve estimated by EM (``simulators.position_bias``)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bandit_engine import ExperimentConfig, InvalidArgument
from bandit_engine.core import ClickModel
from bandit_engine.policies import BetaTS, FloatArray
from bandit_engine.policies.lin_disjoint import PRIOR_MEAN
from simulators.__main__ import main as cli_main
from simulators.baselines import make_baseline
from simulators.logs import BanditLog, write_jsonl
from simulators.position_bias import (
    context_buckets,
    estimate_examination,
    events_from_log,
    pbm_em,
    random_ranking_log,
)
from simulators.simulate import ContenderSpec, PolicyAgent, engine_config, make_contender
from simulators.worlds import (
    WORLDS,
    CascadeRound,
    RankingWorld,
    Round,
    make_world,
    world_parameters,
)


def _world(seed: int = 0, **params: Any) -> RankingWorld:
    w = make_world("ranking", np.random.default_rng(seed), **params)
    assert isinstance(w, RankingWorld)
    return w


# -------------------------------------------------------------------- world
@pytest.mark.parametrize(
    "params",
    [{"clicks": "pbm"}, {"clicks": "cascade"}, {"clicks": "cascade", "continuation": 0.6}],
)
def test_values_match_monte_carlo_of_the_worlds_own_clicks(params: dict[str, Any]) -> None:
    """The exact expected clicks per slot against the mean of the sampled clicks."""
    w = _world(3, n_arms=12, **params)
    order = np.array([4, 0, 9, 2, 7], dtype=np.int64)
    clicks, expected = [], []
    for rnd in w.rounds(30_000):
        clicks.append(rnd.rewards(order))
        a = rnd.means[order]
        if isinstance(rnd, CascadeRound):
            stay = 1.0 - a * (1.0 - rnd.continuation)
            seen = np.concatenate([[1.0], np.cumprod(stay[:-1])])
        else:
            seen = rnd.examination[: order.shape[0]]
        expected.append(seen * a)
        assert math.isclose(rnd.value(order), float(expected[-1].sum()), rel_tol=1e-12)
    c, e = np.asarray(clicks), np.asarray(expected)
    se = c.std(axis=0) / math.sqrt(c.shape[0])
    assert np.all(np.abs(c.mean(axis=0) - e.mean(axis=0)) < 4.0 * se + 1e-12)
    if params.get("continuation", 0.0) == 0.0 and params["clicks"] == "cascade":
        assert c.sum(axis=1).max() == 1.0  # the scan stops at the first click


@pytest.mark.parametrize("params", [{"clicks": "pbm"}, {"clicks": "cascade", "continuation": 0.3}])
def test_best_value_is_the_best_of_every_list(params: dict[str, Any]) -> None:
    w = _world(1, n_arms=6, **params)
    for rnd in w.rounds(5):
        for k in (1, 2, 3):
            brute = max(
                rnd.value(np.array(p, dtype=np.int64)) for p in itertools.permutations(range(6), k)
            )
            assert math.isclose(rnd.best_value(k), brute, rel_tol=1e-12)
            rewards, regret = rnd.play(np.arange(k, dtype=np.int64))
            assert np.array_equal(rewards, rnd.rewards(np.arange(k, dtype=np.int64)))
            assert math.isclose(regret, brute - rnd.value(np.arange(k, dtype=np.int64)),
                                abs_tol=1e-12)  # fmt: skip


def test_cascade_value_depends_on_the_set_not_the_order() -> None:
    rnd = next(_world(2, n_arms=8, clicks="cascade", continuation=0.4).rounds(1))
    order = np.array([5, 1, 3, 7], dtype=np.int64)
    assert math.isclose(rnd.value(order), rnd.value(order[::-1]), rel_tol=1e-12)
    pure = next(_world(2, n_arms=8, clicks="cascade").rounds(1))
    assert math.isclose(pure.value(order), 1.0 - float(np.prod(1.0 - pure.means[order])))
    pbm = next(_world(2, n_arms=8).rounds(1))  # position-based: order matters
    assert not math.isclose(pbm.value(order), pbm.value(order[::-1]))


def _same(a: Round, b: Round) -> bool:
    same = (
        a.t == b.t and a.context == b.context and np.array_equal(a.x, b.x)
        and np.array_equal(a.means, b.means) and np.array_equal(a.uniforms, b.uniforms)
    )  # fmt: skip
    if isinstance(a, CascadeRound) and isinstance(b, CascadeRound):
        same = same and np.array_equal(a.continue_uniforms, b.continue_uniforms)
    return same


@pytest.mark.parametrize("clicks", ["pbm", "cascade"])
def test_same_seed_same_stream(clicks: str) -> None:
    extra = {"continuation": 0.5} if clicks == "cascade" else {}
    r1 = list(_world(7, clicks=clicks, **extra).rounds(1100))  # crosses a context chunk
    r2 = list(_world(7, clicks=clicks, **extra).rounds(1100))
    assert all(_same(a, b) for a, b in zip(r1, r2, strict=True))
    other = list(_world(8, clicks=clicks, **extra).rounds(20))
    assert not any(_same(a, b) for a, b in zip(r1[:20], other, strict=True))
    assert r1[0].new_arms == tuple(range(30)) and r1[1].new_arms == ()
    assert r1[0].x[0] == 1.0 and r1[0].x.shape == (6,)
    assert r1[0].context.dense == tuple(r1[0].x[1:].tolist())


def test_registered_with_parameters_and_description() -> None:
    assert WORLDS["ranking"] is RankingWorld
    params = world_parameters(RankingWorld)
    assert params["clicks"] == "pbm" and params["examination"] is None
    assert "seconds_per_round" in params
    w = make_world("ranking", np.random.default_rng(0), n_arms=4, seconds_per_round=60)
    assert w.seconds_per_round == 60.0
    assert np.allclose(w.describe()["examination"], [1, 1 / 2, 1 / 3, 1 / 4])
    short = _world(n_arms=4, examination=[1.0, 0.4])  # a shorter curve repeats its last value
    assert short.examination.tolist() == [1.0, 0.4, 0.4, 0.4]
    assert np.array_equal(_world(clicks="cascade", n_arms=4).examination, np.ones(4))


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"clicks": "dbn"}, "clicks='dbn'"),
        ({"n_arms": 1}, "n_arms=1"),
        ({"examination": [1.0, 0.5, 0.7]}, "examination[2]=0.7"),
        ({"examination": [1.0, 0.0]}, "examination[1]=0.0"),
        ({"examination": [1.5]}, "examination[0]=1.5"),
        ({"examination": []}, "examination=[]"),
        ({"examination": "steep"}, "examination='steep'"),
        ({"clicks": "cascade", "examination": [1.0, 0.5]}, "examination is for clicks='pbm'"),
        ({"continuation": 0.5}, "continuation=0.5 is for clicks='cascade'"),
        ({"clicks": "cascade", "continuation": 1.0}, "continuation=1.0"),
        ({"context_scale": -1.0}, "context_scale=-1.0"),
        ({"base": math.nan}, "base=nan"),
        ({"colour": "red"}, "no parameter 'colour'"),
    ],
)
def test_bad_parameters_name_the_value(params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=re_escape(fragment)):
        make_world("ranking", np.random.default_rng(0), **params)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


# --------------------------------------------------------- learning weights
def _beta_agent(model: ClickModel, update_every: int = 1) -> tuple[PolicyAgent, BetaTS]:
    policy = BetaTS(1)
    agent = PolicyAgent(policy, np.random.default_rng(0), update_every, click_model=model)
    for _ in range(6):
        policy.add_arm()
    return agent, policy


def _round(k: int = 6) -> Round:
    return next(_world(0, n_arms=k).rounds(1))


@pytest.mark.parametrize(
    ("model", "weights"),
    [
        (ClickModel("independent"), [1, 1, 1, 1]),
        (ClickModel("cascade"), [1, 1, 0, 0]),  # click at slot 1: slots below it unseen
        (ClickModel("position_based", (1.0, 0.5, 0.25)), [1.0, 1.0, 0.25, 0.25]),
    ],
)
def test_beta_posterior_is_the_closed_form_over_weighted_impressions(
    model: ClickModel, weights: list[float]
) -> None:
    agent, policy = _beta_agent(model)
    rnd = _round()
    order = np.array([3, 0, 5, 1], dtype=np.int64)
    rewards = np.array([0.0, 1.0, 0.0, 0.0])
    agent.learn(rnd, order, rewards)
    for slot, arm in enumerate(order):
        w = weights[slot]
        a, b = 1.0 + w * rewards[slot], 1.0 + w * (1.0 - rewards[slot])
        mean, sd = policy.posterior(int(arm))
        assert math.isclose(mean, a / (a + b), rel_tol=1e-12), (slot, model.kind)
        assert math.isclose(sd, math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1))), rel_tol=1e-12)
    for arm in (2, 4):  # not shown: the prior
        assert policy.posterior(arm)[0] == 0.5


def test_cascade_without_click_counts_every_slot() -> None:
    agent, policy = _beta_agent(ClickModel("cascade"))
    agent.learn(_round(), np.array([2, 4, 1], dtype=np.int64), np.zeros(3))
    assert [policy.posterior(a)[0] for a in (2, 4, 1)] == [1 / 3] * 3


def test_linear_posterior_is_the_closed_form_over_weighted_impressions() -> None:
    w = _world(4, n_arms=6)
    cfg = engine_config(
        "lin_ts_disjoint", w,
        # no forgetting by time: the closed form is then the plain weighted sums
        {"click_model": "position_based", "examination": [1.0, 0.5, 0.2], "half_life_s": 0.0},
    )  # fmt: skip
    policy = cfg.make_policy()
    agent = PolicyAgent(policy, np.random.default_rng(0), click_model=cfg.click)
    rnds = list(w.rounds(2))
    agent.add_arms(w, rnds[0].new_arms)
    shown = [(np.array([1, 3, 5, 0], dtype=np.int64), np.array([0.0, 0.0, 1.0, 0.0])),
             (np.array([3, 2, 1], dtype=np.int64), np.array([1.0, 0.0, 0.0]))]  # fmt: skip
    for rnd, (order, rewards) in zip(rnds, shown, strict=True):
        agent.learn(rnd, order, rewards)
    weights = ([1.0, 0.5, 1.0, 0.2], [1.0, 0.5, 0.2])  # a click weighs 1; past the curve: its last
    state = policy.state_dict()
    r0 = PRIOR_MEAN  # lin_ts_disjoint's b holds rewards about its prior mean
    for arm in range(6):
        a, b = np.eye(w.space.dim), np.zeros(w.space.dim)
        for rnd, (order, rewards), ws in zip(rnds, shown, weights, strict=True):
            for slot in np.flatnonzero(order == arm):
                a += ws[slot] * np.outer(rnd.x, rnd.x)
                b += ws[slot] * (rewards[slot] - r0) * rnd.x
        assert np.allclose(state["A"][arm], a, rtol=1e-12, atol=1e-12), arm
        assert np.allclose(state["b"][arm], b, rtol=1e-12, atol=1e-12), arm


class _Spy(BetaTS):
    calls: list[tuple[Any, ...]]

    def update_batch(self, arms: Any, xs: Any, rewards: Any, times: Any = None,
                     weights: Any = None) -> None:  # fmt: skip
        self.calls.append((np.array(arms), np.array(rewards), weights))
        super().update_batch(arms, xs, rewards, times, weights)


@pytest.mark.parametrize("kind", ["independent", "cascade", "position_based"])
def test_weights_reach_update_batch_batched_in_order(kind: str) -> None:
    spy = _Spy(1)
    spy.calls = []
    for _ in range(6):
        spy.add_arm()
    agent = PolicyAgent(spy, np.random.default_rng(0), 3, click_model=ClickModel(kind))
    rnds = list(_world(0, n_arms=6).rounds(3))
    lists = [([0, 1, 2], [0.0, 1.0, 0.0]), ([5, 4, 3], [0.0, 0.0, 0.0]), ([2, 3], [1.0, 0.0])]
    for rnd, (order, rewards) in zip(rnds, lists, strict=True):
        agent.learn(rnd, np.array(order, dtype=np.int64), np.array(rewards))
    assert len(spy.calls) == 1  # applied after 3 rounds, as one batch
    arms, rewards, weights = spy.calls[0]
    assert arms.tolist() == [0, 1, 2, 5, 4, 3, 2, 3]
    assert rewards.tolist() == [0, 1, 0, 0, 0, 0, 1, 0]
    if kind == "independent":
        assert weights is None  # the unweighted events of old
        return
    e = ClickModel(kind).slot_examination(3)
    expect = {
        "cascade": [1, 1, 0, 1, 1, 1, 1, 0],
        "position_based": [e[0], 1.0, e[2], e[0], e[1], e[2], 1.0, e[1]],
    }[kind]
    assert np.allclose(weights, expect)


def test_contenders_carry_their_click_model() -> None:
    spec = ContenderSpec.parse("beta_ts:click_model=position_based:examination=1,0.5")
    assert spec.click_model == ClickModel("position_based", (1.0, 0.5))
    assert ContenderSpec.parse("lin_ts_disjoint").click_model.kind == "independent"
    w = _world(0, n_arms=8, clicks="cascade")
    runs = {m: make_contender(f"beta_ts:click_model={m}").run(w, 300, 3, 0)
            for m in ("independent", "cascade")}  # fmt: skip
    # the same seed and stream, learned differently: the lists (and clicks) part ways
    assert not np.array_equal(runs["independent"].rewards, runs["cascade"].rewards)
    with pytest.raises(InvalidArgument, match="click_model='dbn'"):
        make_contender("beta_ts:click_model=dbn")
    with pytest.raises(InvalidArgument, match="examination"):
        make_contender("beta_ts:click_model=cascade:examination=[1,0.5]")
    for other in (make_baseline("uniform", 1), make_baseline("lin_ucb", 3), _Peer()):
        with pytest.raises(InvalidArgument, match="needs an engine policy"):
            PolicyAgent(other, np.random.default_rng(0), click_model=ClickModel("cascade"))
    peer = _Peer()  # independent: peers keep their own update_batch, without weights
    assert make_contender("uniform").run(w, 50, 3, 0).rewards.shape == (50,)
    agent = PolicyAgent(peer, np.random.default_rng(0))
    agent.learn(next(w.rounds(1)), np.array([0, 1]), np.array([1.0, 0.0]))
    assert peer.updates == [[1.0, 0.0]]


class _Peer:
    """The part of a peer library's adapter a simulation uses (no weights)."""

    def __init__(self) -> None:
        self.updates: list[list[float]] = []

    def add_arm(self, features: Any = None) -> int:
        return 0

    def rank(self, arms: Any, x: Any, k: int, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def update_batch(self, arms: Any, xs: Any, rewards: Any) -> None:
        self.updates.append(np.asarray(rewards).tolist())


# ----------------------------------------------------------------------- EM
TRUE = np.array([1.0, 1 / 2, 1 / 3, 1 / 4, 1 / 5])


@pytest.fixture(scope="module")
def random_log() -> BanditLog:
    """20,000 uniformly random top-5 lists of 20 arms in the PBM world."""
    return random_ranking_log(_world(0, n_arms=20), 20_000, 5, seed=1)


def test_em_on_exact_counts_recovers_the_curve_exactly() -> None:
    rng = np.random.default_rng(0)
    gamma = rng.uniform(0.05, 0.6, 12)
    n = rng.integers(50, 500, (5, 12)).astype(float)
    curve, g, _, converged, _ = pbm_em(n, n * TRUE[:, None] * gamma[None, :], tol=1e-12)
    assert converged
    assert np.allclose(curve, TRUE, atol=1e-6)
    assert np.allclose(g, gamma, rtol=1e-5)


def test_em_recovers_the_true_curve_from_a_randomised_log(random_log: BanditLog) -> None:
    slot, item, click, x = events_from_log(random_log)
    per_arm = estimate_examination(slot, item, click)
    assert per_arm.converged and per_arm.items == 20
    assert per_arm.impressions == (20_000,) * 5
    # tolerance: 0.03 absolute per slot (the estimate's sd is about 0.01 here)
    assert np.max(np.abs(np.array(per_arm.examination) - TRUE)) < 0.03
    logistic = estimate_examination(slot, item, click, x=x)
    assert np.max(np.abs(np.array(logistic.examination) - TRUE)) < 0.03
    bucketed = estimate_examination(*events_from_log(random_log, context_bits=2)[:3], slots=3)
    assert bucketed.items == 80 and len(bucketed.examination) == 3
    assert np.max(np.abs(np.array(bucketed.examination) - TRUE[:3])) < 0.03


def test_regression_em_sees_through_a_contextual_logging_policy() -> None:
    """Thompson sampling ranks arms by their context-dependent appeal: one
    relevance per arm then mistakes relevance for position; a logistic
    relevance over the context does not."""
    w = _world(0, n_arms=30)
    cfg = engine_config("lin_ts_disjoint", w, {})
    agent = PolicyAgent(cfg.make_policy(), np.random.default_rng(0))
    xs, shown, clicks = [], [], []
    for rnd in w.rounds(10_000):
        if rnd.new_arms:
            agent.add_arms(w, rnd.new_arms)
        order = agent.choose(rnd, 5)
        r = rnd.rewards(order)
        agent.learn(rnd, order, r)
        xs.append(rnd.x)
        shown.append(rnd.arms[order])
        clicks.append(r)
    slot = np.tile(np.arange(5), len(shown))
    item, click = np.concatenate(shown), np.concatenate(clicks)
    naive = estimate_examination(slot, item, click)
    fitted = estimate_examination(slot, item, click, x=np.repeat(np.asarray(xs), 5, axis=0))
    err_naive = np.max(np.abs(np.array(naive.examination) - TRUE))
    err_fitted = np.max(np.abs(np.array(fitted.examination) - TRUE))
    assert err_fitted < 0.05 < err_naive


def test_cli_prints_settings_an_experiment_accepts(
    random_log: BanditLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "log.jsonl"
    write_jsonl(random_log, path)
    assert cli_main(["position-bias", "--log", str(path), "--slots", "4",
                     "--out", str(tmp_path / "pb.json")]) == 0  # fmt: skip
    settings = json.loads(capsys.readouterr().out)
    assert settings["click_model"] == "position_based"
    assert settings["examination"][0] == 1.0 and len(settings["examination"]) == 4
    assert np.max(np.abs(np.array(settings["examination"]) - TRUE[:4])) < 0.03
    cfg = ExperimentConfig.from_dict({"experiment_id": "e", **settings})
    assert cfg.click.kind == "position_based"
    full = json.loads((tmp_path / "pb.json").read_text())
    assert full["estimate"]["converged"] and len(full["estimate"]["impressions"]) == 4
    assert cli_main(["position-bias", "--log", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read the log" in capsys.readouterr().err
    assert cli_main(["position-bias", "--log", str(path), "--slots", "9"]) == 2
    assert "slots=9" in capsys.readouterr().err


def test_clicks_are_rewards_above_the_default_and_positions_are_read() -> None:
    log = BanditLog(
        arm_ids=("a", "b"), x=np.ones((3, 1)), shown=np.array([[0], [1], [0]]),
        propensity=np.full((3, 1), 0.5), reward=np.array([[0.5], [0.9], [np.nan]]),
        event_id=("1", "2", "3"), timestamp=np.zeros(3), position=np.array([2, 0, 1]),
        meta={"config": {"reward_min": 0.0, "reward_max": 2.0, "default_reward": 1.0}},
    )  # fmt: skip
    slot, item, click, _ = events_from_log(log)
    assert slot.tolist() == [2, 0] and item.tolist() == [0, 1] and click.tolist() == [0.0, 1.0]


def _events(shown: list[list[int]], clicks: list[list[float]]) -> tuple[Any, Any, FloatArray]:
    s, c = np.asarray(shown), np.asarray(clicks, dtype=float)
    return np.tile(np.arange(s.shape[1]), s.shape[0]), s.ravel(), c.ravel()


def test_em_bad_input_gives_clear_errors() -> None:
    fixed = _events([[0, 1, 2]] * 50, [[1, 0, 0]] * 50)  # every arm always at its slot
    with pytest.raises(InvalidArgument, match="slot 1 shares no item with slot 0"):
        estimate_examination(*fixed)
    no_clicks = _events([[0, 1], [1, 0]] * 10, [[0, 1], [0, 0]] * 10)
    with pytest.raises(InvalidArgument, match="slot 0 has no clicks"):
        estimate_examination(*no_clicks)
    good = _events([[0, 1], [1, 0]] * 10, [[1, 0], [1, 1]] * 10)
    with pytest.raises(InvalidArgument, match="slots=5"):
        estimate_examination(*good, slots=5)
    with pytest.raises(InvalidArgument, match=r"click 0\.5 must be 0 or 1"):
        estimate_examination(good[0], good[1], np.full(40, 0.5))
    with pytest.raises(InvalidArgument, match="no impressions"):
        estimate_examination(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    with pytest.raises(InvalidArgument, match="equal 1-d shapes"):
        estimate_examination(good[0], good[1][:3], good[2])
    with pytest.raises(InvalidArgument, match="x has shape"):
        estimate_examination(*good, x=np.ones((3, 2)))
    with pytest.raises(InvalidArgument, match="context_bits=17"):
        context_buckets(np.ones((4, 2)), 17)
    with pytest.raises(InvalidArgument, match="slot 1 has no impressions"):
        pbm_em(np.array([[5.0], [0.0]]), np.array([[1.0], [0.0]]))
    with pytest.raises(InvalidArgument, match="k=31"):
        random_ranking_log(_world(0), 10, 31, seed=0)


# -------------------------------------------------------------------- bench
def test_bench_section_reports_every_described_figure() -> None:
    from harness.bench import ranking

    runs = [ranking.run_seed(s, 300) for s in (0, 1)]
    figs, spread = ranking.figures_of(runs)
    assert set(figs) == set(ranking.DESCRIPTIONS)
    assert all(math.isfinite(v) for v in figs.values())
    assert set(ranking.TARGETS) <= set(figs)
    head = spread["ranking_clicks_vs_independent"]["per_seed"]
    pbm = [r["pbm"] for r in runs]
    assert head == [round(p["lin_ts_disjoint/true"]["clicks"] / p["lin_ts_disjoint/independent"]
                          ["clicks"], 4) for p in pbm]  # fmt: skip
    assert 0.0 < figs["ranking_optimum_share_independent"] <= 1.0
    assert all(len(r["em_curve"]["lin_ts_disjoint"]) == ranking.K for r in runs)
