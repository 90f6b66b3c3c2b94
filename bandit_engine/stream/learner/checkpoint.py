"""What the join state hands to a commit, and what it cannot apply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bandit_engine.store import HeldRewards, LearnerOffsets

if TYPE_CHECKING:
    from bandit_engine.stream.learner.forward import Forward
    from bandit_engine.stream.learner.partition import Partition

__all__ = ["DEAD_LETTER_REASONS", "Checkpoint", "DeadLetter", "Event"]

DEAD_LETTER_REASONS = ("malformed", "invalid", "duplicate", "late", "unknown_event")

#: One update of a posterior: (slot, context as little-endian float64 bytes,
#: reward normalised to [0, 1], the decision's time: ``decision_time``, how
#: much it counts: its click model's weight, and for the first shown slot of
#: a decision the challengers ranked in shadow, that ranking
#: (``core.challengers.ShadowRecord``), else None).
Event = tuple[int, bytes, float, float, float, Any]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A feedback record that was not applied, and why (``DEAD_LETTER_REASONS``)."""

    experiment_id: str  # "" when no decision names it
    reason: str
    detail: str
    key: bytes | None
    value: bytes
    partition: int
    offset: int

    def body(self, topic: str) -> dict[str, Any]:
        """The JSON object written to the dead-letter topic (``topic``: the
        feedback topic the record came from)."""
        v = self.value
        return {
            "reason": self.reason,
            "detail": self.detail,
            "partition": self.partition,
            "offset": self.offset,
            "topic": topic,
            "payload": v.decode("utf-8", "replace") if v[:1] == b"{" else v.hex(),
        }


@dataclass
class Checkpoint:
    """Everything one commit stores, taken from the join state at once.

    ``offsets`` and ``held``: per partition number, the positions and the
    held rewards (only the partitions where those changed). ``events``: the
    posterior updates per experiment since the last checkpoint (feedback and
    default rewards, in the order they were joined or closed). ``counters``:
    by (experiment, name), to be added to the stored ones. ``reward_times``:
    the timestamps of the applied feedback rewards. ``forwards``: rewards
    to copy to the partition that owns their event id, acknowledged before
    the transaction (``forward``). ``partitions``: the
    partition objects it was taken from (a partition rebuilt since is not
    marked committed by ``JoinState.confirm``).
    """

    offsets: dict[int, LearnerOffsets] = field(default_factory=dict)
    held: dict[int, HeldRewards] = field(default_factory=dict)
    events: dict[str, list[Event]] = field(default_factory=dict)
    counters: dict[tuple[str, str], int] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    reward_times: list[float] = field(default_factory=list)
    forwards: list[Forward] = field(default_factory=list)
    partitions: dict[int, Partition] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Nothing to store: no partition, no update, no counter."""
        return not self.offsets and not self.events and not self.counters

    @property
    def n_events(self) -> int:
        """Posterior updates in ``events`` (feedback and default rewards)."""
        return sum(len(v) for v in self.events.values())
