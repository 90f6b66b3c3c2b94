"""State stores: SQLite (embedded) and MySQL, behind the core's ``Store``.

``SQLiteStore`` and ``MySQLStore`` implement the engine's ``Store``;
``MySQLStore`` is also a ``LearnerStore`` (what a Kafka-mode learner needs).
``MySQLStore`` (with ``parse_dsn`` and ``redact`` for its DSNs) is imported
on first use, so that a process without MySQL never loads its driver.
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
    PolicyChange,
    RewardRow,
    Snapshot,
    SnapshotPart,
    SnapshotUpdate,
    Store,
)
from bandit_engine.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from bandit_engine.store.mysql import MySQLStore, parse_dsn, redact

__all__ = [
    "PRUNE_CHUNK",
    "ArmRow",
    "DecisionRow",
    "HeldRewards",
    "LearnerOffsets",
    "LearnerStore",
    "MySQLStore",
    "PolicyChange",
    "RewardRow",
    "SQLiteStore",
    "Snapshot",
    "SnapshotPart",
    "SnapshotUpdate",
    "Store",
    "parse_dsn",
    "redact",
]


def __getattr__(name: str) -> Any:
    if name in ("MySQLStore", "parse_dsn", "redact"):
        from bandit_engine.store import mysql

        return getattr(mysql, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
