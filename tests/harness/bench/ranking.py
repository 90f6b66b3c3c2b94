"""Bench section ``ranking``: clicks won by learning ranked lists through a click model.

Worlds: ``simulators.worlds.RankingWorld`` with ``N_ARMS`` arms, a dense
context of ``CONTEXT_DIM`` values and logistic attractiveness, ``K`` arms
shown per round; ``pbm`` (position-based clicks, the world's default
examination curve ``1 / (p + 1)``) and ``cascade`` (scan from the top, stop
at the first click). For each seed both worlds are built from
``default_rng(seed)`` and every contender plays the same stream (same
contexts, same click uniforms per round and arm): the comparisons are
paired. Rewards reach the policy after every round.

Contenders: the engine's ``lin_ts_disjoint`` (the engine's default policy:
the headline) and ``beta_ts`` with their defaults, each learning the lists
by the click model of the engine (``simulators.simulate.PolicyAgent``):

- ``independent``: every shown slot a whole impression;
- ``position_based`` with the world's true curve, with the engine's default
  curve (``1 / log2(p + 2)``), and with the curve EM estimates
  (``simulators.position_bias``, regression EM: a logistic relevance per arm
  over the context) from the decision log of the same policy's
  ``independent`` run on the same seed, the way an operator would estimate
  it from an experiment's ``export-log``;
- ``cascade`` (in the cascade world).

A figure ``..._vs_independent`` is (clicks of the contender summed over the
seeds) / (clicks of the same policy learning ``independent``, same seeds).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

import numpy as np

from bandit_engine.core import default_examination
from bandit_engine.policies import FloatArray, IntArray
from harness.bench._util import progress
from simulators.position_bias import estimate_examination
from simulators.simulate import Agent, AgentContender, ContenderSpec, make_contender
from simulators.simulate.agents import PolicyAgent
from simulators.simulate.contenders import engine_config
from simulators.worlds import CachedWorld, Round, World, make_world

__all__ = ["DESCRIPTIONS", "TARGETS", "run", "run_seed"]

N_ARMS, CONTEXT_DIM, K = 30, 5, 5
ROUNDS, SEEDS = 20_000, (0, 1, 2, 3, 4, 5)
QUICK_ROUNDS, QUICK_SEEDS = 2_000, (0, 1)
POLICIES = ("lin_ts_disjoint", "beta_ts")
HEADLINE = "lin_ts_disjoint"
#: PBM contenders: suffix of the figure -> how the curve is chosen
CURVES = ("true", "default", "em")

TARGETS: dict[str, tuple[str, float]] = {"ranking_clicks_vs_independent": (">=", 1.05)}

_SETTING = (
    f"RankingWorld, {N_ARMS} arms, dense context of {CONTEXT_DIM}, logistic attractiveness, "
    f"k={K}, {ROUNDS} rounds x {len(SEEDS)} seeds (--quick: {QUICK_ROUNDS} x "
    f"{len(QUICK_SEEDS)}), paired streams, engine defaults, rewards applied every round"
)


def _describe() -> dict[str, str]:
    out = {
        "ranking_clicks_vs_independent": "headline: clicks of lin_ts_disjoint learning lists by "
        "click_model=position_based with the world's true examination curve (1/(p+1)) / clicks "
        "of lin_ts_disjoint learning them as independent impressions, summed over the seeds, "
        f"PBM world; {_SETTING}; per-seed ratios and their spread in meta.ranking",
        "ranking_clicks_vs_independent_default_curve": "the same with the engine's default "
        "curve 1/log2(p+2) instead of the true one",
        "ranking_clicks_vs_independent_em_curve": "the same with the curve regression EM "
        "estimates from the decision log of the independent run (same policy and seed)",
        "ranking_expected_clicks_vs_independent": "the headline on expected clicks (the shown "
        "lists' values, no click noise)",
        "ranking_regret_independent_vs_position_based": "regret (best lists' expected clicks "
        "minus the shown lists') of lin_ts_disjoint independent / position_based (true curve), "
        "PBM world, summed over the seeds: above 1, the position-aware model loses fewer clicks",
        "ranking_optimum_share_independent": "expected clicks of lin_ts_disjoint independent "
        "as a share of the best lists', PBM world: the room a better model has (1.05 over it "
        "needs this share below 1/1.05 = 0.952)",
        "ranking_optimum_share_position_based": "the same for position_based (true curve)",
        "ranking_em_curve_max_error": "largest |EM estimate - true examination| over slots 1.."
        f"{K - 1}, mean over the seeds, regression EM on the lin_ts_disjoint independent run's "
        "log (Thompson-sampling logging)",
        "ranking_cascade_clicks_vs_independent": "clicks of lin_ts_disjoint learning by "
        "click_model=cascade / independent, cascade world (first click stops the scan)",
        "ranking_cascade_regret_independent_vs_cascade": "regret of lin_ts_disjoint "
        "independent / cascade, cascade world",
        "ranking_cascade_optimum_share_independent": "expected clicks of lin_ts_disjoint "
        "independent as a share of the best lists', cascade world",
    }
    for curve in CURVES:
        sfx = "" if curve == "true" else f"_{curve}_curve"
        out[f"ranking_clicks_vs_independent{sfx}_beta_ts"] = (
            f"beta_ts: clicks with position_based ({curve} curve) / independent, PBM world"
        )
    out["ranking_cascade_clicks_vs_independent_beta_ts"] = (
        "beta_ts: clicks with cascade / independent, cascade world"
    )
    return out


DESCRIPTIONS: dict[str, str] = _describe()


class _Recorder(Agent):
    """An agent that keeps each round's context, shown arms and clicks (a decision log)."""

    def __init__(self, inner: Agent) -> None:
        self.inner = inner
        self.x: list[FloatArray] = []
        self.shown: list[IntArray] = []
        self.clicks: list[FloatArray] = []

    def add_arms(self, world: World, indices: Sequence[int]) -> None:
        self.inner.add_arms(world, indices)

    def choose(self, rnd: Round, k: int) -> IntArray:
        return self.inner.choose(rnd, k)

    def learn(self, rnd: Round, order: IntArray, rewards: FloatArray) -> None:
        self.x.append(rnd.x)
        self.shown.append(rnd.arms[order])
        self.clicks.append(rewards.copy())
        self.inner.learn(rnd, order, rewards)

    def close(self) -> None:
        self.inner.close()


