"""Baseline policies for the simulators, behind the engine's ``Policy`` contract.

They subclass ``bandit_engine.policies.Policy``, so a runner drives them
exactly as it drives the engine's Thompson-sampling policies (``add_arm``,
``rank``, ``decide``, ``propensities``, ``update``, ``update_batch``,
``posterior``) and never branches on the type.

- ``Uniform``: a uniformly random ranking.
- ``EpsilonGreedy``: with probability ``epsilon`` a random ranking, else the
  arms by empirical mean (untried arms first).
- ``UCB1`` (Auer, Cesa-Bianchi & Fischer 2002): empirical mean plus
  ``c * sqrt(log N / n_a)``; untried arms first.
- ``DiscountedTS`` (Raj & Kalyani 2017, "Taming non-stationary bandits: a
  Bayesian approach"): Beta-Bernoulli Thompson sampling whose evidence, for
  every arm, played or not, is discounted by ``gamma`` at every event, so an
  arm left alone drifts back to its prior and is explored again.
- ``LinUCB`` (Li, Chu, Langford & Schapire 2010, disjoint): per-arm ridge
  regression, score ``x'theta_a + alpha * sqrt(x' A_a^-1 x)``; it keeps the
  same statistics and Sherman-Morrison updates as ``LinTSDisjoint``;
  ``posterior`` returns the ridge estimate and the UCB width.

Deterministic rankings break ties at random (from the caller's Generator).
Their propensities are exact: ``first_slot_counts`` draws a multinomial from
the exact first-slot probabilities (``DiscountedTS``, a sampling policy,
counts the winners of posterior draws instead).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from bandit_engine import ArmFeatures, InvalidArgument
from bandit_engine.policies import FloatArray, IntArray, LinTSDisjoint, Policy, Ranking

__all__ = [
    "BASELINES",
    "UCB1",
    "DiscountedTS",
    "EpsilonGreedy",
    "LinUCB",
    "Uniform",
    "make_baseline",
]

# Scores of untried arms: above any mean of rewards in [0, 1] plus any bonus
_UNTRIED = 1e12
_JITTER = 1e-9  # random tie-break, far below any difference of means that matters


def _argmax_probs(scores: FloatArray) -> FloatArray:
    """First-slot probabilities of a deterministic ranking with random tie-break."""
    top = scores == scores.max()
    out: FloatArray = top / top.sum()
    return out


class _Counting(Policy):
    """Non-contextual baselines: per-arm pulls and reward sums (the base's arrays)."""

    contextual = False

    def __init__(self, dim: int = 1) -> None:
        super().__init__(dim)

    def params(self) -> dict[str, Any]:
        return {"dim": self.dim}

    def _grow_arrays(self, capacity: int) -> None:
        pass

    def _init_arm(self, idx: int, features: ArmFeatures | None) -> None:
        pass

    def _apply(
        self,
        arms: IntArray,
        xs: FloatArray | None,
        rewards: FloatArray,
        weights: FloatArray | None = None,
    ) -> None:
        np.add.at(self._pulls, arms, 1)
        np.add.at(self._rsum, arms, rewards)

    def _means(self, arms: IntArray) -> FloatArray:
        n = self._pulls[arms]
        out: FloatArray = np.where(n > 0, self._rsum[arms] / np.maximum(n, 1), 0.0)
        return out

    def first_slot_probs(self, arms: IntArray, x: FloatArray | None) -> FloatArray:
        """Exact probability that each arm is ranked first."""
        raise NotImplementedError

    def first_slot_counts(
        self, arms: IntArray, x: FloatArray | None, draws: int, rng: np.random.Generator
    ) -> IntArray:
        out: IntArray = rng.multinomial(draws, self.first_slot_probs(arms, x)).astype(np.int64)
        return out

    def posterior(self, arm: int, x: FloatArray | None = None) -> tuple[float, float]:
        """Empirical mean and its standard error (0.5 and 0.5 for an untried arm)."""
        arm = self._check_arm(arm)
        n = int(self._pulls[arm])
        if n == 0:
            return 0.5, 0.5
        m = float(self._rsum[arm]) / n
        return m, math.sqrt(max(m * (1.0 - m), 0.0) / n)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _load_arrays(self, state: dict[str, np.ndarray], n: int) -> None:
        pass


class Uniform(_Counting):
    """Every ranking equally likely: the floor any learner must beat."""

    kind = "uniform"

    def sample_scores(
        self, arms: IntArray, x: FloatArray | None, rng: np.random.Generator
    ) -> FloatArray:
        return np.asarray(rng.random(arms.shape[0]))

    def first_slot_probs(self, arms: IntArray, x: FloatArray | None) -> FloatArray:
        return np.full(arms.shape[0], 1.0 / arms.shape[0])


class EpsilonGreedy(_Counting):
    """A random ranking with probability ``epsilon``, else arms by empirical mean."""

    kind = "epsilon_greedy"

    def __init__(self, dim: int = 1, *, epsilon: float = 0.1) -> None:
        super().__init__(dim)
        if not (0.0 <= epsilon <= 1.0):
            raise InvalidArgument(f"epsilon={epsilon!r} must be in [0, 1]")
        self.epsilon = float(epsilon)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "epsilon": self.epsilon}

    def _greedy(self, arms: IntArray) -> FloatArray:
        out: FloatArray = np.where(self._pulls[arms] > 0, self._means(arms), _UNTRIED)
        return out

    def sample_scores(
        self, arms: IntArray, x: FloatArray | None, rng: np.random.Generator
    ) -> FloatArray:
        jitter = np.asarray(rng.random(arms.shape[0]))
        if rng.random() < self.epsilon:
            return jitter
        return self._greedy(arms) + _JITTER * jitter

    def first_slot_probs(self, arms: IntArray, x: FloatArray | None) -> FloatArray:
        n = arms.shape[0]
        out: FloatArray = self.epsilon / n + (1.0 - self.epsilon) * _argmax_probs(
            self._greedy(arms)
        )
        return out


