"""State stores: the contract (``Store``), SQLite (embedded) and MySQL."""

from bandit_engine.store.base import (
    ArmRow,
    DecisionRow,
    HeldRewards,
    LearnerOffsets,
    RewardRow,
    Snapshot,
    Store,
)
from bandit_engine.store.mysql import MySQLStore
from bandit_engine.store.sqlite import SQLiteStore

__all__ = [
    "ArmRow",
    "DecisionRow",
    "HeldRewards",
    "LearnerOffsets",
    "MySQLStore",
    "RewardRow",
    "SQLiteStore",
    "Snapshot",
    "Store",
]
