"""The Recommend workload every serving figure shares.

One experiment (disjoint linear TS, dim 33 = intercept + 32 dense features,
100 arms), top-10 rankings, contexts drawn from a seeded Generator, and a
synthetic world that turns a shown arm into a Bernoulli reward (a logistic
model per arm). The gRPC rounds, the Kafka-mode server and the in-process
loop all train and query the same experiment with the same draws, so their
figures compare like with like.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DENSE",
    "EXPERIMENT",
    "N_ARMS",
    "K",
    "World",
    "arm_ids",
    "contexts",
    "requests",
]

EXPERIMENT = "bench"
N_ARMS = 100
DENSE = 32
K = 10


def arm_ids() -> list[str]:
    """The experiment's arm ids, ``arm-000`` to ``arm-099``."""
    return [f"arm-{i:03d}" for i in range(N_ARMS)]


def contexts(n: int, seed: int) -> np.ndarray:
    """``n`` dense contexts, rows of ``DENSE`` values of N(0, 1/DENSE)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, DENSE)) / np.sqrt(DENSE)


def requests(n: int, seed: int) -> list[Any]:
    """``n`` ``RecommendRequest`` messages over ``contexts(n, seed)``."""
    from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb

    return [
        pb.RecommendRequest(experiment_id=EXPERIMENT, context=pb.Features(dense=x.tolist()), k=K)
        for x in contexts(n, seed)
    ]


@dataclass(frozen=True)
class World:
    """Click probabilities of the arms: logistic in the context, per arm."""

    theta: np.ndarray  # (N_ARMS, DENSE)
    bias: np.ndarray  # (N_ARMS,)

    @classmethod
    def make(cls, seed: int) -> World:
        rng = np.random.default_rng(seed)
        theta = rng.standard_normal((N_ARMS, DENSE))
        return cls(theta, rng.normal(-1.0, 0.5, N_ARMS))

    def click_probability(self, arm_id: str, x: np.ndarray) -> float:
        a = int(arm_id.split("-")[1])
        return float(1.0 / (1.0 + np.exp(-(self.bias[a] + x @ self.theta[a]))))

    def training(self, n: int, seed: int) -> tuple[np.ndarray, list[float]]:
        """``n`` training contexts and the uniform draws that decide their rewards."""
        u = np.random.default_rng(seed + 1).random(n)
        return contexts(n, seed), u.tolist()