class UCB1(_Counting):
    """Upper confidence bound: mean + ``c * sqrt(log N / n_a)``, N the total pulls."""

    kind = "ucb1"

    def __init__(self, dim: int = 1, *, c: float = math.sqrt(2.0)) -> None:
        super().__init__(dim)
        if not (math.isfinite(c) and c >= 0.0):
            raise InvalidArgument(f"c={c!r} must be finite and >= 0")
        self.c = float(c)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "c": self.c}

    def _index(self, arms: IntArray) -> FloatArray:
        n = self._pulls[arms]
        total = max(int(self._pulls[: self._n_arms].sum()), 1)
        bonus = self.c * np.sqrt(math.log(total) / np.maximum(n, 1))
        out: FloatArray = np.where(n > 0, self._means(arms) + bonus, _UNTRIED)
        return out

    def sample_scores(
        self, arms: IntArray, x: FloatArray | None, rng: np.random.Generator
    ) -> FloatArray:
        return self._index(arms) + _JITTER * rng.random(arms.shape[0])

    def first_slot_probs(self, arms: IntArray, x: FloatArray | None) -> FloatArray:
        return _argmax_probs(self._index(arms))


class DiscountedTS(_Counting):
    """Discounted Thompson sampling (Raj & Kalyani 2017) for rewards in [0, 1].

    Each arm keeps discounted successes ``S`` and failures ``F``. An event
    ``(a, r)`` first multiplies every arm's ``S`` and ``F`` by ``gamma``, then
    adds ``r`` to ``S_a`` and ``1 - r`` to ``F_a``; scores are draws of
    ``Beta(S + prior_alpha, F + prior_beta)``. The discount runs per event:
    with one shown arm per round, per round, as in the paper. Evidence
    older than about ``1 / (1 - gamma)`` events fades, for arms that are not
    played too. ``gamma = 1`` is Beta-Bernoulli TS.
    """

    kind = "discounted_ts"

    def __init__(
        self,
        dim: int = 1,
        *,
        gamma: float = 0.99,
        prior_alpha: float = 1.0,
        prior_beta: float = 1.0,
    ) -> None:
        super().__init__(dim)
        if not (0.0 < gamma <= 1.0):
            raise InvalidArgument(f"gamma={gamma!r} must be in (0, 1]")
        for name, v in (("prior_alpha", prior_alpha), ("prior_beta", prior_beta)):
            if not (math.isfinite(v) and v > 0.0):
                raise InvalidArgument(f"{name}={v!r} must be a positive finite number")
        self.gamma = float(gamma)
        self.prior_alpha = float(prior_alpha)
        self.prior_beta = float(prior_beta)
        self._s = np.zeros(0)
        self._f = np.zeros(0)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "gamma": self.gamma,
            "prior_alpha": self.prior_alpha,
            "prior_beta": self.prior_beta,
        }

    def _grow_arrays(self, capacity: int) -> None:
        def grown(a: FloatArray) -> FloatArray:
            out = np.zeros(capacity)
            m = min(capacity, a.shape[0])
            out[:m] = a[:m]
            return out

        self._s = grown(self._s)
        self._f = grown(self._f)

    def _apply(
        self,
        arms: IntArray,
        xs: FloatArray | None,
        rewards: FloatArray,
        weights: FloatArray | None = None,
    ) -> None:
        super()._apply(arms, xs, rewards)
        n = arms.shape[0]
        # the fold of n events: S <- gamma^n S + sum_i gamma^(n-1-i) r_i e_(a_i)
        w = self.gamma ** np.arange(n - 1, -1, -1, dtype=np.float64)
        self._s *= self.gamma**n
        self._f *= self.gamma**n
        np.add.at(self._s, arms, w * rewards)
        np.add.at(self._f, arms, w * (1.0 - rewards))

    def _ab(self, arms: IntArray) -> tuple[FloatArray, FloatArray]:
        return self._s[arms] + self.prior_alpha, self._f[arms] + self.prior_beta

    def sample_scores(
        self, arms: IntArray, x: FloatArray | None, rng: np.random.Generator
    ) -> FloatArray:
        a, b = self._ab(arms)
        return np.asarray(rng.beta(a, b))

    def first_slot_counts(
        self, arms: IntArray, x: FloatArray | None, draws: int, rng: np.random.Generator
    ) -> IntArray:
        a, b = self._ab(arms)
        winners = np.argmax(rng.beta(a, b, size=(draws, arms.shape[0])), axis=1)
        out: IntArray = np.bincount(winners, minlength=arms.shape[0]).astype(np.int64)
        return out

    def posterior(self, arm: int, x: FloatArray | None = None) -> tuple[float, float]:
        """Mean and standard deviation of the arm's discounted Beta posterior."""
        arm = self._check_arm(arm)
        a = float(self._s[arm]) + self.prior_alpha
        b = float(self._f[arm]) + self.prior_beta
        s = a + b
        return a / s, math.sqrt(a * b / (s * s * (s + 1.0)))

    def _state_arrays(self) -> dict[str, np.ndarray]:
        n = self._n_arms
        return {"S": self._s[:n].copy(), "F": self._f[:n].copy()}

    def _load_arrays(self, state: dict[str, np.ndarray], n: int) -> None:
        self._s[:n] = state["S"]
        self._f[:n] = state["F"]


