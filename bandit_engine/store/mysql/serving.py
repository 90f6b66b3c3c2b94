"""The MySQL store's side for servers: experiments, arms, the decision and
reward logs, snapshots (the engine's ``Store``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from bandit_engine.store._codec import (
    DECISION_COLS,
    POLICY_CHANGE_COLS,
    REWARD_COLS,
    config_from_json,
    decision_from_row,
    decision_params,
    decode_state,
    encode_vector,
    policy_change_from_row,
    policy_change_params,
    prune_log_rows,
    reward_from_row,
    snapshot_params,
)
from bandit_engine.store.base import (
    PRUNE_CHUNK,
    REWARD_COUNTERS,
    ArmRow,
    DecisionRow,
    PolicyChange,
    RewardRow,
    Snapshot,
)
from bandit_engine.store.mysql.connection import MySQLConnection, fetch_all

__all__ = ["ServingMethods"]


class ServingMethods(MySQLConnection):
    """Experiments, arms, decisions, rewards and snapshots in MySQL."""

    def create_experiment(self, experiment_id: str, config: dict[str, Any], now: float) -> None:
        self._run(
            lambda c: c.execute(
                "INSERT INTO experiments (experiment_id, config, created_at) VALUES (%s, %s, %s)",
                (experiment_id, json.dumps(config, sort_keys=True), now),
            )
        )

    def load_experiments(self) -> list[tuple[str, dict[str, Any], int]]:
        rows = self._run(
            lambda c: fetch_all(
                c, "SELECT experiment_id, config, arm_changes FROM experiments ORDER BY ord"
            )
        )
        return [(r[0], config_from_json(r[1]), int(r[2])) for r in rows]

    def upsert_arms(self, rows: Sequence[ArmRow]) -> None:
        def op(c: Any) -> None:
            for r in rows:
                c.execute(
                    "INSERT INTO arms (experiment_id, arm_id, slot, features, active) "
                    "VALUES (%s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE active = VALUES(active)",
                    (r.experiment_id, r.arm_id, r.slot, json.dumps(r.features), int(r.active)),
                )
                c.execute(
                    "UPDATE experiments SET arm_changes = arm_changes + 1 WHERE experiment_id = %s",
                    (r.experiment_id,),
                )

        self._run(op)

    def load_arms(self, experiment_id: str) -> list[ArmRow]:
        rows = self._run(
            lambda c: fetch_all(
                c,
                "SELECT arm_id, slot, features, active FROM arms WHERE experiment_id = %s "
                "ORDER BY slot",
                (experiment_id,),
            )
        )
        return [ArmRow(experiment_id, r[0], int(r[1]), json.loads(r[2]), bool(r[3])) for r in rows]

    # ----------------------------------------------------- decisions, rewards
    def log_decisions(self, rows: Sequence[DecisionRow]) -> None:
        args = _decision_args(rows)
        self._run(lambda c: _insert_decisions(c, args))

    def commit_rewards(
        self,
        rows: Sequence[RewardRow],
        close_events: Sequence[str] = (),
        decisions: Sequence[DecisionRow] = (),
    ) -> list[int | None]:
        write_id = uuid.uuid4().hex
        args = _decision_args(decisions)

        def op(c: Any) -> list[int | None]:
            _insert_decisions(c, args)
            seqs: list[int | None] = []
            counts: dict[tuple[str, str], int] = {}
            for r in rows:
                n = c.execute(
                    "INSERT INTO rewards (event_id, arm_id, experiment_id, arm_slot, x, reward, "
                    "reward_norm, source, ts, write_id, weight) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON DUPLICATE KEY UPDATE seq = seq",
                    (
                        r.event_id,
                        r.arm_id,
                        r.experiment_id,
                        r.arm_slot,
                        encode_vector(r.x),
                        r.reward,
                        r.reward_norm,
                        r.source,
                        r.ts,
                        write_id,
                        r.weight,
                    ),
                )
                if n == 1:
                    seqs.append(int(c.lastrowid))
                    key = (r.experiment_id, REWARD_COUNTERS[r.source])
                    counts[key] = counts.get(key, 0) + 1
                else:
                    # Ours from an attempt whose COMMIT was lost with the link?
                    # (then it was counted in that transaction too)
                    c.execute(
                        "SELECT seq, write_id FROM rewards WHERE event_id = %s AND arm_id = %s",
                        (r.event_id, r.arm_id),
                    )
                    seq, wid = c.fetchone()
                    seqs.append(int(seq) if wid == write_id else None)
            for ev in close_events:
                c.execute("UPDATE decisions SET closed = 1 WHERE event_id = %s", (ev,))
            _add_counters(c, counts)
            return seqs

        return self._run(op)

    def decision_status(self, event_id: str) -> tuple[str, bool] | None:
        rows = self._run(
            lambda c: fetch_all(
                c, "SELECT experiment_id, closed FROM decisions WHERE event_id = %s", (event_id,)
            )
        )
        return (rows[0][0], bool(rows[0][1])) if rows else None

    def reward_source(self, event_id: str, arm_id: str) -> str | None:
        rows = self._run(
            lambda c: fetch_all(
                c,
                "SELECT source FROM rewards WHERE event_id = %s AND arm_id = %s",
                (event_id, arm_id),
            )
        )
        return str(rows[0][0]) if rows else None

    def open_decisions(self) -> Iterator[tuple[DecisionRow, dict[str, float]]]:
        def op(c: Any) -> tuple[list[Any], list[Any]]:
            rows = fetch_all(
                c, f"SELECT {DECISION_COLS} FROM decisions WHERE closed = 0 ORDER BY seq"
            )
            done = fetch_all(
                c,
                "SELECT r.event_id, r.arm_id, r.reward FROM rewards r JOIN decisions d "
                "ON r.event_id = d.event_id WHERE d.closed = 0",
            )
            return rows, done

        rows, done = self._run(op)
        rewarded: dict[str, dict[str, float]] = {}
        for ev, arm, reward in done:
            rewarded.setdefault(ev, {})[arm] = float(reward)
        for r in rows:
            yield decision_from_row(r), rewarded.get(r[0], {})

    def rewards_after(self, experiment_id: str, seq: int) -> Iterator[RewardRow]:
        rows = self._run(
            lambda c: fetch_all(
                c,
                f"SELECT {REWARD_COLS} FROM rewards WHERE experiment_id = %s AND seq > %s "
                "ORDER BY seq",
                (experiment_id, seq),
            )
        )
        return (reward_from_row(r) for r in rows)

    def rewards(self, experiment_id: str | None = None) -> Iterator[RewardRow]:
        if experiment_id is not None:
            return self.rewards_after(experiment_id, 0)
        rows = self._run(lambda c: fetch_all(c, f"SELECT {REWARD_COLS} FROM rewards ORDER BY seq"))
        return (reward_from_row(r) for r in rows)

    def decisions(self, experiment_id: str | None = None) -> Iterator[DecisionRow]:
        args: tuple[Any, ...]
        if experiment_id is None:
            sql, args = f"SELECT {DECISION_COLS} FROM decisions ORDER BY seq", ()
        else:
            sql = f"SELECT {DECISION_COLS} FROM decisions WHERE experiment_id = %s ORDER BY seq"
            args = (experiment_id,)
        rows = self._run(lambda c: fetch_all(c, sql, args))
        return (decision_from_row(r) for r in rows)

    # --------------------------------------------------------------- counters
    def add_counters(self, deltas: Mapping[tuple[str, str], int]) -> None:
        # No retry: a COMMIT lost with the link may have counted them already.
        self._run(lambda c: _add_counters(c, deltas), retry=False)

    def counters(self, experiment_id: str | None = None) -> dict[tuple[str, str], int]:
        sql = "SELECT experiment_id, name, n FROM engine_counters"
        args: tuple[Any, ...] = ()
        if experiment_id is not None:
            sql, args = sql + " WHERE experiment_id = %s", (experiment_id,)
        rows = self._run(lambda c: fetch_all(c, sql, args))
        return {(r[0], r[1]): int(r[2]) for r in rows}

    # --------------------------------------------------------- policy changes
    def record_policy_change(self, change: PolicyChange) -> int:
        def op(c: Any) -> int:
            c.execute(
                "INSERT INTO policy_changes (experiment_id, action, name, settings, actor, at, "
                "from_seq) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                policy_change_params(change),
            )
            return int(c.lastrowid)

        # No retry: a COMMIT lost with the link may have stored it already.
        return self._run(op, retry=False)

    def policy_changes(self, experiment_id: str | None = None) -> list[PolicyChange]:
        sql = f"SELECT {POLICY_CHANGE_COLS} FROM policy_changes"
        args: tuple[Any, ...] = ()
        if experiment_id is not None:
            sql, args = sql + " WHERE experiment_id = %s", (experiment_id,)
        rows = self._run(lambda c: fetch_all(c, sql + " ORDER BY seq", args))
        return [policy_change_from_row(r) for r in rows]

    # -------------------------------------------------------------- snapshots
    def save_snapshot(self, snap: Snapshot) -> None:
        params = snapshot_params(snap)
        self._run(
            lambda c: c.execute(
                "INSERT INTO snapshots (experiment_id, last_seq, counters, state, created_at) "
                "VALUES (%s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE last_seq = VALUES(last_seq), "
                "counters = VALUES(counters), state = VALUES(state), "
                "created_at = VALUES(created_at)",
                params,
            )
        )

    def load_snapshot(self, experiment_id: str) -> Snapshot | None:
        rows = self._run(
            lambda c: fetch_all(
                c,
                "SELECT last_seq, counters, state, created_at FROM snapshots "
                "WHERE experiment_id = %s",
                (experiment_id,),
            )
        )
        if not rows:
            return None
        r = rows[0]
        return Snapshot(experiment_id, int(r[0]), decode_state(r[2]), json.loads(r[1]), r[3])

    def prune_log(self, before: float, limit: int = PRUNE_CHUNK) -> tuple[int, int]:
        return self._run(
            lambda c: prune_log_rows(
                lambda sql, args: fetch_all(c, sql, args), c.execute, "%s", before, limit
            )
        )

    def snapshot_versions(self) -> dict[str, int]:
        rows = self._run(lambda c: fetch_all(c, "SELECT experiment_id, last_seq FROM snapshots"))
        return {r[0]: int(r[1]) for r in rows}


def _decision_args(rows: Sequence[DecisionRow]) -> dict[str, list[tuple[Any, ...]]]:
    """The insert parameters of ``rows``, by experiment."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for r in rows:
        out.setdefault(r.experiment_id, []).append(decision_params(r))
    return out


def _insert_decisions(c: Any, args: dict[str, list[tuple[Any, ...]]]) -> None:
    """Insert decision rows (stored event ids skipped) and count the inserted ones."""
    counts = {}
    for exp_id, rows in args.items():
        n = c.executemany(
            f"INSERT IGNORE INTO decisions ({DECISION_COLS}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )
        counts[(exp_id, "decisions")] = int(n or 0)
    _add_counters(c, counts)


def _add_counters(c: Any, deltas: Mapping[tuple[str, str], int]) -> None:
    rows = [(e, name, n) for (e, name), n in sorted(deltas.items()) if n]
    if rows:
        c.executemany(
            "INSERT INTO engine_counters (experiment_id, name, n) VALUES (%s, %s, %s) "
            "ON DUPLICATE KEY UPDATE n = n + VALUES(n)",
            rows,
        )
