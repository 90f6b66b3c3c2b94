"""State stores: the contract (``Store``), SQLite (embedded) and MySQL."""

from .base import ArmRow, DecisionRow, HeldRewards, LearnerOffsets, RewardRow, Snapshot, Store
from .mysql import MySQLStore
from .sqlite import SQLiteStore

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
