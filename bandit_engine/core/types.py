"""What the engine takes and gives back: contexts, decisions, results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "COUNTER_NAMES",
    "ArmInfo",
    "Context",
    "Decision",
    "ExperimentInfo",
    "FeedbackResult",
]

FloatArray = npt.NDArray[np.float64]

#: Counters every experiment keeps (``ExperimentInfo.counters``).
COUNTER_NAMES = (
    "decisions",
    "rewards_applied",
    "rewards_defaulted",
    "rewards_duplicate",
    "rewards_late",
)


@dataclass(frozen=True)
class Context:
    """Features of a request, before hashing: a dense block (exactly the
    experiment's ``dense_dim`` values, or none), named numeric features and
    categorical features (both hashed into the experiment's hashed block)."""

    dense: Sequence[float] = ()
    numeric: Mapping[str, float] = field(default_factory=dict)
    categorical: Sequence[str] = ()


@dataclass(frozen=True, slots=True, eq=False)
class Decision:
    """A ranked answer. ``scores[i]`` is the sampled score of ``arm_ids[i]``;
    ``propensities[i]`` the probability that the policy puts ``arm_ids[i]``
    in the first slot for this context (estimated from the experiment's
    ``propensity_draws`` posterior draws). Two decisions are equal when all
    their fields are."""

    event_id: str
    arm_ids: tuple[str, ...]
    scores: FloatArray
    propensities: FloatArray
    model_version: int

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return NotImplemented
        return (
            self.event_id == other.event_id
            and self.arm_ids == other.arm_ids
            and self.model_version == other.model_version
            and np.array_equal(self.scores, other.scores)
            and np.array_equal(self.propensities, other.propensities)
        )

    def __hash__(self) -> int:
        return hash((self.event_id, self.arm_ids, self.model_version))


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    outcome: str  # "applied", "duplicate", "late"; "queued" in Kafka mode
    model_version: int


@dataclass(frozen=True)
class ArmInfo:
    arm_id: str
    active: bool
    mean: float
    std: float
    pulls: int
    reward_sum: float
    features: dict[str, Any]


@dataclass(frozen=True)
class ExperimentInfo:
    config: Any  # ExperimentConfig
    active_arms: int
    total_arms: int
    model_version: int
    counters: dict[str, int]
