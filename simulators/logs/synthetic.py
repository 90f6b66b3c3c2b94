"""Logs with a known truth: ``SyntheticWorld`` (exact policy values) and
``uniform_stream`` (the replay benchmark's data)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bandit_engine.policies import FloatArray, IntArray
from simulators.logs.bandit_log import BanditLog

__all__ = ["SyntheticWorld", "uniform_stream"]


@dataclass(frozen=True)
class SyntheticWorld:
    """M discrete contexts, K arms, known click probabilities: exact truths.

    ``value(pi)`` is the exact expected reward of a policy given as an (M, K)
    matrix of action probabilities; ``sample`` draws a log from a logging
    policy (uniform by default).
    """

    contexts: FloatArray  # (M, d), x[0] = 1
    weights: FloatArray  # (M,) context frequencies, summing to 1
    mu: FloatArray  # (M, K) P(reward = 1 | context, arm)

    @classmethod
    def make(
        cls,
        n_contexts: int = 20,
        n_arms: int = 5,
        dim: int = 4,
        *,
        seed: int = 0,
        base: float = -1.0,
        spread: float = 1.0,
    ) -> SyntheticWorld:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n_contexts, dim))
        x[:, 0] = 1.0
        theta = spread * rng.standard_normal((n_arms, dim))
        theta[:, 0] += base
        mu = 1.0 / (1.0 + np.exp(-(x @ theta.T)))
        w = rng.dirichlet(np.full(n_contexts, 5.0))
        return cls(x, w, mu)

    @property
    def n_arms(self) -> int:
        return int(self.mu.shape[1])

    def uniform(self) -> FloatArray:
        return np.full(self.mu.shape, 1.0 / self.n_arms)

    def value(self, pi: FloatArray) -> float:
        """Exact expected reward of the policy with action probabilities ``pi``."""
        return float(self.weights @ np.sum(pi * self.mu, axis=1))

    def sample(
        self, n: int, logging: FloatArray | None = None, *, seed: int = 0
    ) -> tuple[BanditLog, IntArray]:
        """A log of ``n`` rows and each row's context index."""
        rng = np.random.default_rng(seed)
        pi0 = self.uniform() if logging is None else np.asarray(logging, dtype=np.float64)
        m = rng.choice(self.weights.shape[0], size=n, p=self.weights).astype(np.int64)
        cum = np.cumsum(pi0[m], axis=1)
        u = rng.random(n)[:, None]
        a = np.minimum((u >= cum).sum(axis=1), self.n_arms - 1).astype(np.int64)
        r = (rng.random(n) < self.mu[m, a]).astype(np.float64)
        log = BanditLog(
            arm_ids=tuple(f"arm{j}" for j in range(self.n_arms)),
            x=self.contexts[m],
            shown=a[:, None],
            propensity=pi0[m, a][:, None],
            reward=r[:, None],
            event_id=tuple(str(i) for i in range(n)),
            timestamp=np.arange(n, dtype=np.float64),
            meta={"source": f"synthetic:seed={seed}"},
        )
        return log, m


def uniform_stream(n: int, n_arms: int, dim: int, *, seed: int = 0) -> BanditLog:
    """A uniformly logged contextual stream (logistic rewards, continuous x).

    The replay benchmark's data: x[0] = 1, x[1:] ~ N(0, 1/d), one true weight
    vector per arm.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)) / math.sqrt(dim)
    x[:, 0] = 1.0
    theta = rng.standard_normal((n_arms, dim))
    theta[:, 0] = rng.normal(-1.0, 0.5, n_arms)
    a = rng.integers(0, n_arms, n).astype(np.int64)
    logits = np.einsum("nd,nd->n", x, theta[a])
    r = (rng.random(n) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float64)
    return BanditLog(
        arm_ids=tuple(str(j) for j in range(n_arms)),
        x=x,
        shown=a[:, None],
        propensity=np.full((n, 1), 1.0 / n_arms),
        reward=r[:, None],
        event_id=tuple(map(str, range(n))),
        timestamp=np.arange(n, dtype=np.float64),
        meta={"source": f"uniform_stream:seed={seed}"},
    )
