"""An engine's own log as a ``BanditLog``: decisions joined with their rewards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from bandit_engine import InvalidArgument
from bandit_engine.store import ArmRow, DecisionRow, RewardRow, Store
from simulators.logs.bandit_log import BanditLog
from simulators.logs.jsonl import from_records

__all__ = ["LogSource", "from_store", "open_store"]


class LogSource(Protocol):
    """The part of a ``Store`` that ``from_store`` reads: any store, or a
    read-only source such as ``simulators.kafka_log.KafkaLogSource``."""

    def load_experiments(self) -> list[tuple[str, dict[str, Any], int]]: ...

    def load_arms(self, experiment_id: str) -> list[ArmRow]: ...

    def decisions(self, experiment_id: str | None = None) -> Iterator[DecisionRow]: ...

    def rewards(self, experiment_id: str | None = None) -> Iterator[RewardRow]: ...

    def close(self) -> None: ...


def open_store(path: str | Path) -> Store:
    """The engine's store: ``mysql://...`` (MySQL/MariaDB), a state dir
    (``DIR/state.db``) or a SQLite file."""
    if str(path).startswith("mysql://"):
        from bandit_engine.store import MySQLStore

        return MySQLStore(str(path))
    from bandit_engine.store import SQLiteStore

    p = Path(path)
    db = p / "state.db" if p.is_dir() else p
    if not db.exists():
        raise InvalidArgument(f"no engine state at {str(path)!r} (looked for {str(db)!r})")
    return SQLiteStore(db)


def from_store(store: LogSource, experiment_id: str, *, source: str = "") -> BanditLog:
    """An experiment's decisions joined with every committed reward, per shown arm."""
    exps = {e: (cfg, changes) for e, cfg, changes in store.load_experiments()}
    if experiment_id not in exps:
        raise InvalidArgument(
            f"experiment {experiment_id!r} not in the store; it has {sorted(exps) or 'none'}"
        )
    arms = store.load_arms(experiment_id)
    by_key: dict[tuple[str, str], Any] = {}
    for row in store.rewards(experiment_id):
        by_key[(row.event_id, row.arm_id)] = row
    recs: list[dict[str, Any]] = [
        {
            "type": "header",
            "experiment_id": experiment_id,
            "config": exps[experiment_id][0],
            "arms": [
                {"arm_id": a.arm_id, "features": a.features, "active": a.active} for a in arms
            ],
            "source": source,
        }
    ]
    kind = exps[experiment_id][0].get("propensity_kind", "first_slot")
    for dec in store.decisions(experiment_id):
        rewards: list[dict[str, Any] | None] = []
        for a in dec.arms:
            rw = by_key.get((dec.event_id, a))
            rewards.append(
                None
                if rw is None
                else {
                    "reward": rw.reward,
                    "reward_norm": rw.reward_norm,
                    "source": rw.source,
                    "ts": rw.ts,
                    "seq": rw.seq,
                    "weight": rw.weight,
                }
            )
        recs.append(
            {
                "type": "decision",
                "event_id": dec.event_id,
                "experiment_id": dec.experiment_id,
                "created_at": dec.created_at,
                "deadline": dec.deadline,
                "model_version": dec.model_version,
                "x": dec.x,
                "candidates": list(dec.candidates) or None,
                "arms": list(dec.arms),
                "scores": list(dec.scores),
                "propensities": list(dec.propensities),
                "propensity_kind": "per_slot" if dec.propensity_kind == "per_slot" else kind,
                "prefix_propensities": list(dec.prefix_propensities) or None,
                "rewards": rewards,
            }
        )
    return from_records(recs)
