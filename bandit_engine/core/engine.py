"""The engine: experiments, arms, decisions, the reward join, persistence.

No gRPC here: the servicer translates messages and calls these methods, the
simulators call them directly. Every method validates its input completely
before it touches state, so a bad request raises (``InvalidArgument``,
``NotFound``, ``ResourceExhausted``) and changes nothing.

Reward join (embedded mode): a decision is pending for its experiment's
reward window. Each displayed arm gets exactly one reward: the first Feedback
for (event, arm) inside the window, or the experiment's default reward when
the window closes (impressions without clicks teach too). Retries are
DUPLICATE, rewards after the window are LATE; both are counted, not applied.

Durability: a reward row is committed to the store before it is applied in
memory, and the store refuses a second row for the same (event, arm); the
in-memory posterior is the last snapshot plus the rewards after it, replayed
in commit order on start. Decisions are logged in batches by a background
writer (``DecisionLog``); a crash can lose the last ``flush_interval`` of
decisions, whose Feedback then answers NOT_FOUND.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bandit_engine._exceptions import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from bandit_engine._proto.bandit.v1 import log_pb2
from bandit_engine.core import fastpath
from bandit_engine.core.config import ExperimentConfig, Limits, check_id
from bandit_engine.core.journal import Journal
from bandit_engine.features import ArmFeatures, FeatureSpace
from bandit_engine.policies import MAX_ABS_FEATURE, Policy
from bandit_engine.store import ArmRow, RewardRow, Snapshot, Store
from bandit_engine.store.base import PRUNE_CHUNK
from bandit_engine.stream import LogProducer

log = logging.getLogger(__name__)

__all__ = [
    "ArmInfo",
    "Context",
    "Decision",
    "Engine",
    "ExperimentInfo",
    "FeedbackResult",
]

COUNTER_NAMES = (
    "decisions",
    "rewards_applied",
    "rewards_defaulted",
    "rewards_duplicate",
    "rewards_late",
)


@dataclass(frozen=True)
class Context:
    """Features of a request, before hashing."""

    dense: Sequence[float] = ()
    numeric: Mapping[str, float] = field(default_factory=dict)
    categorical: Sequence[str] = ()


@dataclass(frozen=True)
class Decision:
    event_id: str
    arm_ids: tuple[str, ...]
    scores: tuple[float, ...]
    propensities: tuple[float, ...]  # P(arm ranked first | context)
    model_version: int


@dataclass(frozen=True)
class FeedbackResult:
    outcome: str  # "applied", "duplicate", "late"; "queued" in Kafka mode
    model_version: int


@dataclass(frozen=True)
class ArmInfo:
    arm_id: str
    active: bool
    mean: float
    std: float
    pulls: int
    reward_sum: float
    features: dict[str, Any]


@dataclass(frozen=True)
class ExperimentInfo:
    config: ExperimentConfig
    active_arms: int
    total_arms: int
    model_version: int
    counters: dict[str, int]


class _Experiment:
    """Runtime state of one experiment; every mutation holds ``lock``."""

    def __init__(self, cfg: ExperimentConfig, limits: Limits, seed: int | None) -> None:
        self.cfg = cfg
        self.space: FeatureSpace = cfg.feature_space(limits.max_features)
        self.policy: Policy = cfg.make_policy()
        self.arm_ids: list[str] = []
        self.slots: dict[str, int] = {}
        self.active: list[bool] = []
        self.features: list[dict[str, Any]] = []
        self.arm_changes = 0
        self.applied = 0
        self.last_seq = 0
        self.snapshot_version = -1
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)
        self.lock = threading.RLock()
        #: open decisions and the decisions not yet stored (embedded mode)
        self.journal = Journal(cfg.experiment_id, self.space.dim)
        key = int.from_bytes(hashlib.blake2b(cfg.experiment_id.encode(), digest_size=8).digest())
        self.rng = np.random.default_rng(None if seed is None else [seed, key])
        self._all_active: np.ndarray | None = None
        self._arm_table: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def version(self) -> int:
        return self.applied + self.arm_changes

    def active_slots(self) -> np.ndarray:
        if self._all_active is None:
            self._all_active = np.flatnonzero(np.asarray(self.active, dtype=bool)).astype(np.int64)
        return self._all_active

    def add_arm(self, arm_id: str, features: dict[str, Any], active: bool = True) -> int:
        af = ArmFeatures.build(arm_id, features.get("numeric"), features.get("categorical"))
        slot = self.policy.add_arm(af)
        self.arm_ids.append(arm_id)
        self.slots[arm_id] = slot
        self.active.append(active)
        self.features.append(features)
        self._all_active = None
        self._arm_table = None
        return slot

    def arm_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Every arm id's UTF-8 bytes end to end, in slot order, and the
        offset where each starts (one more: the end), for ``fastpath``."""
        table = self._arm_table
        if table is None or table[1].shape[0] != len(self.arm_ids) + 1:
            enc = [a.encode() for a in self.arm_ids]
            off = np.zeros(len(enc) + 1, dtype=np.int64)
            off[1:] = np.cumsum([len(e) for e in enc])
            table = (np.frombuffer(b"".join(enc), dtype=np.uint8), off)
            self._arm_table = table
        return table

    def set_active(self, slot: int, active: bool) -> None:
        self.active[slot] = active
        self._all_active = None


