"""The engine: experiments, arms, decisions and rewards, over a ``Store``.

No transport here: the gRPC servicer converts messages and calls these
methods; the simulators and embedding applications call them directly.
Every method validates its input completely before it touches state, so a
bad request raises (``InvalidArgument``, ``NotFound``, ``ResourceExhausted``)
and changes nothing.

Two modes. Embedded (no ``event_log``): decisions are kept open in each
experiment's journal and stored in batches by a background writer
(``DecisionLog``); rewards are joined here (``RewardJoin``), committed to the
store and applied. A crash can lose the last ``flush_interval`` of
decisions, whose Feedback then answers NOT_FOUND; a Feedback for a decision
not stored yet stores it with the reward, so no reward outlives its decision.
Counters are kept by the store with what they count. Kafka mode (an
``EventLog``): decisions and rewards go to the log, learners join them and
commit posteriors to the store, and the engine follows those
(``recovery.refresh``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from bandit_engine._exceptions import (
    AlreadyExists,
    BanditError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from bandit_engine.core import recovery
from bandit_engine.core.challenger_admin import ChallengerAdmin
from bandit_engine.core.config import ExperimentConfig, Limits, check_id
from bandit_engine.core.decision_log import DecisionLog
from bandit_engine.core.event_ids import check_feedback_time, event_time, new_event_id
from bandit_engine.core.experiment import Experiment, clean_arms, state_checksum
from bandit_engine.core.journal import BLOCK_ROWS
from bandit_engine.core.maintenance import Maintenance
from bandit_engine.core.ports import (
    PRUNE_CHUNK,
    ArmRow,
    DecisionRow,
    EventLog,
    FeedbackEvent,
    Snapshot,
    Store,
)
from bandit_engine.core.rewards import RewardJoin
from bandit_engine.core.types import (
    COUNTER_NAMES,
    ArmInfo,
    Context,
    Decision,
    ExperimentInfo,
    FeedbackResult,
    RecommendItem,
)
from bandit_engine.policies import FloatArray

log = logging.getLogger(__name__)

__all__ = ["Engine"]


class Engine:
    """Experiments served from memory, persisted through a ``Store``."""

    def __init__(
        self,
        store: Store,
        *,
        seed: int | None = 0,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        checkpoint_interval: float = 10.0,
        flush_interval: float = 0.02,
        event_log: EventLog | None = None,
        refresh_interval: float = 0.5,
        feedback_timeout: float = 5.0,
        log_retention: float = 0.0,
        prune_interval: float = 60.0,
        journal_block_rows: int = BLOCK_ROWS,
    ) -> None:
        self.store, self._block_rows, self.seed = store, journal_block_rows, seed
        self.limits = lim = limits or Limits()
        self.clock = clock
        self.event_log = event_log
        self.feedback_timeout = feedback_timeout
        #: Decisions Kafka mode's log could not take (its buffer was full).
        self.decisions_dropped = 0
        self._exps: dict[str, Experiment] = {}
        self._lock = threading.RLock()
        self.decision_log = DecisionLog(store, lambda: list(self._exps.values()), flush_interval)
        self._join = RewardJoin(
            store, self._exps, self.decision_log, clock, lim.max_clock_skew_s, lim.sweep_chunk
        )
        self.maintenance = Maintenance(
            self,
            checkpoint_interval=checkpoint_interval,
            refresh_interval=refresh_interval,
            log_retention=log_retention,
            prune_interval=prune_interval,
        )
        self.challengers = ChallengerAdmin(self)  #: challengers, promotion, report
        loaded, self._broken = recovery.load_all(
            store, self.limits, seed, replay=self.embedded, journal_block_rows=journal_block_rows
        )
        self._exps.update(loaded)
        if self.embedded:  # the learners own the join state in Kafka mode
            recovery.load_open_decisions(store, self._exps)

    # ------------------------------------------------------------- lifecycle
    @property
    def embedded(self) -> bool:
        """True without an event log: rewards are joined in this process."""
        return self.event_log is None

    def start(self, tick: float = 0.25) -> None:
        """Start the decision writer and the maintenance loop (windows,
        checkpoints, log retention; in Kafka mode, following the learners)."""
        if self.embedded:
            self.decision_log.start()
        self.maintenance.start(tick)

    def close(self) -> None:
        """Stop the loops, store or send what is pending, close the store."""
        self.maintenance.stop()
        if self.event_log is not None:
            self.event_log.close()
        else:
            self.decision_log.close()
            self.checkpoint()
        self.store.close()

    def flush(self) -> int:
        """Store every decision made so far (embedded mode); how many were stored."""
        return self.decision_log.flush() if self.embedded else 0

    # ----------------------------------------------------------- experiments
    def _exp(self, experiment_id: str) -> Experiment:
        exp = self._exps.get(experiment_id)
        if exp is None:
            check_id(experiment_id, "experiment_id")
            if experiment_id in self._broken:
                raise FailedPrecondition(
                    f"experiment {experiment_id!r} is stored but could not be loaded: "
                    f"{self._broken[experiment_id]}"
                )
            raise NotFound(f"experiment {experiment_id!r} not found")
        return exp

    def create_experiment(self, cfg: ExperimentConfig) -> ExperimentInfo:
        with self._lock:
            if cfg.experiment_id in self._exps or cfg.experiment_id in self._broken:
                raise AlreadyExists(f"experiment {cfg.experiment_id!r} already exists")
            self.limits.check_experiment(cfg)
            exp = Experiment(cfg, self.limits, self.seed, self._block_rows)
            self.store.create_experiment(cfg.experiment_id, cfg.to_dict(), self.clock())
            self._exps[cfg.experiment_id] = exp
        log.info("created experiment %s (%s, dim=%d)", cfg.experiment_id, cfg.policy, cfg.dim)
        return self._info(exp, self._counters(exp))

    def get_experiment(self, experiment_id: str) -> ExperimentInfo:
        exp = self._exp(experiment_id)
        return self._info(exp, self._counters(exp))

    def list_experiments(self) -> list[ExperimentInfo]:
        exps = list(self._exps.values())
        counts = self._counters(None)
        return [self._info(e, counts) for e in exps]

    def experiments(self) -> Iterable[str]:
        return list(self._exps)

    def _info(self, exp: Experiment, counts: Mapping[tuple[str, str], int]) -> ExperimentInfo:
        if self.embedded:
            counters = {n: counts.get((exp.experiment_id, n), 0) for n in COUNTER_NAMES}
            counters["rewards_unknown"] = counts.get(("", "rewards_unknown"), 0)
        else:
            counters = self._learner_counters(exp.experiment_id)
        return exp.info(counters)

    def _counters(self, only: Experiment | None) -> dict[tuple[str, str], int]:
        """Embedded mode: the store's counters (of ``only`` and of no
        experiment), once the decisions made so far are stored, so that
        ``decisions`` counts them too; if the store refuses them, the
        counters stay those of the rows stored."""
        if not self.embedded:
            return {}
        try:
            self.decision_log.flush(only)
        except Exception:
            log.warning("decisions not stored before reading counters", exc_info=True)
        if only is None:
            return self.store.counters()
        return {**self.store.counters(only.experiment_id), **self.store.counters("")}

    def _learner_counters(self, experiment_id: str) -> dict[str, int]:
        """Kafka mode: the learners' exact counts from the store (rewards are theirs)."""
        counts = {name: n for (_, name), n in self.store.learner_counters(experiment_id).items()}
        out = dict.fromkeys(COUNTER_NAMES, 0)
        out.update({k: v for k, v in counts.items() if k in out})
        out["rewards_duplicate"] = counts.get("dead_duplicate", 0)
        out["rewards_late"] = counts.get("dead_late", 0)
        return out

    # ------------------------------------------------------------------ arms
    def add_arms(
        self, experiment_id: str, arms: Sequence[tuple[str, Mapping[str, Any] | None]]
    ) -> list[ArmInfo]:
        """Add (or reactivate) arms; ``arms`` is ``[(arm_id, features), ...]``,
        ``features`` ``{"numeric": {...}, "categorical": [...]}`` or None."""
        exp = self._exp(experiment_id)
        if not arms:
            raise InvalidArgument("no arms given")
        if len(arms) > self.limits.max_arms_per_call:
            raise ResourceExhausted(
                f"{len(arms)} arms in one call; the limit is "
                f"max_arms_per_call={self.limits.max_arms_per_call}"
            )
        clean = clean_arms(arms)
        with exp.lock:
            new = [a for a, _ in clean if a not in exp.slots]
            self.limits.check_experiment(exp.cfg, len(exp.arm_ids) + len(new))
            rows = []
            next_slot = len(exp.arm_ids)
            for arm_id, f in clean:
                slot = exp.slots.get(arm_id)
                if slot is None:
                    rows.append(ArmRow(experiment_id, arm_id, next_slot, f, True))
                    next_slot += 1
                elif not exp.active[slot]:
                    rows.append(ArmRow(experiment_id, arm_id, slot, exp.features[slot], True))
            self.store.upsert_arms(rows)
            for row in rows:
                if row.arm_id in exp.slots:
                    exp.set_active(row.slot, True)
                else:
                    exp.add_arm(row.arm_id, row.features)
            exp.arm_changes += len(rows)
            return [exp.arm_info(exp.slots[a], None) for a, _ in clean]

    def retire_arm(self, experiment_id: str, arm_id: str) -> ArmInfo:
        exp = self._exp(experiment_id)
        check_id(arm_id, "arm_id")
        with exp.lock:
            slot = exp.slot(arm_id)
            if exp.active[slot]:
                self.store.upsert_arms(
                    [ArmRow(experiment_id, arm_id, slot, exp.features[slot], False)]
                )
                exp.set_active(slot, False)
                exp.arm_changes += 1
            return exp.arm_info(slot, None)

    def arm_info(
        self, experiment_id: str, arm_id: str, context: Context | FloatArray | None = None
    ) -> ArmInfo:
        """An arm's posterior summary, at ``context`` (else the intercept alone)."""
        exp = self._exp(experiment_id)
        check_id(arm_id, "arm_id")
        x = exp.vector(context) if context is not None else None
        with exp.lock:
            return exp.arm_info(exp.slot(arm_id), x)

    def list_arms(self, experiment_id: str, include_retired: bool = False) -> list[ArmInfo]:
        exp = self._exp(experiment_id)
        with exp.lock:
            return [
                exp.arm_info(s, None)
                for s in range(len(exp.arm_ids))
                if include_retired or exp.active[s]
            ]

    # -------------------------------------------------------------- decisions
    def recommend(
        self,
        experiment_id: str,
        context: Context | FloatArray | None = None,
        candidates: Sequence[str] = (),
        k: int = 1,
    ) -> Decision:
        """Rank ``candidates`` (default: every active arm) for ``context`` and
        log the decision; the top ``k`` come back with their propensities
        (the experiment's ``propensity_kind``)."""
        exp = self._exp(experiment_id)
        lim = self.limits
        if len(candidates) > lim.max_candidates:
            raise ResourceExhausted(
                f"{len(candidates)} candidates; the limit is {lim.max_candidates}"
            )
        if type(k) is not int or not 1 <= k <= lim.max_k:
            raise InvalidArgument(f"k={k!r} must be between 1 and {lim.max_k}")
        x = exp.vector(context)
        now = float(self.clock())
        # the id carries the decision's time (engine clock): ``decision_time``
        event_id = new_event_id(now)
        embedded = self.event_log is None
        with exp.lock:
            slots = exp.candidate_slots(candidates)
            if k > slots.shape[0]:
                raise InvalidArgument(
                    f"k={k} must be between 1 and {slots.shape[0]} (the candidate count)"
                )
            j = exp.journal
            if embedded:  # may refuse: before any draw
                j.reserve(k, self.decision_log.max_buffer)
            kind = exp.cfg.propensity_kind
            shown, scores, props, prefix = exp.decide(slots, x, k)
            version = exp.version
            deadline = now + exp.cfg.reward_window_s
            arm_ids = exp.names(shown)
            shadow = exp.shadow(event_id, slots, x, shown, props, embedded)  # sampled
            if embedded:
                j.put(x, shown, scores, props, now, deadline, version, prefix)
                j.commit(event_id, tuple(candidates))
                return Decision(event_id, arm_ids, scores, props, version, kind, prefix)
        row = DecisionRow(
            event_id,
            experiment_id,
            now,
            deadline,
            version,
            x,
            arm_ids,
            tuple(scores.tolist()),
            tuple(props.tolist()),
            tuple(candidates),
            tuple(shown.tolist()),
            kind,
            () if prefix is None else tuple(prefix.tolist()),
            shadow,
        )
        assert self.event_log is not None
        if not self.event_log.publish_decision(row):
            # Serving goes on when the log is down: the decision is counted
            # as dropped, and its rewards will be dead-lettered.
            with self._lock:
                self.decisions_dropped += 1
        return Decision(event_id, arm_ids, scores, props, version, kind, prefix)

    def recommend_batch(self, items: Sequence[RecommendItem]) -> list[Decision | BanditError]:
        """Many ``recommend`` calls in one: each item is validated, answered
        and logged as its own decision, with its own event id. An item that
        is refused gets its error in its place; the others are served. More
        than ``Limits.max_batch`` items: ``ResourceExhausted``, nothing served."""
        if len(items) > self.limits.max_batch:
            raise ResourceExhausted(
                f"{len(items)} requests in one batch; the limit is {self.limits.max_batch}"
            )
        out: list[Decision | BanditError] = []
        for item in items:
            try:
                out.append(
                    self.recommend(item.experiment_id, item.context, item.candidates, item.k)
                )
            except BanditError as exc:
                out.append(exc)
        return out

    # --------------------------------------------------------------- rewards
    def feedback(
        self, event_id: str, arm_id: str, reward: float, timestamp: float | None = None
    ) -> FeedbackResult:
        """Join a reward to its decision and apply it once (embedded mode);
        in Kafka mode, write it to the feedback log and answer ``queued``."""
        if not isinstance(event_id, str) or not event_id:
            raise InvalidArgument(f"event_id must be a non-empty string, got {event_id!r}")
        check_id(arm_id, "arm_id")
        if not isinstance(reward, (int, float)) or not math.isfinite(reward):
            raise InvalidArgument(f"reward={reward!r} must be a finite number")
        check_feedback_time(event_id, timestamp, None, 0.0)  # a positive finite number
        if self.event_log is None:
            return self._join.feedback(event_id, arm_id, float(reward), timestamp)
        # The learner judges the reward; only the time the event id carries
        # can be checked here.
        check_feedback_time(event_id, timestamp, event_time(event_id), self.limits.max_clock_skew_s)
        # Acknowledged only once the log has it, so an OK Feedback is never
        # lost. Joining (unknown event, duplicate, late, range) happens in the
        # learner, which dead-letters what it cannot apply.
        event = FeedbackEvent(event_id, arm_id, float(reward), timestamp or self.clock())
        if not self.event_log.publish_feedback(event, self.feedback_timeout):
            raise Unavailable(
                f"feedback log unavailable: {event_id!r} not written within "
                f"{self.feedback_timeout:g}s; retry (Feedback is idempotent)"
            )
        return FeedbackResult("queued", 0)

    def prune_log(
        self, now: float | None = None, *, budget: float = 0.5, limit: int = PRUNE_CHUNK
    ) -> bool:
        """Delete closed decisions past ``log_retention`` with their rewards
        (``Maintenance.prune_log``); True if rows may remain."""
        return self.maintenance.prune_log(now, budget=budget, limit=limit)

    @property
    def log_retention(self) -> float:
        return self.maintenance.log_retention

    @property
    def pruned_decisions(self) -> int:
        return self.maintenance.pruned_decisions

    @property
    def pruned_rewards(self) -> int:
        return self.maintenance.pruned_rewards

    @property
    def unknown_rewards(self) -> int:
        """Feedbacks answered NOT_FOUND because no decision has their event
        id (embedded mode; stored, so it survives restarts)."""
        if not self.embedded:
            return 0
        return self.store.counters("").get(("", "rewards_unknown"), 0)

    def sweep(self, now: float | None = None) -> int:
        """Close expired reward windows with default rewards; how many were applied."""
        return self._join.sweep(self.clock() if now is None else now)

    def pending_count(self) -> int:
        """Decisions waiting for rewards (embedded mode)."""
        return sum(len(exp.journal) for exp in list(self._exps.values()))

    # ------------------------------------------------------------- snapshots
    def checkpoint(self) -> int:
        """Snapshot every experiment whose state changed; return how many."""
        n = 0
        for exp in list(self._exps.values()):
            with exp.lock:
                if exp.version == exp.snapshot_version:
                    continue
                snap = Snapshot(
                    exp.experiment_id,
                    exp.last_seq,
                    exp.state_dict(),  # the challengers' states with the champion's
                    {},  # the counters are the store's (Store.counters)
                    self.clock(),
                )
                version = exp.version
            self.store.save_snapshot(snap)
            exp.snapshot_version = version
            n += 1
        return n

    def posterior_state(self, experiment_id: str) -> dict[str, np.ndarray]:
        """A copy of the experiment's posterior state of record (the
        policy's sufficient statistics, as snapshots store them)."""
        exp = self._exp(experiment_id)
        with exp.lock:
            return exp.policy.state_dict()

    def refresh(self) -> int:
        """Pick up experiments, arms and posteriors written by others (Kafka
        mode); how many experiments changed."""
        return recovery.refresh(
            self.store, self._exps, self._lock, self.limits, self.seed, self._broken
        )

    def state_checksum(self) -> str:
        """SHA-256 over every experiment's config, arms, posterior and open
        decisions. Counters are metrics, not state, and are left out."""
        return state_checksum([self._exps[e] for e in sorted(self._exps)])
