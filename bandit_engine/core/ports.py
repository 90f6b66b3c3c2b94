"""The core's ports: what the engine needs of the world outside it.

``Store`` is the state store (``bandit_engine.store``: SQLite, MySQL), with
the rows it keeps. ``EventLog`` is the decision and feedback log of Kafka
mode (``bandit_engine.stream``). Both are plain Python: the core never sees
a database driver, a broker client or a protobuf message.

Durability contract of a ``Store``:

- ``commit_rewards`` is synchronous and atomic: when it returns, the reward
  rows (and the decisions closed with them) survive a process crash. Rows
  are unique on (event_id, arm_id): a second row for the same pair is not
  inserted and its seq comes back as None. That is what makes Feedback
  idempotent across retries and restarts.
- Rewards get a strictly increasing ``seq``. A snapshot records the last seq
  it includes; recovery loads the snapshot and replays later rewards in seq
  order (``rewards_after``).
- Decisions are written in batches by the decision writer (``log_decisions``),
  or with the rewards of a ``commit_rewards`` call that names them (a reward
  row is never durable before its decision row).
- The engine's counters (``core.types.COUNTER_NAMES``) are kept with what
  they count, in the same transaction: ``log_decisions`` and
  ``commit_rewards`` add the decision rows and the reward rows they insert
  (rows already stored are not counted again), and ``add_counters`` adds
  the outcomes that store no row (duplicate, late, unknown). So the counters
  survive any crash that the rows survive, and never count a row that a
  crash lost.
- Implementations are called from several threads and serialise access
  themselves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Decisions per ``prune_log`` call. A chunk holds the store's write lock
#: (SQLite) and a Feedback commit waits for it, so chunks stay small
#: (docs/performance.md, ``make bench`` section ``log``).
PRUNE_CHUNK = 100


@dataclass(frozen=True)
class ArmRow:
    experiment_id: str
    arm_id: str
    slot: int
    features: dict[str, Any]  # {"numeric": {...}, "categorical": [...]}
    active: bool


@dataclass(frozen=True)
class DecisionRow:
    event_id: str
    experiment_id: str
    created_at: float
    deadline: float
    model_version: int
    x: FloatArray
    arms: tuple[str, ...]  # displayed arms, ranked
    scores: tuple[float, ...]
    propensities: tuple[float, ...]
    candidates: tuple[str, ...] = ()  # eligible arms; () = every active arm
    slots: tuple[int, ...] = ()  # the shown arms' slots (set in Kafka mode's log)
    #: what ``propensities`` hold (``ExperimentConfig.propensity_kind``)
    propensity_kind: str = "first_slot"
    #: per_slot: P(the policy's first j + 1 arms are the shown ones), per j
    prefix_propensities: tuple[float, ...] = ()
    #: Kafka mode: the challengers' shadow ranking (``core.challengers.ShadowRecord``)
    shadow: Any = None


@dataclass(frozen=True)
class RewardRow:
    event_id: str
    arm_id: str
    experiment_id: str
    arm_slot: int
    x: FloatArray
    reward: float  # reward units
    reward_norm: float  # mapped to [0, 1], as the policy saw it
    source: str  # "feedback" or "default"
    ts: float
    seq: int | None = None
    #: how much the reward counted (its click model's weight, in [0, 1])
    weight: float = 1.0


@dataclass(frozen=True)
class PolicyChange:
    """A change of an experiment's policy set (``core.challengers``), with
    who made it (the admin token's name) and when."""

    experiment_id: str
    action: str  # "add", "remove", "promote" or "rollback"
    name: str  # the challenger added, removed or made champion
    settings: dict[str, Any]  # add: the challenger's policy settings
    actor: str
    at: float
    #: add: the last reward seq before the challenger (it learns from later ones)
    from_seq: int = 0
    seq: int = 0  # the store's order


#: The counter a stored reward row adds to, by its source.
REWARD_COUNTERS = {"feedback": "rewards_applied", "default": "rewards_defaulted"}


@dataclass
class Snapshot:
    experiment_id: str
    last_seq: int
    state: dict[str, np.ndarray]
    #: Counters as of the snapshot. The engine keeps its counters in the
    #: store (``Store.counters``) and reads these only in a store written
    #: before it kept them there (``recovery.load_experiment``).
    counters: dict[str, int] = field(default_factory=dict)
    created_at: float = 0.0


class Store(ABC):
    """Persistence of experiments, arms, decisions, rewards and snapshots."""

    # experiments and arms
    @abstractmethod
    def create_experiment(self, experiment_id: str, config: dict[str, Any], now: float) -> None: ...

    @abstractmethod
    def load_experiments(self) -> list[tuple[str, dict[str, Any], int]]:
        """(experiment_id, config, arm_changes) in creation order."""

    @abstractmethod
    def upsert_arms(self, rows: Sequence[ArmRow]) -> None:
        """Insert or update arms, and count one arm change per row."""

    @abstractmethod
    def load_arms(self, experiment_id: str) -> list[ArmRow]:
        """Arms of one experiment ordered by slot."""

    # decisions and rewards
    @abstractmethod
    def log_decisions(self, rows: Sequence[DecisionRow]) -> None:
        """Insert decisions atomically (a row whose event id is stored is
        skipped), adding the rows inserted to each experiment's
        ``decisions`` counter."""

    @abstractmethod
    def commit_rewards(
        self,
        rows: Sequence[RewardRow],
        close_events: Sequence[str] = (),
        decisions: Sequence[DecisionRow] = (),
    ) -> list[int | None]:
        """In one transaction: ``decisions`` as ``log_decisions`` stores
        them, then the rewards, then ``close_events`` marked closed; seq or
        None for each reward. The reward rows inserted are added to their
        experiment's ``rewards_applied`` (source ``feedback``) or
        ``rewards_defaulted`` (source ``default``) counter."""

    @abstractmethod
    def decision_status(self, event_id: str) -> tuple[str, bool] | None:
        """(experiment_id, closed) of a logged decision, or None if unknown."""

    @abstractmethod
    def reward_source(self, event_id: str, arm_id: str) -> str | None:
        """'feedback' or 'default' if (event, arm) has its reward, else None."""

    @abstractmethod
    def open_decisions(self) -> Iterator[tuple[DecisionRow, dict[str, float]]]:
        """Decisions not yet closed, with the arms that already have a
        reward and their rewards (reward units)."""

    @abstractmethod
    def rewards_after(self, experiment_id: str, seq: int) -> Iterator[RewardRow]:
        """Rewards of one experiment with seq > ``seq``, in seq order."""

    @abstractmethod
    def rewards(self, experiment_id: str | None = None) -> Iterator[RewardRow]:
        """Every committed reward (feedback and defaults), in commit order."""

    @abstractmethod
    def decisions(self, experiment_id: str | None = None) -> Iterator[DecisionRow]:
        """Every logged decision (for export and replay), in log order."""

    @abstractmethod
    def prune_log(self, before: float, limit: int = PRUNE_CHUNK) -> tuple[int, int]:
        """Delete decisions closed with a deadline before ``before``, together
        with their rewards; returns (decisions, rewards) deleted.

        At most ``limit`` decisions per call (oldest deadline first), so a
        call costs O(limit) and holds the store briefly: call again until it
        deletes nothing. A decision goes only with all its rewards, and only
        once its experiment's stored snapshot includes them (seq <=
        ``last_seq``: a restart does not replay them); until then it waits
        for a later call. Open decisions, experiments, arms and snapshots are
        never deleted. A Feedback for a deleted decision is then an unknown
        event (NOT_FOUND), not a duplicate: it is still not applied.
        """

    # counters
    @abstractmethod
    def add_counters(self, deltas: Mapping[tuple[str, str], int]) -> None:
        """Add ``deltas[(experiment_id, name)]`` to the stored counters, in one
        transaction."""

    @abstractmethod
    def counters(self, experiment_id: str | None = None) -> dict[tuple[str, str], int]:
        """Stored counters by (experiment_id, name): of one experiment, or of
        all (``None``); counters of no experiment are under ``""``."""

    # snapshots
    @abstractmethod
    def save_snapshot(self, snap: Snapshot) -> None: ...

    @abstractmethod
    def load_snapshot(self, experiment_id: str) -> Snapshot | None: ...

    def snapshot_versions(self) -> dict[str, int]:
        """``last_seq`` of every stored snapshot (cheap; for refresh polling)."""
        out = {}
        for exp_id, _, _ in self.load_experiments():
            snap = self.load_snapshot(exp_id)
            if snap is not None:
                out[exp_id] = snap.last_seq
        return out

    def record_policy_change(self, change: PolicyChange) -> int:
        """Store a change of an experiment's policy set (after the ones
        stored); its seq, increasing."""
        raise NotImplementedError(f"{type(self).__name__} keeps no policy changes")

    def policy_changes(self, experiment_id: str | None = None) -> list[PolicyChange]:
        """Stored policy changes (of one experiment, or all), in order."""
        return []

    def ping(self) -> None:
        """Raise StoreError if the store cannot be reached (health checks)."""
        self.load_experiments()

    def learner_counters(self, experiment_id: str | None = None) -> dict[tuple[str, str], int]:
        """Counters the learners committed, by (experiment, name); empty for a
        store no learner writes to."""
        return {}

    @abstractmethod
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    """A reward as Kafka mode logs it, before the learner joins it."""

    event_id: str
    arm_id: str
    reward: float
    timestamp: float


class EventLog(Protocol):
    """Kafka mode's decision and feedback log, as the engine uses it."""

    def publish_decision(self, row: DecisionRow) -> bool:
        """Queue a decision without waiting; False if it was dropped (the
        log's buffer is full)."""

    def publish_feedback(self, event: FeedbackEvent, timeout: float) -> bool:
        """Write a reward and wait until the log has it; False if it did not
        within ``timeout`` seconds."""

    def pending(self) -> int:
        """Records queued and not yet acknowledged."""

    def close(self) -> None:
        """Send what is queued, then stop."""