class LinUCB(LinTSDisjoint):
    """Disjoint LinUCB: ``x'theta_a + alpha * sqrt(x' A_a^-1 x)``, per-arm ridge regression.

    Shares ``LinTSDisjoint``'s statistics (A_a = lambda*I + sum x x', b_a =
    sum r x) and updates; only the score differs: an upper confidence bound
    instead of a posterior draw.
    """

    kind = "lin_ucb"
    _offset_mean = 0.0  # ridge regression on the rewards as they are (Li et al. 2010)

    def __init__(self, dim: int, *, alpha: float = 1.0, prior_precision: float = 1.0) -> None:
        if not (math.isfinite(alpha) and alpha > 0.0):
            raise InvalidArgument(f"alpha={alpha!r} must be a positive finite number")
        # the kernel's score std is noise_scale * sqrt(x'A^-1x): alpha plays that part
        super().__init__(dim, prior_precision=prior_precision, noise_scale=alpha, exploration=1.0)
        self.alpha = float(alpha)

    def params(self) -> dict[str, Any]:
        return {"dim": self.dim, "alpha": self.alpha, "prior_precision": self.prior_precision}

    def _index(self, arms: IntArray, x: FloatArray) -> FloatArray:
        mean, width = self.mean_std(arms, x)
        out: FloatArray = mean + width
        return out

    def sample_scores(
        self, arms: IntArray, x: FloatArray | None, rng: np.random.Generator
    ) -> FloatArray:
        assert x is not None
        return self._index(arms, x) + _JITTER * rng.random(arms.shape[0])

    def decide(
        self, arms: IntArray, x: FloatArray | None, k: int, draws: int, rng: np.random.Generator
    ) -> tuple[Ranking, IntArray]:
        return Policy.decide(self, arms, x, k, draws, rng)

    def first_slot_counts(
        self, arms: IntArray, x: FloatArray | None, draws: int, rng: np.random.Generator
    ) -> IntArray:
        assert x is not None
        p = _argmax_probs(self._index(arms, x))
        out: IntArray = rng.multinomial(draws, p).astype(np.int64)
        return out


BASELINES: dict[str, type[Policy]] = {
    cls.kind: cls for cls in (Uniform, EpsilonGreedy, UCB1, DiscountedTS, LinUCB)
}


def make_baseline(kind: str, dim: int, **params: Any) -> Policy:
    """Build a baseline by kind name, e.g. ``make_baseline("ucb1", dim=1, c=1.0)``."""
    try:
        cls = BASELINES[kind]
    except KeyError:
        raise InvalidArgument(
            f"unknown baseline {kind!r}; expected one of {sorted(BASELINES)}"
        ) from None
    known = [
        n
        for n, p in inspect.signature(cls.__init__).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise InvalidArgument(
            f"baseline {kind!r} has no parameter {unknown[0]!r}; its parameters are {known}"
        )
    return cls(dim, **params)
