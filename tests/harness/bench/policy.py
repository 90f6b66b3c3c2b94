"""In-process benchmarks of the policy layer against MABWiser and Vowpal Wabbit.

Setting: K arms, d features, top-k ranking. Every contender is trained on the
same events and then asked to decide for the same evaluation contexts, one
context per call, in this process and this run, so ratios compare like with
like on a noisy machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bandit_engine.policies import Policy
from harness.bench._util import median_call_us, progress

__all__ = [
    "Data",
    "PolicyBench",
    "make_data",
]


@dataclass(frozen=True)
class Data:
    """Training events and evaluation contexts shared by every contender."""

    n_arms: int
    dim: int
    k: int
    train_arms: np.ndarray  # (n,) int64
    train_x: np.ndarray  # (n, d) float64
    train_r: np.ndarray  # (n,) float64 in [0, 1]
    eval_x: np.ndarray  # (m, d) float64


def make_data(
    *,
    n_arms: int = 100,
    dim: int = 32,
    k: int = 10,
    n_train: int = 20_000,
    n_eval: int = 4_096,
    seed: int = 0,
) -> Data:
    """Synthetic logged events: uniform arms, logistic Bernoulli rewards.

    x[0] = 1 (intercept), x[1:] ~ N(0, 1/d); each arm has its own true
    weight vector, so a per-arm linear model is the right family.
    """
    rng = np.random.default_rng(seed)

    def contexts(n: int) -> np.ndarray:
        x = rng.standard_normal((n, dim)) / np.sqrt(dim)
        x[:, 0] = 1.0
        return x

    theta = rng.standard_normal((n_arms, dim))
    theta[:, 0] = rng.normal(-1.0, 0.5, n_arms)
    x = contexts(n_train)
    arms = rng.integers(0, n_arms, n_train).astype(np.int64)
    logits = np.einsum("nd,nd->n", x, theta[arms])
    r = (rng.random(n_train) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float64)
    return Data(n_arms, dim, k, arms, x, r, contexts(n_eval))


def _offset(fn: Callable[[int], object], off: int) -> Callable[[int], object]:
    return lambda i: fn(off + i)


class PolicyBench:
    """bandit-engine's LinTSDisjoint and its peers on one ``Data``."""

    def __init__(self, data: Data, *, quick: bool = False, seed: int = 1) -> None:
        self.data = data
        self.quick = quick
        self.seed = seed
        self._policy: Any = None
        self.paired_ratios: dict[str, dict[str, float]] = {}
        self.contest_rounds: dict[str, list[float]] = {}

    # ------------------------------------------------------- the engine's policy
    def trained_policy(self) -> Any:
        """A LinTSDisjoint(d) with K arms, trained on the shared events (cached)."""
        if self._policy is None:
            from bandit_engine.policies import LinTSDisjoint

            d = self.data
            pol = LinTSDisjoint(d.dim, prior_precision=1.0, noise_scale=0.25)
            for _ in range(d.n_arms):
                pol.add_arm()
            pol.update_batch(d.train_arms, d.train_x, d.train_r)  # also JIT-compiles
            self._policy = pol
        return self._policy

    def _reps(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    # ------------------------------------------------------------ the contest
    def decide_contenders(
        self, names: tuple[str, ...] = ("engine", "mabwiser", "vw")
    ) -> dict[str, Any]:
        """Callables ``fn(i)`` deciding for context ``i`` (mod the eval set), with
        their batch sizes; peers are trained here on the shared events."""
        out: dict[str, Any] = {}
        for name in names:
            out[name] = getattr(self, f"_contender_{name}")()
        return out

    def _contender_engine(self) -> tuple[Any, int]:
        pol = self.trained_policy()
        d = self.data
        arms = np.arange(d.n_arms, dtype=np.int64)
        xs = d.eval_x
        m = xs.shape[0]
        rng = np.random.default_rng(self.seed)
        k = d.k
        return (lambda i: pol.rank(arms, xs[i % m], k, rng)), 1000

    def contest(self, names: tuple[str, ...]) -> dict[str, float]:
        """Interleaved rounds: one timed batch of each contender per round, so a
        slow spell of the (shared, noisy) machine hits every contender alike."""
        progress(f"decide: preparing {', '.join(names)}")
        fns = self.decide_contenders(names)
        rounds = self._reps(41, 5)
        progress(f"decide: {rounds} interleaved rounds of {', '.join(names)}")
        per: dict[str, list[float]] = {n: [] for n in names}
        for fn, batch in fns.values():  # warm-up
            median_call_us(fn, batch=max(1, batch // 10), repeats=1, warmup=0)
        for r in range(rounds):
            for n, (fn, batch) in fns.items():
                _, v = median_call_us(_offset(fn, r * batch), batch=batch, repeats=1, warmup=0)
                per[n].extend(v)
        self.contest_rounds = per
        key = {"engine": "decide_us", "mabwiser": "mabwiser_decide_us", "vw": "vw_decide_us"}
        out = {key[n]: float(np.median(v)) for n, v in per.items()}
        if "engine" in per:
            for n, ratio_key in (("mabwiser", "decide_vs_mabwiser"), ("vw", "decide_vs_vw")):
                if n in per:
                    out[ratio_key] = out[key[n]] / out["decide_us"]
                    paired = np.asarray(per[n]) / np.asarray(per["engine"])
                    self.paired_ratios[ratio_key] = {
                        "median_of_paired_rounds": float(np.median(paired)),
                        "min": float(paired.min()),
                        "max": float(paired.max()),
                    }
        return out

    def decide_breakdown(self) -> dict[str, float]:
        """Where decide_us goes: the sampled score of every candidate
        (``sample_scores``: the O(K d^2) part) against the whole ``rank``."""
        progress("decide: breakdown (sampled scores alone, against rank)")
        pol = self.trained_policy()
        d = self.data
        arms = np.arange(d.n_arms, dtype=np.int64)
        xs = d.eval_x
        m = xs.shape[0]
        reps = self._reps(15, 3)
        rng = np.random.default_rng(self.seed)
        rank_us, _ = median_call_us(
            lambda i: pol.rank(arms, xs[i % m], d.k, rng), batch=1000, repeats=reps
        )
        scores_us, _ = median_call_us(
            lambda i: pol.sample_scores(arms, xs[i % m], rng), batch=1000, repeats=reps
        )
        return {"decide_scores_us": scores_us, "decide_scores_share": scores_us / rank_us}

    def propensity(self) -> dict[str, float]:
        progress("propensity: policy.propensities(arms, x, 1000, rng)")
        pol = self.trained_policy()
        d = self.data
        arms = np.arange(d.n_arms, dtype=np.int64)
        xs = d.eval_x
        m = xs.shape[0]
        rng = np.random.default_rng(self.seed)
        us, _ = median_call_us(
            lambda i: pol.propensities(arms, xs[i % m], 1000, rng),
            batch=200,
            repeats=self._reps(15, 3),
        )
        out = {"propensity_us": us}
        # per-slot propensities of a served top-k, from the same number of draws
        orders = [pol.rank(arms, xs[i], d.k, rng).order for i in range(m)]
        us_slot, _ = median_call_us(
            lambda i: pol.slot_counts(arms, xs[i % m], orders[i % m], 1000, rng),
            batch=200,
            repeats=self._reps(15, 3),
        )
        out["slot_propensity_us"] = us_slot
        out["slot_propensity_vs_first_slot"] = us_slot / us
        if hasattr(pol, "decide"):  # rank + propensities in one call, as the server does
            us2, _ = median_call_us(
                lambda i: pol.decide(arms, xs[i % m], d.k, 1000, rng),
                batch=200,
                repeats=self._reps(15, 3),
            )
            out["decide_with_propensity_us"] = us2
        # the other policies a server runs, trained on the same events
        from bandit_engine import ExperimentConfig

        for kind, key in (
            ("beta_ts", "propensity_beta_us"),
            ("lin_ts_shared", "propensity_shared_us"),
        ):
            other = ExperimentConfig("bench", policy=kind, dim=d.train_x.shape[1]).make_policy()
            for _ in range(d.n_arms):
                other.add_arm()
            other.update_batch(d.train_arms, d.train_x, d.train_r)

            def call(i: int, p: Policy = other) -> Any:
                return p.propensities(arms, xs[i % m], 1000, rng)

            us3, _ = median_call_us(
                call,
                batch=20,
                repeats=self._reps(15, 3),
            )
            out[key] = us3
        return out

    def updates(self) -> dict[str, float]:
        """Single-event Sherman-Morrison updates through update_batch, and update()."""
        progress("updates: update_batch (one SM update per event) and update()")
        d = self.data
        fresh = self.trained_policy().clone()
        for _ in range(d.n_arms):
            fresh.add_arm()
        fresh.update_batch(d.train_arms[:10], d.train_x[:10], d.train_r[:10])  # JIT warm
        rng = np.random.default_rng(self.seed + 7)
        n = 20_000 if self.quick else 200_000
        x = rng.standard_normal((n, d.dim)) / np.sqrt(d.dim)
        x[:, 0] = 1.0
        a = rng.integers(0, d.n_arms, n).astype(np.int64)
        r = rng.random(n)
        times = []
        for _ in range(self._reps(7, 3)):
            t0 = time.perf_counter_ns()
            fresh.update_batch(a, x, r)
            times.append((time.perf_counter_ns() - t0) / 1e9)
        per_s = n / float(np.median(times))
        one_us, _ = median_call_us(
            lambda i: fresh.update(int(a[i % n]), x[i % n], float(r[i % n])),
            batch=1000,
            repeats=self._reps(21, 5),
        )
        return {
            "updates_per_s": per_s,
            "update_batch_events": float(n),
            "update_call_us": one_us,
        }

    # ---------------------------------------------------------------- MABWiser
    def _contender_mabwiser(self) -> tuple[Any, int]:
        """MAB(arms, LinTS(alpha=v, l2_lambda=lambda)).predict(one context) per call."""
        from mabwiser.mab import MAB, LearningPolicy

        progress("mabwiser: fit on the shared events")
        d = self.data
        arms = list(range(d.n_arms))
        mab = MAB(arms, LearningPolicy.LinTS(alpha=0.25, l2_lambda=1.0), seed=self.seed)
        mab.fit(d.train_arms, d.train_r, d.train_x)
        xs = d.eval_x
        m = xs.shape[0]
        rows = [xs[i : i + 1] for i in range(m)]  # MABWiser wants a 2-D context
        self._mab = (mab, rows)
        return (lambda i: mab.predict(rows[i % m])), 20

    def mabwiser_topk(self) -> dict[str, float]:
        """Top-k parity: MABWiser's sampled expectations of every arm, then top-k."""
        if getattr(self, "_mab", None) is None:
            self._contender_mabwiser()
        mab, rows = self._mab
        m = len(rows)
        k = self.data.k

        def topk(i: int) -> object:
            e = mab.predict_expectations(rows[i % m])
            v = np.fromiter(e.values(), dtype=np.float64, count=len(e))
            return np.argpartition(-v, k)[:k]

        us_k, _ = median_call_us(topk, batch=20, repeats=self._reps(5, 2))
        return {"mabwiser_topk_us": us_k}

    # ------------------------------------------------------------ Vowpal Wabbit
    VW_ARGS = ("--cb_explore_adf", "--squarecb", "-q", "sa", "--quiet")

    def _vw_lines(self, x: np.ndarray, label: tuple[int, float, float] | None = None) -> list[str]:
        shared = "shared |s " + " ".join(f"f{j}:{v:.6g}" for j, v in enumerate(x))
        lines = [shared]
        for a in range(self.data.n_arms):
            if label is not None and label[0] == a:
                lines.append(f"0:{-label[1]:.6g}:{label[2]:.6g} |a arm{a}")
            else:
                lines.append(f"|a arm{a}")
        return lines

    def _contender_vw(self) -> tuple[Any, int]:
        """VW --cb_explore_adf predicting one ADF example (shared + K actions) per call."""
        import vowpalwabbit

        progress("vw: learn a subset of the shared events")
        d = self.data
        vw = vowpalwabbit.Workspace(" ".join(self.VW_ARGS))
        self._vw = vw
        # VW's predict cost does not depend on how much it learned, and its
        # learn call costs far more per event than a predict, so it learns
        # the first n_learn events only.
        self.vw_learn_events = n_learn = 300 if self.quick else 3000
        p = 1.0 / d.n_arms
        for i in range(n_learn):
            vw.learn(self._vw_lines(d.train_x[i], (int(d.train_arms[i]), float(d.train_r[i]), p)))
        m = min(d.eval_x.shape[0], 1000)
        examples = [self._vw_lines(d.eval_x[i]) for i in range(m)]  # text built up front
        pmf = vw.predict(examples[0])
        assert len(pmf) == d.n_arms, pmf
        return (lambda i: vw.predict(examples[i % m])), 100

    def close(self) -> None:
        vw = getattr(self, "_vw", None)
        if vw is not None:
            vw.finish()
            self._vw = None
