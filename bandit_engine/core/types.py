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
    "RecommendItem",
    "Report",
]

FloatArray = npt.NDArray[np.float64]

#: Counters every experiment keeps (``ExperimentInfo.counters``, the
#: ``ExperimentCounters`` of ``GetExperiment``). Each counts since the
#: experiment was created, and never goes backwards, across restarts and
#: crashes included.
#:
#: Embedded mode (SQLite or MySQL store): the store keeps them, in the
#: transaction that stores what they count (``Store.counters``), so they are
#: exactly what the durable log holds, whatever was lost in a crash:
#:
#: - ``decisions``: decision rows stored (a Recommend's decision is stored
#:   within ``flush_interval``; ``GetExperiment`` stores the pending ones
#:   before it reads). A decision lost in a crash before it was stored is
#:   not counted.
#: - ``rewards_applied``: reward rows stored from Feedback, each applied to
#:   the posterior once.
#: - ``rewards_defaulted``: default-reward rows stored when a window closed,
#:   one per shown arm that had no Feedback.
#: - ``rewards_duplicate``: Feedbacks answered DUPLICATE (their (event, arm)
#:   had its reward from a Feedback already).
#: - ``rewards_late``: Feedbacks answered LATE (after the window, or for an
#:   arm that got the default reward).
#: - ``rewards_unknown``: Feedbacks answered NOT_FOUND because no decision has
#:   their event id (never made, lost in a crash before it was stored, or
#:   deleted by log retention). A Feedback names no experiment, so this is
#:   the count of the whole store, the same in every experiment, and
#:   ``bandit_rewards_unknown_total``.
#:
#: Pruning the log (``--log-retention``) deletes rows, not counts. Feedbacks
#: refused as bad input (INVALID_ARGUMENT) are not counted. Kafka mode: the
#: learners' committed counts (``decisions`` and ``rewards_*`` of the
#: decisions and rewards they joined; ``rewards_duplicate`` and
#: ``rewards_late`` are their dead letters of those reasons), and
#: ``rewards_unknown`` is 0 (the ``unknown_event`` dead letters are in
#: ``learner_counters``).
COUNTER_NAMES = (
    "decisions",
    "rewards_applied",
    "rewards_defaulted",
    "rewards_duplicate",
    "rewards_late",
    "rewards_unknown",
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
    in the first slot (``propensity_kind`` ``first_slot``) or in slot ``i``
    (``per_slot``) for this context, estimated from the experiment's
    ``propensity_draws`` posterior draws. Two decisions are equal when all
    their fields are."""

    event_id: str
    arm_ids: tuple[str, ...]
    scores: FloatArray
    propensities: FloatArray
    model_version: int
    propensity_kind: str = "first_slot"
    #: ``per_slot``: ``prefix_propensities[i]`` is the probability that the
    #: policy's first ``i + 1`` arms are ``arm_ids[:i + 1]`` (the last: the
    #: whole list's); None for ``first_slot``
    prefix_propensities: FloatArray | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return NotImplemented
        return (
            self.event_id == other.event_id
            and self.arm_ids == other.arm_ids
            and self.model_version == other.model_version
            and self.propensity_kind == other.propensity_kind
            and (
                np.array_equal(self.prefix_propensities, other.prefix_propensities)
                if self.prefix_propensities is not None and other.prefix_propensities is not None
                else self.prefix_propensities is other.prefix_propensities
            )
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
    #: the serving policy's name (``core.challengers``)
    champion: str = "initial"
    #: (name, ExperimentConfig) of each challenger
    challengers: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class RecommendItem:
    """One request of ``Engine.recommend_batch``: ``recommend``'s arguments."""

    experiment_id: str
    context: Context | None = None
    candidates: Sequence[str] = ()
    k: int = 1


@dataclass(frozen=True)
class Report:
    """``Engine.challengers.report``: the estimates of the champion and its
    challengers over the window (``core.shadow.Estimates``), and the
    experiment's policy changes (``core.ports.PolicyChange``), oldest first."""

    experiment_id: str
    champion: str
    shadow_rate: float
    shadow_window: int
    estimates: list[Any]
    changes: list[Any]