def _em_curve(rec: _Recorder, k: int) -> list[float]:
    """Regression EM on a recorded log: the experiment's examination setting."""
    shown = np.asarray(rec.shown)
    slots = np.broadcast_to(np.arange(k), shown.shape).ravel()
    x = np.repeat(np.asarray(rec.x), k, axis=0)
    est = estimate_examination(slots, shown.ravel(), np.asarray(rec.clicks).ravel(), x=x)
    curve: list[float] = est.experiment_settings()["examination"]
    return curve


def _spec(policy: str, model: str, curve: Sequence[float] = ()) -> ContenderSpec:
    params: dict[str, Any] = {} if model == "independent" else {"click_model": model}
    if curve:
        params["examination"] = [round(float(v), 6) for v in curve]
    return ContenderSpec(policy, params)


def _totals(best: float, trace: Any) -> dict[str, float]:
    regret = float(trace.regrets.sum())
    return {"clicks": float(trace.rewards.sum()), "regret": regret, "best": best,
            "expected": best - regret}  # fmt: skip


def _world(seed: int, clicks: str, rounds: int) -> CachedWorld:
    world = make_world(
        "ranking", np.random.default_rng(seed), n_arms=N_ARMS, context_dim=CONTEXT_DIM,
        clicks=clicks,
    )  # fmt: skip
    return CachedWorld(world, rounds)


def _recorded_run(policy: str, world: World, rounds: int, seed: int) -> tuple[Any, _Recorder]:
    """The ``independent`` contender of ``policy`` (the same agent, rng and
    stream as ``make_contender``'s) with its decision log."""
    cfg = engine_config(policy, world, {})
    made: list[_Recorder] = []

    def recording(w: World, s: int, rng: np.random.Generator) -> Agent:
        made.append(_Recorder(PolicyAgent(cfg.make_policy(), rng)))
        return made[-1]

    trace = AgentContender(_spec(policy, "independent"), recording).run(world, rounds, K, seed)
    return trace, made[0]


