"""SQLite store: the embedded default, one file under the state dir.

WAL journal with ``synchronous=NORMAL``: a committed transaction survives a
crash of the process (not necessarily a power cut). One connection, guarded
by a lock, serves every thread.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bandit_engine._exceptions import StoreError
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
    Store,
)

#: v2: the index on closed decisions gained their deadline. v3: a decision's
#: scores and propensities may be float64 blobs (``encode_floats``; older rows
#: keep their JSON text), which engines that know only v2 cannot read. v4: the
#: engine's counters in ``engine_counters``, counted with their rows. v5: a
#: reward's weight (its click model's; rows before it counted 1) and a
#: decision's prefix propensities (per_slot experiments). v6: the
#: ``policy_changes`` of experiments (challengers, promotions).
SCHEMA_VERSION = 6

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS experiments (
    experiment_id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    arm_changes INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    ord INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS arms (
    experiment_id TEXT NOT NULL,
    arm_id TEXT NOT NULL,
    slot INTEGER NOT NULL,
    features TEXT NOT NULL,
    active INTEGER NOT NULL,
    PRIMARY KEY (experiment_id, arm_id)
);
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    experiment_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    deadline REAL NOT NULL,
    model_version INTEGER NOT NULL,
    x BLOB NOT NULL,
    arms TEXT NOT NULL,
    scores TEXT NOT NULL,
    propensities TEXT NOT NULL,
    candidates TEXT NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0,
    prefix_propensities TEXT
);
CREATE INDEX IF NOT EXISTS decisions_closed ON decisions (closed, deadline);
DROP INDEX IF EXISTS decisions_open;
CREATE TABLE IF NOT EXISTS rewards (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    arm_id TEXT NOT NULL,
    experiment_id TEXT NOT NULL,
    arm_slot INTEGER NOT NULL,
    x BLOB NOT NULL,
    reward REAL NOT NULL,
    reward_norm REAL NOT NULL,
    source TEXT NOT NULL,
    ts REAL NOT NULL,
    weight REAL NOT NULL DEFAULT 1,
    UNIQUE (event_id, arm_id)
);
CREATE INDEX IF NOT EXISTS rewards_exp ON rewards (experiment_id, seq);
CREATE TABLE IF NOT EXISTS engine_counters (
    experiment_id TEXT NOT NULL,
    name TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (experiment_id, name)
);
CREATE TABLE IF NOT EXISTS policy_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id TEXT NOT NULL,
    action TEXT NOT NULL,
    name TEXT NOT NULL,
    settings TEXT NOT NULL,
    actor TEXT NOT NULL,
    at REAL NOT NULL,
    from_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS policy_changes_exp ON policy_changes (experiment_id, seq);
CREATE TABLE IF NOT EXISTS snapshots (
    experiment_id TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    counters TEXT NOT NULL,
    state BLOB NOT NULL,
    created_at REAL NOT NULL
);
"""


_DECISION_WIDTH = len(DECISION_COLS.split(","))  # columns of a decision row
#: Rows per INSERT in ``log_decisions``. One multi-row statement, not
#: ``executemany``: sqlite3 releases the GIL around every statement step (one
#: per row with executemany), and the decision writer shares the GIL with the
#: request threads; a release while they wait for it costs the writer a wait
#: and a context switch to get it back. 64 rows x 11 = 704 parameters, under
#: SQLite's oldest limit (999).
_ROWS_PER_INSERT = 64


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _decision_insert(n: int) -> str:
    """INSERT of ``n`` decision rows (at most 64 texts: sqlite3 caches them)."""
    row = "(" + ", ".join(["?"] * _DECISION_WIDTH) + ")"
    return f"INSERT OR IGNORE INTO decisions ({DECISION_COLS}) VALUES " + ", ".join([row] * n)


