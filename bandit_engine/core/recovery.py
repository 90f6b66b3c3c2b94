"""Rebuilding the engine's memory from its store.

Embedded mode: each experiment's posterior is its last snapshot plus the
rewards committed after it, replayed in commit order; the decisions still
open come back into the journals. Kafka mode: the learners own the join, and
a server only follows the snapshots they commit (``refresh``).

An experiment that cannot be loaded (its stored config fails validation or
is over the engine's ``Limits``, its snapshot or arms cannot be read) does
not stop the others: it is logged once at ERROR with the reason and kept
aside (``load_all``'s second result), and the engine answers its calls
FAILED_PRECONDITION naming the reason. Its rows stay as they are, so that a
server with other limits, or a fixed row, loads it again. A failing store
(``StoreError``: I/O, a lost connection) still fails the load as a whole.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import MutableMapping, Sequence
from typing import Any

import numpy as np

from bandit_engine._exceptions import StoreError
from bandit_engine.core.challenger_admin import replay_changes
from bandit_engine.core.config import ExperimentConfig, Limits
from bandit_engine.core.event_ids import decision_times
from bandit_engine.core.experiment import Experiment
from bandit_engine.core.journal import BLOCK_ROWS
from bandit_engine.core.ports import REWARD_COUNTERS, PolicyChange, RewardRow, Snapshot, Store
from bandit_engine.core.types import COUNTER_NAMES

log = logging.getLogger(__name__)

__all__ = ["load_all", "load_experiment", "load_open_decisions", "refresh", "seed_counters"]


def load_all(
    store: Store,
    limits: Limits,
    seed: int | None,
    *,
    replay: bool,
    journal_block_rows: int = BLOCK_ROWS,
) -> tuple[dict[str, Experiment], dict[str, str]]:
    """Every stored experiment that loads, and the reason of each one that
    does not (by experiment id)."""
    exps: dict[str, Experiment] = {}
    broken: dict[str, str] = {}
    for exp_id, cfg_dict, arm_changes in store.load_experiments():
        exp = _load_or_reason(
            store, exp_id, cfg_dict, arm_changes, limits, seed, replay, journal_block_rows, broken
        )
        if exp is not None:
            exps[exp_id] = exp
    return exps, broken


def _load_or_reason(
    store: Store,
    exp_id: str,
    cfg_dict: dict[str, Any],
    arm_changes: int,
    limits: Limits,
    seed: int | None,
    replay: bool,
    journal_block_rows: int,
    broken: MutableMapping[str, str],
) -> Experiment | None:
    """``load_experiment``, or None with the reason put in ``broken`` (and
    logged, the first time) if the experiment's rows cannot be loaded."""
    try:
        return load_experiment(
            store,
            exp_id,
            cfg_dict,
            arm_changes,
            limits,
            seed,
            replay=replay,
            journal_block_rows=journal_block_rows,
        )
    except StoreError:
        raise
    except Exception as exc:  # the rows, not the store: refuse this one only
        reason = f"{type(exc).__name__}: {exc}"
        if broken.get(exp_id) != reason:
            log.error("experiment %s not loaded and not served: %s", exp_id, reason)
        broken[exp_id] = reason
        return None


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
    """Config, arms, snapshot and (``replay``: embedded mode) the rewards after
    it. Raises before allocating the model if the config fails validation or
    the experiment is over ``limits``."""
    cfg = ExperimentConfig.from_dict(cfg_dict)
    if cfg.experiment_id != exp_id:
        raise ValueError(f"stored config names experiment {cfg.experiment_id!r}")
    arms = store.load_arms(exp_id)
    snap = store.load_snapshot(exp_id)
    n_snap = int(np.asarray(snap.state["pulls"]).shape[0]) if snap is not None else 0
    limits.check_experiment(cfg, max(len(arms), n_snap))
    exp = Experiment(cfg, limits, seed, journal_block_rows)
    replay_changes(exp, store.policy_changes(exp_id))
    if snap is not None:
        exp.load_state(snap.state)
        exp.last_seq = snap.last_seq
    exp.sync_arms(arms, arm_changes)
    rewards = list(store.rewards_after(exp_id, exp.last_seq)) if replay else []
    if replay:
        seed_counters(store, exp_id, snap, rewards)
    if rewards:
        exp.learn_batch(
            np.array([r.arm_slot for r in rewards], dtype=np.int64),
            np.stack([r.x for r in rewards]),
            np.array([r.reward_norm for r in rewards]),
            decision_times([r.event_id for r in rewards]),
            np.array([r.weight for r in rewards]),
            [r.seq or 0 for r in rewards],
        )
        exp.last_seq = rewards[-1].seq or exp.last_seq
    # the rewards applied: the pulls of the policy that saw them all (a
    # challenger added later, and promoted, saw fewer)
    exp.applied = max(int(p.state_dict()["pulls"].sum()) for p in exp.all_policies())
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
        default = float(owner.cfg.default_reward)  # type: ignore[arg-type]
        clicked = {owner.slots[a] for a, r in rewarded_ids.items() if r > default}
        owner.journal.load(dec, slots, rewarded, clicked & rewarded)
        n += 1
    return n


def refresh(
    store: Store,
    exps: MutableMapping[str, Experiment],
    lock: threading.RLock,
    limits: Limits,
    seed: int | None,
    broken: MutableMapping[str, str] | None = None,
) -> int:
    """Pick up experiments, arms and posteriors written by others (Kafka mode).

    Returns how many experiments changed. A posterior is reloaded only when
    its snapshot version moved, or a policy change (``core.challenger_admin``)
    was stored: changes are applied in their order, so that every server
    serves the champion the store names within one refresh. A new
    experiment that cannot be loaded is put in ``broken`` with its reason
    (and tried again on the next call).
    """
    versions = store.snapshot_versions()
    changed = 0
    broken = {} if broken is None else broken
    policy_changes: dict[str, list[PolicyChange]] = {}
    for ch in store.policy_changes():
        policy_changes.setdefault(ch.experiment_id, []).append(ch)
    for exp_id, cfg_dict, arm_changes in store.load_experiments():
        exp = exps.get(exp_id)
        if exp is None:
            new = _load_or_reason(
                store, exp_id, cfg_dict, arm_changes, limits, seed, False, BLOCK_ROWS, broken
            )
            if new is not None:
                with lock:
                    exps[exp_id] = new
                    broken.pop(exp_id, None)
                changed += 1
            continue
        v = versions.get(exp_id, 0)
        mine = policy_changes.get(exp_id, [])
        new_changes = bool(mine) and mine[-1].seq > exp.policies.last_change
        if v == exp.last_seq and arm_changes == exp.arm_changes and not new_changes:
            continue
        # after a policy change the snapshot is read again: it has the states by name
        snap = store.load_snapshot(exp_id) if v != exp.last_seq or new_changes else None
        rows = store.load_arms(exp_id)
        with exp.lock:
            replay_changes(exp, mine)  # a promotion switches the serving policy here
            if snap is not None:
                exp.load_state(snap.state)
                exp.last_seq = snap.last_seq
                exp.trim_arms()
            exp.sync_arms(rows, arm_changes)
            exp.applied = int(exp.policy.state_dict()["pulls"].sum())
        changed += 1
    return changed