class _EventIds:
    """Time-ordered 128-bit event ids as 32 hex digits: the wall clock in
    milliseconds (12 digits, 48 bits), then 80 random bits (20 digits), the
    layout of a UUIDv7 (RFC 9562) without its version bits.

    Time-ordered, because the decision log is indexed by event id: random
    ids land all over the index, and every transaction rewrites a page per
    decision (27 us a row at 240,000 rows in SQLite here, and growing with
    the table), where ids in time order append to its last pages (13 us).
    80 random bits still make an id unguessable, and unique without
    coordination between processes; two ids of one millisecond are in random
    order, and a clock that steps back only costs locality.

    ``os.urandom`` is a system call that releases the GIL, and on a busy
    server every release hands the GIL to another thread and waits to get it
    back; so the random bytes are read 256 ids at a time. A forked child drops
    the parent's unused bytes (it must not hand out the same ids).
    """

    _BATCH = 256
    _RANDOM_DIGITS = 20

    def __init__(self) -> None:
        self._drop()
        os.register_at_fork(after_in_child=self._drop)

    def _drop(self) -> None:
        self._lock = threading.Lock()
        self._hex = ""
        self._pos = 0
        self._ms = -1
        self._prefix = ""

    def __call__(self) -> str:
        n = self._RANDOM_DIGITS
        ms = time.time_ns() // 1_000_000
        with self._lock:
            if ms != self._ms:
                self._ms = ms
                self._prefix = f"{ms & 0xFFFF_FFFF_FFFF:012x}"
            pos = self._pos
            if pos >= len(self._hex):
                self._hex = os.urandom(n // 2 * self._BATCH).hex()
                pos = 0
            self._pos = pos + n
            return self._prefix + self._hex[pos : pos + n]


_new_event_id = _EventIds()


class DecisionLog:
    """Embedded mode's decision writer: stores what each experiment's journal
    holds unwritten, in batches.

    Recommend never waits on I/O: it fills a journal row, and a writer thread
    stores the rows every ``interval`` seconds. Past ``max_buffer`` unwritten
    rows in an experiment, Recommend is refused (ResourceExhausted) rather
    than the buffer growing without bound.
    """

    def __init__(
        self,
        store: Store,
        experiments: Callable[[], list[_Experiment]],
        interval: float = 0.02,
        max_buffer: int = 100_000,
    ) -> None:
        self._store = store
        self._experiments = experiments
        self._interval = interval
        self.max_buffer = max_buffer
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
            self._thread.start()

    def flush(self, only: _Experiment | None = None) -> int:
        """Store every decision made so far (of experiment ``only``, if
        given); how many were stored. An experiment whose rows the store
        refuses does not hold up the others: the first error is raised once
        every experiment has been tried, and its rows are tried again next
        time."""
        with self._write_lock:
            n = 0
            error: Exception | None = None
            for exp in self._experiments() if only is None else [only]:
                batch = exp.journal.unwritten(exp.arm_ids)
                if batch is None:
                    continue
                try:
                    self._store.log_decisions(batch.rows)
                except Exception as exc:
                    error = error or exc
                    continue
                exp.journal.mark_written(batch.end)
                n += len(batch.rows)
            if error is not None:
                raise error
            return n

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception:  # keep logging; the rows are retried next tick
                log.exception("decision log flush failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()


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
        producer: LogProducer | None = None,
        refresh_interval: float = 0.5,
        feedback_timeout: float = 5.0,
        log_retention: float = 0.0,
        prune_interval: float = 60.0,
    ) -> None:
        if not (math.isfinite(log_retention) and log_retention >= 0):
            raise InvalidArgument(f"log_retention={log_retention!r} must be >= 0 seconds (0: keep)")
        if not (math.isfinite(prune_interval) and prune_interval > 0):
            raise InvalidArgument(f"prune_interval={prune_interval!r} must be > 0 seconds")
        self.store = store
        #: Seconds a closed decision and its rewards stay in the log past the
        #: decision's deadline (embedded and MySQL-log modes); 0 keeps them.
        self.log_retention = log_retention
        self.prune_interval = prune_interval
        #: Rows deleted by ``prune_log`` since the start: decisions, rewards.
        self.pruned_decisions = 0
        self.pruned_rewards = 0
        self.producer = producer
        self.refresh_interval = refresh_interval
        self.feedback_timeout = feedback_timeout
        self.decisions_dropped = 0
        self.seed = seed
        self.limits = limits or Limits()
        self.clock = clock
        self.checkpoint_interval = checkpoint_interval
        self._exps: dict[str, _Experiment] = {}
        self._lock = threading.RLock()
        self.unknown_rewards = 0
        self.decision_log = DecisionLog(store, lambda: list(self._exps.values()), flush_interval)
        self._stop = threading.Event()
        self._maint: threading.Thread | None = None
        self._load()

    # ------------------------------------------------------------- lifecycle
    def start(self, tick: float = 0.25) -> None:
        """Start the background decision writer and the window/checkpoint loop."""
        self.decision_log.start()
        if self._maint is None:
            self._maint = threading.Thread(
                target=self._maintenance, args=(tick,), name="engine-maintenance", daemon=True
            )
            self._maint.start()

    def _maintenance(self, tick: float) -> None:
        last_ckpt = last_prune = time.monotonic()
        pruning = False  # a pruning round that ran out of its time budget
        if self.producer is not None:
            tick = min(tick, self.refresh_interval)
        while not self._stop.wait(tick):
            try:
                if self.producer is not None:
                    self.refresh()
                    continue
                self.sweep()
                if time.monotonic() - last_ckpt >= self.checkpoint_interval:
                    self.checkpoint()
                    last_ckpt = time.monotonic()
                if self.log_retention > 0 and (
                    pruning or time.monotonic() - last_prune >= self.prune_interval
                ):
                    pruning = self.prune_log(budget=0.5)
                    last_prune = time.monotonic()
            except Exception:
                log.exception("maintenance tick failed")

    def close(self) -> None:
        """Flush decisions, checkpoint every experiment, close the store."""
        self._stop.set()
        if self._maint is not None:
            self._maint.join()
        if self.producer is not None:
            self.producer.close()
        else:
            self.decision_log.close()
            self.checkpoint()
        self.store.close()

    def _load(self) -> None:
        for exp_id, cfg_dict, arm_changes in self.store.load_experiments():
            self._exps[exp_id] = self._load_experiment(exp_id, cfg_dict, arm_changes)
        if self.producer is not None:
            return  # the learner owns the join state in Kafka mode
        for dec, rewarded_ids in self.store.open_decisions():
            owner = self._exps.get(dec.experiment_id)
            if owner is None:
                continue
            slots = np.array([owner.slots[a] for a in dec.arms], dtype=np.int64)
            rewarded = {owner.slots[a] for a in rewarded_ids if a in owner.slots}
            owner.journal.load(dec, slots, rewarded)

    def _load_experiment(
        self, exp_id: str, cfg_dict: dict[str, Any], arm_changes: int
    ) -> _Experiment:
        """Config, arms, snapshot and (embedded mode) the rewards after it."""
        exp = _Experiment(ExperimentConfig.from_dict(cfg_dict), self.limits, self.seed)
        snap = self.store.load_snapshot(exp_id)
        if snap is not None:
            exp.policy.load_state_dict(snap.state)
            exp.last_seq = snap.last_seq
            exp.counters.update({k: int(v) for k, v in snap.counters.items()})
        self._sync_arms(exp, arm_changes)
        replay = []
        if self.producer is None:
            replay = list(self.store.rewards_after(exp_id, exp.last_seq))
        if replay:
            exp.policy.update_batch(
                np.array([r.arm_slot for r in replay], dtype=np.int64),
                np.stack([r.x for r in replay]),
                np.array([r.reward_norm for r in replay]),
            )
            exp.last_seq = replay[-1].seq or exp.last_seq
        exp.applied = int(exp.policy.state_dict()["pulls"].sum())
        exp.snapshot_version = exp.version if not replay else -1
        log.info(
            "loaded experiment %s: %d arms, snapshot seq %d, %d rewards replayed",
            exp_id,
            len(exp.arm_ids),
            snap.last_seq if snap else 0,
            len(replay),
        )
        return exp

    def _sync_arms(self, exp: _Experiment, arm_changes: int) -> None:
        """Bring the arm table (ids, flags, policy slots) up to the store's."""
        for row in self.store.load_arms(exp.cfg.experiment_id):
            if row.slot < len(exp.arm_ids):
                exp.set_active(row.slot, row.active)
            elif row.slot < exp.policy.n_arms:  # in the snapshot already
                exp.arm_ids.append(row.arm_id)
                exp.slots[row.arm_id] = row.slot
                exp.active.append(row.active)
                exp.features.append(row.features)
            else:
                exp.add_arm(row.arm_id, row.features, row.active)
        exp._all_active = None
        exp.arm_changes = arm_changes

    def refresh(self) -> int:
        """Pick up experiments, arms and posteriors written by others (Kafka mode).

        Returns how many experiments changed. A posterior is reloaded only
        when its snapshot version moved.
        """
        versions = self.store.snapshot_versions()
        changed = 0
        for exp_id, cfg_dict, arm_changes in self.store.load_experiments():
            exp = self._exps.get(exp_id)
            if exp is None:
                with self._lock:
                    self._exps[exp_id] = self._load_experiment(exp_id, cfg_dict, arm_changes)
                changed += 1
                continue
            v = versions.get(exp_id, 0)
            if v == exp.last_seq and arm_changes == exp.arm_changes:
                continue
            snap = self.store.load_snapshot(exp_id) if v != exp.last_seq else None
            with exp.lock:
                if snap is not None:
                    exp.policy.load_state_dict(snap.state)
                    exp.last_seq = snap.last_seq
                    exp.arm_ids = exp.arm_ids[: exp.policy.n_arms]
                    exp.active = exp.active[: exp.policy.n_arms]
                    exp.features = exp.features[: exp.policy.n_arms]
                    exp.slots = {a: i for i, a in enumerate(exp.arm_ids)}
                self._sync_arms(exp, arm_changes)
                exp.applied = int(exp.policy.state_dict()["pulls"].sum())
            changed += 1
        return changed

    # ----------------------------------------------------------- experiments
    def _exp(self, experiment_id: str) -> _Experiment:
        exp = self._exps.get(experiment_id)
        if exp is None:
            check_id(experiment_id, "experiment_id")
            raise NotFound(f"experiment {experiment_id!r} not found")
        return exp

    def create_experiment(self, cfg: ExperimentConfig) -> ExperimentInfo:
        with self._lock:
            if cfg.experiment_id in self._exps:
                raise AlreadyExists(f"experiment {cfg.experiment_id!r} already exists")
            exp = _Experiment(cfg, self.limits, self.seed)
            self.store.create_experiment(cfg.experiment_id, cfg.to_dict(), self.clock())
            self._exps[cfg.experiment_id] = exp
        log.info("created experiment %s (%s, dim=%d)", cfg.experiment_id, cfg.policy, cfg.dim)
        return self._info(exp)

    def get_experiment(self, experiment_id: str) -> ExperimentInfo:
        return self._info(self._exp(experiment_id))

    def list_experiments(self) -> list[ExperimentInfo]:
        return [self._info(e) for e in list(self._exps.values())]

    def _info(self, exp: _Experiment) -> ExperimentInfo:
        counters = self._learner_counters(exp.cfg.experiment_id)
        with exp.lock:
            if counters is None:
                counters = dict(exp.counters)
            return ExperimentInfo(exp.cfg, sum(exp.active), len(exp.active), exp.version, counters)

    def _learner_counters(self, experiment_id: str) -> dict[str, int] | None:
        """Kafka mode: the learners' exact counts from MySQL (rewards are theirs)."""
        read = getattr(self.store, "learner_counters", None)
        if self.producer is None or read is None:
            return None
        counts = {name: n for (_, name), n in read(experiment_id).items()}
        out = dict.fromkeys(COUNTER_NAMES, 0)
        out.update({k: v for k, v in counts.items() if k in out})
        out["rewards_duplicate"] = counts.get("dead_duplicate", 0)
        out["rewards_late"] = counts.get("dead_late", 0)
        return out

    # ------------------------------------------------------------------ arms
    def add_arms(
        self, experiment_id: str, arms: Sequence[tuple[str, Mapping[str, Any] | None]]
    ) -> list[ArmInfo]:
        """Add (or reactivate) arms; ``arms`` is ``[(arm_id, features), ...]``.

        ``features`` is ``{"numeric": {...}, "categorical": [...]}`` or None.
        """
        exp = self._exp(experiment_id)
        if not arms:
            raise InvalidArgument("no arms given")
        seen: set[str] = set()
        clean: list[tuple[str, dict[str, Any]]] = []
        for arm_id, feats in arms:
            check_id(arm_id, "arm_id")
            if arm_id in seen:
                raise InvalidArgument(f"arm_id {arm_id!r} given twice")
            seen.add(arm_id)
            f = {
                "numeric": {
                    str(k): float(v) for k, v in dict((feats or {}).get("numeric") or {}).items()
                },
                "categorical": [str(c) for c in (feats or {}).get("categorical") or []],
            }
            ArmFeatures.build(arm_id, f["numeric"], f["categorical"])  # type: ignore[arg-type]
            clean.append((arm_id, f))
        with exp.lock:
            new = [a for a, _ in clean if a not in exp.slots]
            if len(exp.arm_ids) + len(new) > self.limits.max_arms:
                raise ResourceExhausted(
                    f"experiment {experiment_id!r} would have {len(exp.arm_ids) + len(new)} arms; "
                    f"the limit is {self.limits.max_arms}"
                )
            rows = []
            for i, (arm_id, f) in enumerate(clean):
                slot = exp.slots.get(arm_id)
                if slot is None:
                    slot = len(exp.arm_ids) + sum(1 for a, _ in clean[:i] if a not in exp.slots)
                    rows.append(ArmRow(experiment_id, arm_id, slot, f, True))
                elif not exp.active[slot]:
                    rows.append(ArmRow(experiment_id, arm_id, slot, exp.features[slot], True))
            self.store.upsert_arms(rows)
            for row in rows:
                if row.arm_id in exp.slots:
                    exp.set_active(row.slot, True)
                else:
                    exp.add_arm(row.arm_id, row.features)
            exp.arm_changes += len(rows)
        return [self.arm_info(experiment_id, a) for a, _ in clean]

    def retire_arm(self, experiment_id: str, arm_id: str) -> ArmInfo:
        exp = self._exp(experiment_id)
        check_id(arm_id, "arm_id")
        with exp.lock:
            slot = self._slot(exp, arm_id)
            if exp.active[slot]:
                self.store.upsert_arms(
                    [ArmRow(experiment_id, arm_id, slot, exp.features[slot], False)]
                )
                exp.set_active(slot, False)
                exp.arm_changes += 1
        return self.arm_info(experiment_id, arm_id)

    def _slot(self, exp: _Experiment, arm_id: str) -> int:
        slot = exp.slots.get(arm_id)
        if slot is None:
            raise NotFound(f"arm {arm_id!r} not found in experiment {exp.cfg.experiment_id!r}")
        return slot

    def arm_info(self, experiment_id: str, arm_id: str, context: Context | None = None) -> ArmInfo:
        exp = self._exp(experiment_id)
        check_id(arm_id, "arm_id")
        x = self._vector(exp, context) if context is not None else None
        with exp.lock:
            slot = self._slot(exp, arm_id)
            mean, std = exp.policy.posterior(slot, x)
            span = 1.0
            if exp.cfg.policy != "logistic_ts":
                span = exp.cfg.reward_max - exp.cfg.reward_min
                mean = exp.cfg.reward_min + span * mean
            return ArmInfo(
                arm_id,
                exp.active[slot],
                mean,
                std * span,
                exp.policy.pulls(slot),
                exp.cfg.reward_min * exp.policy.pulls(slot) + span * exp.policy.reward_sum(slot),
                exp.features[slot],
            )

    def list_arms(self, experiment_id: str, include_retired: bool = False) -> list[ArmInfo]:
        exp = self._exp(experiment_id)
        ids = [a for a, s in exp.slots.items() if include_retired or exp.active[s]]
        return [self.arm_info(experiment_id, a) for a in ids]

    # -------------------------------------------------------------- decisions
    def _vector(self, exp: _Experiment, ctx: Context) -> np.ndarray:
        return exp.space.vector(ctx.dense, ctx.numeric, ctx.categorical)

    def recommend(
        self,
        experiment_id: str,
        context: Context | None = None,
        candidates: Sequence[str] = (),
        k: int = 1,
    ) -> Decision:
        """Rank ``candidates`` (default: all active arms) and log the decision."""
        exp = self._exp(experiment_id)
        lim = self.limits
        if len(candidates) > lim.max_candidates:
            raise ResourceExhausted(
                f"{len(candidates)} candidates; the limit is {lim.max_candidates}"
            )
        if not isinstance(k, int) or k < 1 or k > lim.max_k:
            raise InvalidArgument(f"k={k!r} must be between 1 and {lim.max_k}")
        x = self._vector(exp, context or Context())
        event_id = _new_event_id()
        with exp.lock:
            if candidates:
                slots = np.empty(len(candidates), dtype=np.int64)
                lookup = exp.slots
                for i, arm_id in enumerate(candidates):
                    s = lookup.get(arm_id)
                    if s is None:
                        check_id(arm_id, "candidate arm_id")
                        raise NotFound(
                            f"candidate arm {arm_id!r} not found in experiment {experiment_id!r}"
                        )
                    if not exp.active[s]:
                        raise InvalidArgument(f"candidate arm {arm_id!r} is retired")
                    slots[i] = s
                if len(set(candidates)) != len(candidates):
                    dup = next(a for i, a in enumerate(candidates) if a in candidates[:i])
                    raise InvalidArgument(f"candidate arm {dup!r} given more than once")
            else:
                slots = exp.active_slots()
                if slots.shape[0] == 0:
                    raise InvalidArgument(
                        f"empty candidate set: experiment {experiment_id!r} has no active arms"
                    )
            n = slots.shape[0]
            if k > n:
                raise InvalidArgument(f"k={k} must be between 1 and {n} (the candidate count)")
            if self.producer is None:  # may refuse: before any draw
                exp.journal.reserve(k, self.decision_log.max_buffer)
            draws = exp.cfg.propensity_draws
            ranking, counts = exp.policy.decide(slots, x, k, draws, exp.rng)
            version = exp.version
            exp.counters["decisions"] += 1
            order = ranking.order
            shown = slots[order]
            arm_ids = tuple([exp.arm_ids[s] for s in shown.tolist()])
            # The served draw is one more draw of the same posterior: counting
            # it keeps the served top arm's propensity above zero.
            hits = counts[order].astype(np.float64)
            hits[0] += 1.0
            prop_arr = hits / (draws + 1)
            props = tuple(prop_arr.tolist())
            scores = tuple(ranking.scores.tolist())
            now = self.clock()
            deadline = now + exp.cfg.reward_window_s
            if self.producer is None:
                j = exp.journal
                j.put(x, shown, ranking.scores, prop_arr, float(now), float(deadline), version)
                j.commit(event_id, tuple(candidates))
                return Decision(event_id, arm_ids, scores, props, version)
        rec = log_pb2.DecisionRecord(
            event_id=event_id,
            experiment_id=experiment_id,
            created_at=now,
            deadline=deadline,
            model_version=version,
            x_f64=x.astype("<f8", copy=False).tobytes(),
            arms=arm_ids,
            slots=shown.tolist(),
            scores=scores,
            propensities=props,
            candidates=candidates,
        )
        self._publish_decision(event_id, rec.SerializeToString())
        return Decision(event_id, arm_ids, scores, props, version)

    def _publish_decision(self, event_id: str, record: bytes) -> None:
        """Kafka mode: queue a serialized ``DecisionRecord`` for the decisions topic."""
        assert self.producer is not None
        topic = self.producer.settings.decisions_topic
        if not self.producer.publish(topic, event_id.encode(), record):
            # Serving goes on when the log is down: the decision is counted
            # as dropped, and its rewards will be dead-lettered.
            with self._lock:
                self.decisions_dropped += 1

    def recommend_wire(self, raw: bytes) -> bytes | None:
        """``recommend`` from a serialized ``RecommendRequest`` to a serialized
        ``RecommendResponse``, for the common request (an experiment id, a
        dense context, ``k``; a policy with ``decide_unchecked``), read and
        written by ``fastpath``'s kernels (in Kafka mode the decision record
        too). None, having changed
        nothing, for any other request, or one that ``recommend`` would
        refuse: the caller then parses it and calls ``recommend``, which
        answers it, errors included. Otherwise the same checks, draws, state
        changes and answer as ``recommend``."""
        buf = np.frombuffer(raw, dtype=np.uint8)
        ok, exp_s, exp_e, dense_s, dense_n, k = fastpath.scan_recommend(buf)
        if not ok:
            return None
        exp = self._exps.get(raw[exp_s:exp_e].decode())
        if exp is None:
            return None
        policy = exp.policy
        draws = exp.cfg.propensity_draws
        space = exp.space
        k = k or 1
        if (
            draws > policy.fast_draws_max
            or k > self.limits.max_k
            or dense_n > space.max_features
            or (dense_n and dense_n != space.dense_dim)
        ):
            return None
        x, good = fastpath.dense_context(
            buf, dense_s, dense_n, space.dim, space.dense_start, space.intercept, MAX_ABS_FEATURE
        )
        if not good:
            return None
        event_id = _new_event_id()
        embedded = self.producer is None
        with exp.lock:
            slots = exp.active_slots()
            if k > slots.shape[0]:  # no active arm, or k above their count
                return None
            if embedded:
                j = exp.journal
                if j.tail - j.written >= self.decision_log.max_buffer:
                    return None  # the message path refuses it, naming the reason
                j.reserve(k, self.decision_log.max_buffer)
            order, scores, counts = policy.decide_unchecked(slots, x, k, draws, exp.rng)
            version = exp.version
            exp.counters["decisions"] += 1
            arm_bytes, arm_off = exp.arm_table()
            eid = np.frombuffer(event_id.encode(), dtype=np.uint8)
            now = float(self.clock())  # a float to the kernel, whatever the clock gives
            deadline = now + exp.cfg.reward_window_s
            body, shown, props = fastpath.write_response(
                eid,
                slots,
                order,
                scores,
                counts,
                draws,
                arm_bytes,
                arm_off,
                version,
            )
            if embedded:
                j.put(x, shown, scores, props, now, deadline, version)
                j.commit(event_id)
                return body.tobytes()
        record = fastpath.write_decision(
            eid,
            buf,
            exp_s,
            exp_e,
            now,
            deadline,
            version,
            arm_bytes,
            arm_off,
            shown,
            scores,
            props,
            x,
        )
        self._publish_decision(event_id, record.tobytes())
        return body.tobytes()

    # --------------------------------------------------------------- rewards
    def feedback(
        self, event_id: str, arm_id: str, reward: float, timestamp: float | None = None
    ) -> FeedbackResult:
        """Join a reward to its decision and apply it once."""
        if not isinstance(event_id, str) or not event_id:
            raise InvalidArgument(f"event_id must be a non-empty string, got {event_id!r}")
        check_id(arm_id, "arm_id")
        if not isinstance(reward, (int, float)) or not math.isfinite(reward):
            raise InvalidArgument(f"reward={reward!r} must be a finite number")
        if timestamp is not None and not math.isfinite(timestamp):
            raise InvalidArgument(f"timestamp={timestamp!r} must be finite")
        if self.producer is not None:
            return self._feedback_to_log(event_id, arm_id, float(reward), timestamp)
        found = self._open(event_id)
        if found is None:
            return self._feedback_closed(event_id, arm_id, reward)
        exp, n = found
        cfg = exp.cfg
        if not cfg.reward_min <= reward <= cfg.reward_max:
            raise InvalidArgument(
                f"reward={reward!r} outside the experiment's range "
                f"[{cfg.reward_min!r}, {cfg.reward_max!r}]"
            )
        with exp.lock:
            j = exp.journal
            if j.index.get(event_id) != n:  # its window closed meanwhile
                return self._feedback_closed(event_id, arm_id, reward)
            slot = exp.slots.get(arm_id, -1)
            p = -1 if slot < 0 else j.position(n, slot)
            if p < 0:
                shown = ", ".join(exp.arm_ids[s] for s in j.shown(n).tolist())
                raise InvalidArgument(
                    f"arm {arm_id!r} was not shown in event {event_id!r} (shown: {shown})"
                )
            if j.is_rewarded(n, p):
                exp.counters["rewards_duplicate"] += 1
                return FeedbackResult("duplicate", exp.version)
            now = self.clock()
            if max(now, timestamp or now) > j.deadline(n):
                exp.counters["rewards_late"] += 1
                return FeedbackResult("late", exp.version)
            x = j.x(n)
            row = RewardRow(
                event_id,
                arm_id,
                cfg.experiment_id,
                slot,
                x,
                float(reward),
                cfg.normalise_reward(float(reward)),
                "feedback",
                timestamp or now,
            )
            close = j.closes_with_one_more(n)
            if close:
                self.decision_log.flush(exp)  # the row to close must be written
            (seq,) = self.store.commit_rewards([row], [event_id] if close else [])
            if seq is None:  # the store knew it already: applied before a restart
                j.set_rewarded(n, p)
                exp.counters["rewards_duplicate"] += 1
                return FeedbackResult("duplicate", exp.version)
            exp.policy.update(slot, x, row.reward_norm)
            exp.last_seq = seq
            exp.applied += 1
            exp.counters["rewards_applied"] += 1
            j.set_rewarded(n, p)
            if close:
                j.close(n)
            return FeedbackResult("applied", exp.version)

    def _open(self, event_id: str) -> tuple[_Experiment, int] | None:
        """The experiment and journal row of an open decision (embedded mode)."""
        for exp in list(self._exps.values()):
            n = exp.journal.index.get(event_id)
            if n is not None:
                return exp, n
        return None

    def _feedback_to_log(
        self, event_id: str, arm_id: str, reward: float, timestamp: float | None
    ) -> FeedbackResult:
        """Kafka mode: write the reward to the feedback log; the learner joins it.

        Acknowledged only once the broker has it, so an OK Feedback is never
        lost. Joining (unknown event, duplicate, late, range) happens in the
        learner, which dead-letters what it cannot apply.
        """
        assert self.producer is not None
        rec = log_pb2.FeedbackRecord(
            event_id=event_id, arm_id=arm_id, reward=reward, timestamp=timestamp or self.clock()
        )
        topic = self.producer.settings.feedback_topic
        ok = self.producer.publish_and_wait(
            topic, event_id.encode(), rec.SerializeToString(), self.feedback_timeout
        )
        if not ok:
            raise Unavailable(
                f"feedback log unavailable: {event_id!r} not written within "
                f"{self.feedback_timeout:g}s; retry (Feedback is idempotent)"
            )
        return FeedbackResult("queued", 0)

    def _feedback_closed(self, event_id: str, arm_id: str, reward: float) -> FeedbackResult:
        """Feedback for an event no longer pending: duplicate, late or unknown."""
        self.decision_log.flush()
        status = self.store.decision_status(event_id)
        exp = self._exps.get(status[0]) if status is not None else None
        if status is None or exp is None:
            with self._lock:
                self.unknown_rewards += 1
            raise NotFound(f"event_id {event_id!r} not found (no such decision)")
        cfg = exp.cfg
        if not cfg.reward_min <= reward <= cfg.reward_max:
            raise InvalidArgument(
                f"reward={reward!r} outside the experiment's range "
                f"[{cfg.reward_min!r}, {cfg.reward_max!r}]"
            )
        # A second Feedback is a duplicate; one for an arm that got the
        # default reward when the window closed is late.
        source = self.store.reward_source(event_id, arm_id)
        outcome = "duplicate" if source == "feedback" else "late"
        with exp.lock:
            exp.counters[f"rewards_{outcome}"] += 1
            return FeedbackResult(outcome, exp.version)

    def sweep(self, now: float | None = None) -> int:
        """Close expired windows: default rewards for unrewarded shown arms.

        Returns how many were applied. An experiment whose store refuses
        (its decisions or rewards) does not hold up the others: the first
        error is raised once every experiment has been swept."""
        now = self.clock() if now is None else now
        total = 0
        error: Exception | None = None
        for exp in list(self._exps.values()):
            try:
                total += self._sweep(exp, now)
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error
        return total

    def _sweep(self, exp: _Experiment, now: float) -> int:
        with exp.lock:
            j = exp.journal
            j.release()  # the blocks of closed, stored decisions
            if not j.due(now):
                return 0
            expired = j.expired(now)
            if not expired:
                return 0
            # the rows to close must be written; no decision of this
            # experiment can be added meanwhile (its lock is held)
            self.decision_log.flush(exp)
            cfg = exp.cfg
            default = float(cfg.default_reward)  # type: ignore[arg-type]
            norm = cfg.normalise_reward(default)
            rows = []
            events = []
            for n in expired:
                ev = j.event_id(n)
                events.append(ev)
                x = j.x(n)
                deadline = j.deadline(n)
                for p, s in enumerate(j.shown(n).tolist()):
                    if not j.is_rewarded(n, p):
                        rows.append(
                            RewardRow(
                                ev,
                                exp.arm_ids[s],
                                cfg.experiment_id,
                                s,
                                x,
                                default,
                                norm,
                                "default",
                                deadline,
                            )
                        )
            seqs = self.store.commit_rewards(rows, events)
            for n in expired:
                j.close(n)
            applied = [(r, q) for r, q in zip(rows, seqs, strict=True) if q is not None]
            if applied:
                exp.policy.update_batch(
                    np.array([r.arm_slot for r, _ in applied], dtype=np.int64),
                    np.stack([r.x for r, _ in applied]),
                    np.array([r.reward_norm for r, _ in applied]),
                )
                exp.last_seq = max(q for _, q in applied if q is not None)
                exp.applied += len(applied)
                exp.counters["rewards_defaulted"] += len(applied)
                return len(applied)
            return 0

    # ------------------------------------------------------------- snapshots
    def checkpoint(self) -> int:
        """Snapshot every experiment whose state changed; return how many."""
        n = 0
        for exp in list(self._exps.values()):
            with exp.lock:
                if exp.version == exp.snapshot_version:
                    continue
                snap = Snapshot(
                    exp.cfg.experiment_id,
                    exp.last_seq,
                    exp.policy.state_dict(),
                    dict(exp.counters),
                    self.clock(),
                )
                version = exp.version
            self.store.save_snapshot(snap)
            exp.snapshot_version = version
            n += 1
        return n

    def prune_log(
        self, now: float | None = None, *, budget: float = 0.5, limit: int = PRUNE_CHUNK
    ) -> bool:
        """Delete decisions closed more than ``log_retention`` seconds past their
        deadline, with their rewards (``Store.prune_log``), ``limit`` at a time
        with a pause between chunks so that the decision writer and Feedback
        commits get the store in between. Stops after ``budget`` seconds;
        returns True if rows may remain (the maintenance loop then goes on at
        its next tick). Not in Kafka mode, where the log is in Kafka."""
        if self.log_retention <= 0 or self.producer is not None:
            return False
        before = (self.clock() if now is None else now) - self.log_retention
        t_end = time.monotonic() + budget
        decisions = rewards = 0
        more = True
        while more and not self._stop.is_set():
            d, r = self.store.prune_log(before, limit)
            decisions += d
            rewards += r
            more = d > 0 or r > 0
            if time.monotonic() >= t_end:
                break
            if more:
                time.sleep(0.005)
        with self._lock:
            self.pruned_decisions += decisions
            self.pruned_rewards += rewards
        if decisions or rewards:
            log.info(
                "log retention: deleted %d decisions and %d rewards closed before %.0f",
                decisions,
                rewards,
                before,
            )
        return more

    # ----------------------------------------------------------------- misc
    def state_checksum(self) -> str:
        """SHA-256 over every experiment's config, arms, posterior and pending set.

        Counters are metrics, not state, and are left out.
        """
        h = hashlib.sha256()
        for exp_id in sorted(self._exps):
            exp = self._exps[exp_id]
            with exp.lock:
                h.update(repr(sorted(exp.cfg.to_dict().items())).encode())
                h.update(repr((exp.arm_ids, exp.active, exp.features, exp.version)).encode())
                for key, arr in sorted(exp.policy.state_dict().items()):
                    h.update(key.encode())
                    h.update(np.ascontiguousarray(arr).tobytes())
        pending = sorted(
            item for exp in list(self._exps.values()) for item in self._open_items(exp)
        )
        h.update(repr(pending).encode())
        return h.hexdigest()

    @staticmethod
    def _open_items(exp: _Experiment) -> list[tuple[str, tuple[int, ...]]]:
        with exp.lock:
            return exp.journal.open_items()

    def pending_count(self) -> int:
        """Decisions waiting for rewards (embedded mode)."""
        return sum(len(exp.journal) for exp in list(self._exps.values()))

    def experiments(self) -> Iterable[str]:
        return list(self._exps)