class SQLiteStore(Store):
    """Store in one SQLite file (``":memory:"`` for a throwaway engine)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {self.path!r}: {exc}") from exc

    def _add_columns(self) -> None:
        """The columns v5 added, on a table made before them."""
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(rewards)")}
        if "weight" not in cols:
            self._db.execute("ALTER TABLE rewards ADD COLUMN weight REAL NOT NULL DEFAULT 1")
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(decisions)")}
        if "prefix_propensities" not in cols:
            self._db.execute("ALTER TABLE decisions ADD COLUMN prefix_propensities TEXT")

    def _migrate(self) -> None:
        # executescript commits on its own, so it runs outside a transaction
        self._db.executescript(_SCHEMA)
        self._add_columns()  # cheap, and safe on a table that has them
        row = self._db.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            self._db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        elif row[0] < SCHEMA_VERSION:
            # v1 -> v2: the index made by the script above; v2 -> v3: nothing
            # to rewrite (JSON rows are still read); v3 -> v4: the counters
            # table made above, seeded from the snapshots by the engine;
            # v4 -> v5: the rewards' weight and the decisions' prefix columns
            # (added above); v5 -> v6: policy_changes (created above)
            self._db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        elif row[0] > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path!r} has schema version {row[0]}; this engine knows "
                f"up to {SCHEMA_VERSION}"
            )

    class _Tx:
        def __init__(self, store: SQLiteStore) -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            self.store._db.execute("BEGIN IMMEDIATE")
            return self.store._db

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            try:
                self.store._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
            finally:
                self.store._lock.release()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"SQLite store {self.store.path!r}: {exc}") from exc

    def _tx(self) -> SQLiteStore._Tx:
        return SQLiteStore._Tx(self)

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc

    # ------------------------------------------------------------ experiments
    def create_experiment(self, experiment_id: str, config: dict[str, Any], now: float) -> None:
        with self._tx() as db:
            (n,) = db.execute("SELECT COUNT(*) FROM experiments").fetchone()
            db.execute(
                "INSERT INTO experiments (experiment_id, config, created_at, ord) "
                "VALUES (?, ?, ?, ?)",
                (experiment_id, json.dumps(config, sort_keys=True), now, n),
            )

    def load_experiments(self) -> list[tuple[str, dict[str, Any], int]]:
        rows = self._query(
            "SELECT experiment_id, config, arm_changes FROM experiments ORDER BY ord"
        )
        return [(r[0], config_from_json(r[1]), int(r[2])) for r in rows]

    def upsert_arms(self, rows: Sequence[ArmRow]) -> None:
        with self._tx() as db:
            for r in rows:
                db.execute(
                    "INSERT INTO arms (experiment_id, arm_id, slot, features, active) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (experiment_id, arm_id) DO UPDATE "
                    "SET active = excluded.active",
                    (r.experiment_id, r.arm_id, r.slot, json.dumps(r.features), int(r.active)),
                )
                db.execute(
                    "UPDATE experiments SET arm_changes = arm_changes + 1 WHERE experiment_id = ?",
                    (r.experiment_id,),
                )

    def load_arms(self, experiment_id: str) -> list[ArmRow]:
        rows = self._query(
            "SELECT arm_id, slot, features, active FROM arms WHERE experiment_id = ? ORDER BY slot",
            (experiment_id,),
        )
        return [ArmRow(experiment_id, r[0], int(r[1]), json.loads(r[2]), bool(r[3])) for r in rows]

    # ----------------------------------------------------- decisions, rewards
    def log_decisions(self, rows: Sequence[DecisionRow]) -> None:
        # Encoded before the transaction: the store lock is held for the insert only.
        params = _decision_params(rows)
        with self._tx() as db:
            _add_counters(db, _insert_decisions(db, params))

    def commit_rewards(
        self,
        rows: Sequence[RewardRow],
        close_events: Sequence[str] = (),
        decisions: Sequence[DecisionRow] = (),
    ) -> list[int | None]:
        seqs: list[int | None] = []
        params = _decision_params(decisions)
        with self._tx() as db:
            counts = _insert_decisions(db, params)
            for r in rows:
                cur = db.execute(
                    "INSERT OR IGNORE INTO rewards (event_id, arm_id, experiment_id, arm_slot, x, "
                    "reward, reward_norm, source, ts, weight) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                        r.weight,
                    ),
                )
                if cur.rowcount == 1:
                    seqs.append(cur.lastrowid)
                    key = (r.experiment_id, REWARD_COUNTERS[r.source])
                    counts[key] = counts.get(key, 0) + 1
                else:
                    seqs.append(None)
            if close_events:
                db.executemany(
                    "UPDATE decisions SET closed = 1 WHERE event_id = ?",
                    [(e,) for e in close_events],
                )
            _add_counters(db, counts)
        return seqs

    def decision_status(self, event_id: str) -> tuple[str, bool] | None:
        rows = self._query(
            "SELECT experiment_id, closed FROM decisions WHERE event_id = ?", (event_id,)
        )
        return (rows[0][0], bool(rows[0][1])) if rows else None

    def reward_source(self, event_id: str, arm_id: str) -> str | None:
        rows = self._query(
            "SELECT source FROM rewards WHERE event_id = ? AND arm_id = ?", (event_id, arm_id)
        )
        return str(rows[0][0]) if rows else None

    def open_decisions(self) -> Iterator[tuple[DecisionRow, dict[str, float]]]:
        rows = self._query(f"SELECT {DECISION_COLS} FROM decisions WHERE closed = 0 ORDER BY seq")
        rewarded: dict[str, dict[str, float]] = {}
        for ev, arm, reward in self._query(
            "SELECT r.event_id, r.arm_id, r.reward FROM rewards r JOIN decisions d "
            "ON r.event_id = d.event_id WHERE d.closed = 0"
        ):
            rewarded.setdefault(ev, {})[arm] = float(reward)
        for r in rows:
            yield decision_from_row(r), rewarded.get(r[0], {})

    def rewards_after(self, experiment_id: str, seq: int) -> Iterator[RewardRow]:
        rows = self._query(
            f"SELECT {REWARD_COLS} FROM rewards WHERE experiment_id = ? AND seq > ? ORDER BY seq",
            (experiment_id, seq),
        )
        return (reward_from_row(r) for r in rows)

    def rewards(self, experiment_id: str | None = None) -> Iterator[RewardRow]:
        if experiment_id is None:
            rows = self._query(f"SELECT {REWARD_COLS} FROM rewards ORDER BY seq")
            return (reward_from_row(r) for r in rows)
        return self.rewards_after(experiment_id, 0)

    def decisions(self, experiment_id: str | None = None) -> Iterator[DecisionRow]:
        if experiment_id is None:
            rows = self._query(f"SELECT {DECISION_COLS} FROM decisions ORDER BY seq")
        else:
            rows = self._query(
                f"SELECT {DECISION_COLS} FROM decisions WHERE experiment_id = ? ORDER BY seq",
                (experiment_id,),
            )
        for r in rows:
            yield decision_from_row(r)

    def prune_log(self, before: float, limit: int = PRUNE_CHUNK) -> tuple[int, int]:
        with self._tx() as db:
            return prune_log_rows(
                lambda sql, args: db.execute(sql, args).fetchall(),
                lambda sql, args: db.execute(sql, args).rowcount,
                "?",
                before,
                limit,
            )

    # --------------------------------------------------------------- counters
    def add_counters(self, deltas: Mapping[tuple[str, str], int]) -> None:
        with self._tx() as db:
            _add_counters(db, deltas)

    def counters(self, experiment_id: str | None = None) -> dict[tuple[str, str], int]:
        if experiment_id is None:
            rows = self._query("SELECT experiment_id, name, n FROM engine_counters")
        else:
            rows = self._query(
                "SELECT experiment_id, name, n FROM engine_counters WHERE experiment_id = ?",
                (experiment_id,),
            )
        return {(r[0], r[1]): int(r[2]) for r in rows}

    # --------------------------------------------------------- policy changes
    def record_policy_change(self, change: PolicyChange) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO policy_changes (experiment_id, action, name, settings, actor, at, "
                "from_seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
                policy_change_params(change),
            )
            return int(cur.lastrowid or 0)

    def policy_changes(self, experiment_id: str | None = None) -> list[PolicyChange]:
        sql = f"SELECT {POLICY_CHANGE_COLS} FROM policy_changes"
        args: tuple[Any, ...] = ()
        if experiment_id is not None:
            sql, args = sql + " WHERE experiment_id = ?", (experiment_id,)
        return [policy_change_from_row(r) for r in self._query(sql + " ORDER BY seq", args)]

    # -------------------------------------------------------------- snapshots
    def save_snapshot(self, snap: Snapshot) -> None:
        params = snapshot_params(snap)
        with self._tx() as db:
            db.execute(
                "INSERT INTO snapshots (experiment_id, last_seq, counters, state, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (experiment_id) DO UPDATE SET "
                "last_seq = excluded.last_seq, counters = excluded.counters, "
                "state = excluded.state, created_at = excluded.created_at",
                params,
            )

    def load_snapshot(self, experiment_id: str) -> Snapshot | None:
        rows = self._query(
            "SELECT last_seq, counters, state, created_at FROM snapshots WHERE experiment_id = ?",
            (experiment_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return Snapshot(experiment_id, int(r[0]), decode_state(r[2]), json.loads(r[1]), r[3])

    def ping(self) -> None:
        self._query("SELECT 1")

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _decision_params(rows: Sequence[DecisionRow]) -> dict[str, list[Any]]:
    """The insert parameters of ``rows``, by experiment."""
    out: dict[str, list[Any]] = {}
    for r in rows:
        out.setdefault(r.experiment_id, []).extend(decision_params(r, binary_floats=True))
    return out


def _insert_decisions(
    db: sqlite3.Connection, params: dict[str, list[Any]]
) -> dict[tuple[str, str], int]:
    """Insert decision rows (stored event ids skipped); the inserted ones
    counted by experiment, to add to the counters."""
    step = _ROWS_PER_INSERT * _DECISION_WIDTH
    counts: dict[tuple[str, str], int] = {}
    for exp_id, values in params.items():
        n = 0
        for i in range(0, len(values), step):
            chunk = values[i : i + step]
            n += db.execute(_decision_insert(len(chunk) // _DECISION_WIDTH), chunk).rowcount
        counts[(exp_id, "decisions")] = n
    return counts


_ADD_COUNTER = (
    "INSERT INTO engine_counters (experiment_id, name, n) VALUES (?, ?, ?) "
    "ON CONFLICT (experiment_id, name) DO UPDATE SET n = n + excluded.n"
)


def _add_counters(db: sqlite3.Connection, deltas: Mapping[tuple[str, str], int]) -> None:
    rows = [(e, name, n) for (e, name), n in deltas.items() if n]
    if len(rows) == 1:
        db.execute(_ADD_COUNTER, rows[0])
    elif rows:
        db.executemany(_ADD_COUNTER, rows)
