"""Storage contracts: the engine's ``Store`` (``bandit_engine.core.ports``)
and what a learner keeps in a store (``LearnerStore``).

``SQLiteStore`` (embedded default, a file under the state dir) and
``MySQLStore`` implement ``Store``; ``MySQLStore`` implements
``LearnerStore`` too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from bandit_engine.core.ports import (
    PRUNE_CHUNK,
    REWARD_COUNTERS,
    ArmRow,
    DecisionRow,
    FloatArray,
    PolicyChange,
    RewardRow,
    Snapshot,
    Store,
)

__all__ = [
    "PRUNE_CHUNK",
    "REWARD_COUNTERS",
    "ArmRow",
    "DecisionRow",
    "FloatArray",
    "HeldRewards",
    "LearnerOffsets",
    "LearnerStore",
    "PolicyChange",
    "RewardRow",
    "Snapshot",
    "SnapshotPart",
    "SnapshotUpdate",
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


@dataclass(frozen=True)
class SnapshotPart:
    """What one learner's commit learned of one experiment, stored beside
    its snapshot instead of in it: learners sharing the experiment then do
    not take turns on the snapshot's row. ``state``: the evidence
    (``policies.merge.evidence``); ``counters``: the commit's counters of
    the experiment, by name. A later commit that holds the snapshot's row
    absorbs the parts stored before it (``SnapshotUpdate``), adds their
    counters, and deletes them."""

    state: dict[str, np.ndarray]
    counters: Mapping[str, int]


class SnapshotUpdate(Protocol):
    """One experiment's part of a learner commit: the new posterior state.

    Called inside the commit's transaction, with the snapshot's row locked,
    with the stored snapshot version (0 if none), ``load``, which reads the
    stored snapshot (for a caller whose copy is older than ``version``:
    another learner committed since), and the evidence of the experiment's
    stored parts (``SnapshotPart.state``, oldest first), which the returned
    state must include. Returns the state to store as version ``version + 1``.
    """

    def __call__(
        self,
        version: int,
        load: Callable[[], Snapshot | None],
        parts: Sequence[dict[str, np.ndarray]],
    ) -> dict[str, np.ndarray]: ...


class LearnerStore(Protocol):
    """What a Kafka-mode learner needs of a store (``bandit_engine.stream.learner``).

    The learner reads experiments, arms and snapshots, and commits, in one
    transaction per call to ``learner_commit``, the posteriors it updated,
    its counters, its log positions (``LearnerOffsets``) and the rewards a
    replay cannot resolve alone (``HeldRewards``): that transaction is what
    makes each reward count exactly once. ``MySQLStore`` implements it; so
    does the in-memory store the tests use, and one contract test suite
    runs against both.
    """

    def load_experiments(self) -> list[tuple[str, dict[str, Any], int]]:
        """(experiment_id, config, arm_changes) in creation order."""
        ...

    def load_arms(self, experiment_id: str) -> list[ArmRow]:
        """Arms of one experiment ordered by slot."""
        ...

    def load_snapshot(self, experiment_id: str) -> Snapshot | None:
        """The stored posterior of one experiment, or None."""
        ...

    def policy_changes(self, experiment_id: str | None = None) -> list[PolicyChange]:
        """Stored changes of experiments' policy sets, in order (``Store.policy_changes``)."""
        ...

    def learner_offsets(self, group_id: str) -> dict[int, LearnerOffsets]:
        """The committed positions of a consumer group, by partition number."""
        ...

    def learner_held(self, group_id: str) -> dict[int, HeldRewards]:
        """The committed held rewards of a consumer group, by partition number."""
        ...

    def learner_counters(self, experiment_id: str | None = None) -> dict[tuple[str, str], int]:
        """Committed counters by (experiment, name), all experiments if None."""
        ...

    def learner_commit(
        self,
        group_id: str,
        updates: Mapping[str, SnapshotUpdate],
        counters: Mapping[tuple[str, str], int],
        offsets: Mapping[int, LearnerOffsets],
        now: float,
        held: Mapping[int, HeldRewards] | None = None,
        parts: Mapping[str, SnapshotPart] | None = None,
    ) -> dict[str, int]:
        """One transaction: new posteriors, counters, offsets and held rewards.

        ``updates[exp](version, load, parts)`` runs with the experiment's
        snapshot locked (learners sharing an experiment take turns); its
        state is stored as ``version + 1``, the experiment's stored parts
        are deleted and their counters added, and the new versions are
        returned. ``parts[exp]`` is stored beside the snapshot, which is not
        locked (``SnapshotPart``).
        Counters are added to the stored ones; ``offsets`` replace a
        partition's. ``held[p]`` replaces partition ``p``'s waiting rewards
        and adds its unknown ones, after dropping the stored unknown ones
        below the new ``fb_resume`` (a replay no longer reads them); a
        partition absent from ``held`` keeps what it had.
        If anything raises, nothing is stored. No retry: a lost link leaves
        the outcome unknown, and the caller reloads its state.
        """
        ...

    def pending_parts(self) -> dict[str, int]:
        """How many stored parts wait to be absorbed, by experiment."""
        ...

    def absorb_parts(self, experiment_id: str, update: SnapshotUpdate, now: float) -> int | None:
        """One transaction: ``update`` absorbs the experiment's stored parts
        into its snapshot, as in ``learner_commit``, with no events of its
        own; the new version (the stored one if no part waits). None,
        having changed nothing, if another transaction holds the snapshot's
        row: this call never waits for it."""
        ...

    def close(self) -> None: ...
