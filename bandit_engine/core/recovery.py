"""Rebuilding the engine's memory from its store.

Embedded mode: each experiment's posterior is its last snapshot plus the
rewards committed after it, replayed in commit order; the decisions still
open come back into the journals. Kafka mode: the learners own the join, and
a server only follows the snapshots they commit (``refresh``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import MutableMapping, Sequence
from typing import Any

import numpy as np

from bandit_engine.core.config import ExperimentConfig, Limits
from bandit_engine.core.experiment import Experiment
from bandit_engine.core.journal import BLOCK_ROWS
from bandit_engine.core.ports import REWARD_COUNTERS, RewardRow, Snapshot, Store
from bandit_engine.core.types import COUNTER_NAMES

log = logging.getLogger(__name__)

__all__ = ["load_experiment", "load_open_decisions", "refresh", "seed_counters"]


def load_experiment(
    store: Store,
    exp_id: str,
    cfg_dict: dict[str, Any],
    arm_changes: int,
    limits: Limits,
    seed: int | None,
    *,
    replay: bool,
    journal_block_rows: int = BLOCK_ROWS,
) -> Experiment:
    """Config, arms, snapshot and (``replay``: embedded mode) the rewards after it."""
    exp = Experiment(ExperimentConfig.from_dict(cfg_dict), limits, seed, journal_block_rows)
    snap = store.load_snapshot(exp_id)
    if snap is not None:
        exp.policy.load_state_dict(snap.state)
        exp.last_seq = snap.last_seq
    exp.sync_arms(store.load_arms(exp_id), arm_changes)
    rewards = list(store.rewards_after(exp_id, exp.last_seq)) if replay else []
    if replay:
        seed_counters(store, exp_id, snap, rewards)
    if rewards:
        exp.policy.update_batch(
            np.array([r.arm_slot for r in rewards], dtype=np.int64),
            np.stack([r.x for r in rewards]),
            np.array([r.reward_norm for r in rewards]),
        )
        exp.last_seq = rewards[-1].seq or exp.last_seq
    exp.applied = int(exp.policy.state_dict()["pulls"].sum())
    exp.snapshot_version = exp.version if not rewards else -1
    log.info(
        "loaded experiment %s: %d arms, snapshot seq %d, %d rewards replayed",
        exp_id,
        len(exp.arm_ids),
        snap.last_seq if snap else 0,
        len(rewards),
    )
    return exp


def seed_counters(
    store: Store, exp_id: str, snap: Snapshot | None, replayed: Sequence[RewardRow]
) -> None:
    """Store the counters of an experiment a store without counters kept.

    A store written before it kept the engine's counters has them in the
    snapshot only: those, plus the reward rows stored after the snapshot
    (``replayed``), become the stored counters. Decisions stored after the
    snapshot are not recounted (a clean stop snapshots them). An experiment
    with stored counters is left as it is."""
    if store.counters(exp_id):
        return
    counts = {(exp_id, k): int(v) for k, v in (snap.counters if snap else {}).items()}
    for r in replayed:
        key = (exp_id, REWARD_COUNTERS[r.source])
        counts[key] = counts.get(key, 0) + 1
    counts = {k: n for k, n in counts.items() if n > 0 and k[1] in COUNTER_NAMES}
    if counts:
        store.add_counters(counts)
        log.info("experiment %s: counters seeded from its snapshot: %s", exp_id, counts)


def load_open_decisions(store: Store, exps: MutableMapping[str, Experiment]) -> int:
    """Put the decisions the store holds open back into their journals."""
    n = 0
    for dec, rewarded_ids in store.open_decisions():
        owner = exps.get(dec.experiment_id)
        if owner is None:
            continue
        slots = np.array([owner.slots[a] for a in dec.arms], dtype=np.int64)
        rewarded = {owner.slots[a] for a in rewarded_ids if a in owner.slots}
        owner.journal.load(dec, slots, rewarded)
        n += 1
    return n


def refresh(
    store: Store,
    exps: MutableMapping[str, Experiment],
    lock: threading.RLock,
    limits: Limits,
    seed: int | None,
) -> int:
    """Pick up experiments, arms and posteriors written by others (Kafka mode).

    Returns how many experiments changed. A posterior is reloaded only when
    its snapshot version moved.
    """
    versions = store.snapshot_versions()
    changed = 0
    for exp_id, cfg_dict, arm_changes in store.load_experiments():
        exp = exps.get(exp_id)
        if exp is None:
            with lock:
                exps[exp_id] = load_experiment(
                    store, exp_id, cfg_dict, arm_changes, limits, seed, replay=False
                )
            changed += 1
            continue
        v = versions.get(exp_id, 0)
        if v == exp.last_seq and arm_changes == exp.arm_changes:
            continue
        snap = store.load_snapshot(exp_id) if v != exp.last_seq else None
        rows = store.load_arms(exp_id)
        with exp.lock:
            if snap is not None:
                exp.policy.load_state_dict(snap.state)
                exp.last_seq = snap.last_seq
                exp.trim_arms()
            exp.sync_arms(rows, arm_changes)
            exp.applied = int(exp.policy.state_dict()["pulls"].sum())
        changed += 1
    return changed
