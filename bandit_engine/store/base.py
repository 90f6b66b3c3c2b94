"""Storage contracts: the engine's ``Store`` (``bandit_engine.core.ports``)
and what a learner keeps in a store (``LearnerStore``).

``SQLiteStore`` (embedded default, a file under the state dir) and
``MySQLStore`` implement ``Store``; ``MySQLStore`` implements
``LearnerStore`` too.
"""

from __future__ import annotations

from dataclasses import dataclass

from bandit_engine.core.ports import (
    PRUNE_CHUNK,
    ArmRow,
    DecisionRow,
    FloatArray,
    RewardRow,
    Snapshot,
    Store,
)

__all__ = [
    "PRUNE_CHUNK",
    "ArmRow",
    "DecisionRow",
    "FloatArray",
    "HeldRewards",
    "LearnerOffsets",
    "RewardRow",
    "Snapshot",
    "Store",
]


@dataclass(frozen=True)
class LearnerOffsets:
    """Where a learner stands in one partition number of the two logs.

    ``*_next``: the next offset not yet processed (everything before it is
    reflected in the committed statistics). ``*_resume``: where to start
    reading to rebuild the join state (the oldest decision still waiting
    for its window, the oldest reward of such a decision). ``watermark``:
    windows with a deadline at or before it are closed.
    """

    dec_next: int
    dec_resume: int
    fb_next: int
    fb_resume: int
    watermark: float


@dataclass(frozen=True)
class HeldRewards:
    """Rewards of one partition number whose outcome a replay cannot rebuild.

    A replay re-reads the two logs in whatever interleaving the consumer
    returns, not the one the learner first saw. Two outcomes depend on that
    interleaving and on the clock, so they are committed with the offsets:
    ``orphans``, the feedback offsets still waiting for their decision at the
    commit, and ``unknown``, the offsets dead-lettered as ``unknown_event``
    since the previous commit (the store keeps them until ``fb_resume``
    passes them). Every other reward a replay meets was resolved by its
    decision before the commit.
    """

    orphans: tuple[int, ...] = ()
    unknown: tuple[int, ...] = ()
