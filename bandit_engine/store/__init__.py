"""State stores: the contract (``Store``) and the embedded SQLite store."""

from .base import ArmRow, DecisionRow, RewardRow, Snapshot, Store
from .sqlite import SQLiteStore

__all__ = ["ArmRow", "DecisionRow", "RewardRow", "SQLiteStore", "Snapshot", "Store"]