def run_seed(seed: int, rounds: int) -> dict[str, Any]:
    """Every contender of the section on both worlds of ``seed``."""
    t0 = time.perf_counter()
    out: dict[str, Any] = {"pbm": {}, "cascade": {}, "em_curve": {}}
    pbm = _world(seed, "pbm", rounds)
    true_curve = pbm.world.examination[:K].tolist()  # type: ignore[attr-defined]
    best = sum(r.best_value(K) for r in pbm.rounds(rounds))
    for policy in POLICIES:
        trace, rec = _recorded_run(policy, pbm, rounds, seed)
        out["pbm"][f"{policy}/independent"] = _totals(best, trace)
        em = _em_curve(rec, K)
        out["em_curve"][policy] = em
        curves = {"true": true_curve, "default": list(default_examination(K)), "em": em}
        for name in CURVES:
            c = make_contender(_spec(policy, "position_based", curves[name]))
            out["pbm"][f"{policy}/{name}"] = _totals(best, c.run(pbm, rounds, K, seed))
    cascade = _world(seed, "cascade", rounds)
    best = sum(r.best_value(K) for r in cascade.rounds(rounds))
    for policy in POLICIES:
        for model in ("independent", "cascade"):
            c = make_contender(_spec(policy, model))
            out["cascade"][f"{policy}/{model}"] = _totals(best, c.run(cascade, rounds, K, seed))
    out["true_curve"] = true_curve
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def _ratio(runs: list[dict[str, Any]], world: str, a: str, b: str, what: str = "clicks") -> float:
    return sum(r[world][a][what] for r in runs) / sum(r[world][b][what] for r in runs)


def _share(runs: list[dict[str, Any]], world: str, a: str) -> float:
    """Expected clicks of ``a``'s lists as a share of the best lists'."""
    return sum(r[world][a]["expected"] for r in runs) / sum(r[world][a]["best"] for r in runs)


def _per_seed(runs: list[dict[str, Any]], world: str, a: str, b: str) -> list[float]:
    return [round(r[world][a]["clicks"] / r[world][b]["clicks"], 4) for r in runs]


def figures_of(runs: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, Any]]:
    """The section's figures and the per-seed spread behind them."""
    figs: dict[str, float] = {}
    spread: dict[str, Any] = {}
    for policy in POLICIES:
        tail = "" if policy == HEADLINE else f"_{policy}"
        base = f"{policy}/independent"
        for curve in CURVES:
            key = "ranking_clicks_vs_independent" + ("" if curve == "true" else f"_{curve}_curve")
            figs[key + tail] = _ratio(runs, "pbm", f"{policy}/{curve}", base)
            spread[key + tail] = _stats(_per_seed(runs, "pbm", f"{policy}/{curve}", base))
        key = "ranking_cascade_clicks_vs_independent" + tail
        figs[key] = _ratio(runs, "cascade", f"{policy}/cascade", base)
        spread[key] = _stats(_per_seed(runs, "cascade", f"{policy}/cascade", base))
    h = HEADLINE
    figs["ranking_expected_clicks_vs_independent"] = _ratio(
        runs, "pbm", f"{h}/true", f"{h}/independent", "expected"
    )
    figs["ranking_regret_independent_vs_position_based"] = _ratio(
        runs, "pbm", f"{h}/independent", f"{h}/true", "regret"
    )
    figs["ranking_optimum_share_independent"] = _share(runs, "pbm", f"{h}/independent")
    figs["ranking_optimum_share_position_based"] = _share(runs, "pbm", f"{h}/true")
    errors = [
        max(abs(e - t) for e, t in zip(r["em_curve"][h][1:], r["true_curve"][1:], strict=True))
        for r in runs
    ]
    figs["ranking_em_curve_max_error"] = statistics.fmean(errors)
    spread["ranking_em_curve_max_error"] = _stats([round(e, 4) for e in errors])
    figs["ranking_cascade_regret_independent_vs_cascade"] = _ratio(
        runs, "cascade", f"{h}/independent", f"{h}/cascade", "regret"
    )
    figs["ranking_cascade_optimum_share_independent"] = _share(runs, "cascade", f"{h}/independent")
    return figs, spread


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "per_seed": values,
        "min": min(values),
        "max": max(values),
        "sd": statistics.stdev(values) if len(values) > 1 else math.nan,
    }


def run(quick: bool) -> tuple[dict[str, float], dict[str, Any]]:
    """(figures, info): every seed's totals, the EM curves and each figure's spread."""
    t0 = time.perf_counter()
    rounds, seeds = (QUICK_ROUNDS, QUICK_SEEDS) if quick else (ROUNDS, SEEDS)
    workers = min(2, os.cpu_count() or 1, len(seeds))
    progress(f"ranking: {len(seeds)} seeds x {rounds} rounds on {workers} process(es)")
    if quick or workers == 1:
        runs = [run_seed(s, rounds) for s in seeds]
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            runs = list(pool.map(run_seed, seeds, [rounds] * len(seeds)))
    figs, spread = figures_of(runs)
    info: dict[str, Any] = {
        "setting": _SETTING,
        "headline_policy": HEADLINE,
        "rounds": rounds,
        "seeds": list(seeds),
        "spread": spread,
        "runs": {str(s): r for s, r in zip(seeds, runs, strict=True)},
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return figs, info
