"""State stores: SQLite (embedded) and MySQL, behind the core's ``Store``.

``SQLiteStore`` and ``MySQLStore`` implement the engine's ``Store``;
``MySQLStore`` is also a ``LearnerStore`` (what a Kafka-mode learner needs).
``MySQLStore`` is imported on first use, so that a process without MySQL
never loads its driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bandit_engine.store.base import (
    PRUNE_CHUNK,
    ArmRow,
    DecisionRow,
    HeldRewards,
    LearnerOffsets,
    LearnerStore,
    RewardRow,
    Snapshot,
    SnapshotUpdate,
    Store,
)
from bandit_engine.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from bandit_engine.store.mysql import MySQLStore

__all__ = [
    "PRUNE_CHUNK",
    "ArmRow",
    "DecisionRow",
    "HeldRewards",
    "LearnerOffsets",
    "LearnerStore",
    "MySQLStore",
    "RewardRow",
    "SQLiteStore",
    "Snapshot",
    "SnapshotUpdate",
    "Store",
]


def __getattr__(name: str) -> Any:
    if name == "MySQLStore":
        from bandit_engine.store.mysql import MySQLStore

        return MySQLStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
