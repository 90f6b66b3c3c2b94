"""In-process benchmarks of the policy layer against MABWiser and Vowpal Wabbit.

Setting: K arms, d features, top-k ranking. Every contender is trained on the
same events and then asked to decide for the same evaluation contexts, one
context per call, in this process and this run, so ratios compare like with
like on a noisy machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._util import median_call_us, progress

__all__ = ["Data", "PolicyBench", "make_data"]


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
    *, n_arms: int = 100, dim: int = 32, k: int = 10, n_train: int = 20_000,
    n_eval: int = 4_096, seed: int = 0,
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


class PolicyBench:
    """Our LinTSDisjoint and its peers on one ``Data``."""

    def __init__(self, data: Data, *, quick: bool = False, seed: int = 1) -> None:
        self.data = data
        self.quick = quick
        self.seed = seed
        self._policy: Any = None

    # ------------------------------------------------------------- our policy
    def trained_policy(self) -> Any:
        """A LinTSDisjoint(d) with K arms, trained on the shared events (cached)."""
        if self._policy is None:
            from ..policies import LinTSDisjoint

            d = self.data
            pol = LinTSDisjoint(d.dim, prior_precision=1.0, noise_scale=0.25)
            for _ in range(d.n_arms):
                pol.add_arm()
            pol.update_batch(d.train_arms, d.train_x, d.train_r)  # also JIT-compiles
            self._policy = pol
        return self._policy

    def _reps(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def decide(self) -> dict[str, float]:
        """policy.rank(arms, x, k, rng) per context, plus a breakdown of its cost."""
        from .. import kernels

        progress("decide: our LinTSDisjoint.rank")
        pol = self.trained_policy()
        d = self.data
        arms = np.arange(d.n_arms, dtype=np.int64)
        xs = d.eval_x
        m = xs.shape[0]
        rng = np.random.default_rng(self.seed)
        batch, reps = 1000, self._reps(31, 5)
        us, _ = median_call_us(
            lambda i: pol.rank(arms, xs[i % m], d.k, rng), batch=batch, repeats=reps
        )
        # where the time goes: the scoring kernel alone (mean and std of every arm)
        cov, center, scale = pol._cov, pol._center, pol._scale
        kern_us, _ = median_call_us(
            lambda i: kernels.gauss_mean_std(cov, center, arms, xs[i % m], scale, True),
            batch=batch, repeats=reps,
        )
        checks_us, _ = median_call_us(
            lambda i: (pol._check_arms(arms), pol._check_context(xs[i % m])),
            batch=batch, repeats=reps,
        )
        return {
            "decide_us": us,
            "decide_kernel_us": kern_us,
            "decide_checks_us": checks_us,
        }

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
            batch=200, repeats=self._reps(15, 3),
        )
        return {"propensity_us": us}

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
            batch=1000, repeats=self._reps(21, 5),
        )
        return {
            "updates_per_s": per_s,
            "update_batch_events": float(n),
            "update_call_us": one_us,
        }

    # ---------------------------------------------------------------- MABWiser
    def mabwiser(self) -> dict[str, float]:
        """MAB(arms, LinTS(alpha=v, l2_lambda=lambda)).predict(one context) per call."""
        from mabwiser.mab import MAB, LearningPolicy

        progress("mabwiser: fit on the shared events, predict one context per call")
        d = self.data
        arms = list(range(d.n_arms))
        mab = MAB(arms, LearningPolicy.LinTS(alpha=0.25, l2_lambda=1.0), seed=self.seed)
        mab.fit(d.train_arms, d.train_r, d.train_x)
        xs = d.eval_x
        m = xs.shape[0]
        rows = [xs[i : i + 1] for i in range(m)]  # MABWiser wants a 2-D context
        us, _ = median_call_us(
            lambda i: mab.predict(rows[i % m]), batch=20 if self.quick else 40,
            repeats=self._reps(9, 3),
        )
        # top-k parity: sampled expectations of every arm, then our top-k
        k = d.k

        def topk(i: int) -> object:
            e = mab.predict_expectations(rows[i % m])
            v = np.fromiter(e.values(), dtype=np.float64, count=len(e))
            return np.argpartition(-v, k)[:k]

        us_k, _ = median_call_us(topk, batch=20, repeats=self._reps(5, 2))
        return {"mabwiser_decide_us": us, "mabwiser_topk_us": us_k}

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

    def vw(self) -> dict[str, float]:
        """VW --cb_explore_adf predicting one ADF example (shared + K actions) per call."""
        import vowpalwabbit

        progress("vw: learn a subset of the shared events, predict one ADF example per call")
        d = self.data
        vw = vowpalwabbit.Workspace(" ".join(self.VW_ARGS))
        try:
            # VW's predict cost does not depend on how much it learned; learning
            # costs ~0.3 ms/event here, so it sees the first n_learn events only.
            n_learn = 300 if self.quick else 3000
            p = 1.0 / d.n_arms
            for i in range(n_learn):
                ex = self._vw_lines(
                    d.train_x[i], (int(d.train_arms[i]), float(d.train_r[i]), p)
                )
                vw.learn(ex)
            m = min(d.eval_x.shape[0], 1000)
            examples = [self._vw_lines(d.eval_x[i]) for i in range(m)]  # text built up front
            pmf = vw.predict(examples[0])
            assert len(pmf) == d.n_arms, pmf
            us, _ = median_call_us(
                lambda i: vw.predict(examples[i % m]), batch=100 if self.quick else 200,
                repeats=self._reps(15, 3),
            )
        finally:
            vw.finish()
        return {"vw_decide_us": us, "vw_learn_events": float(n_learn)}
