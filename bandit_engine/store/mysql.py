"""MySQL/MariaDB store (PyMySQL), the production implementation of ``Store``.

DSN: ``mysql://user:password@host:port/database?connect_timeout=5&read_timeout=30``.
The database is created if missing and the schema migrated on open, tracked
in a ``schema_version`` table.

PyMySQL waits forever by default; here every connection has connect, read
and write timeouts. A lost connection (server gone, connection killed, time
out) is reopened and the operation retried with backoff. A retried
``commit_rewards`` cannot tell from the database alone whether the lost
attempt committed, so each attempt writes a random ``write_id`` with its rows:
rows found with our ``write_id`` are ours (committed before the connection
dropped) and rows with another ``write_id`` are real duplicates. Nothing is
applied twice and nothing is lost.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
import pymysql
import pymysql.err

from bandit_engine._exceptions import InvalidArgument, StoreError
from bandit_engine.store._codec import (
    DECISION_COLS,
    REWARD_COLS,
    decision_from_row,
    decision_params,
    decode_state,
    encode_state,
    encode_vector,
    prune_log_rows,
    reward_from_row,
    snapshot_params,
)
from bandit_engine.store.base import (
    PRUNE_CHUNK,
    ArmRow,
    DecisionRow,
    HeldRewards,
    LearnerOffsets,
    RewardRow,
    Snapshot,
    Store,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4

T = TypeVar("T")

# Client-side "connection is gone" errors: reconnect and retry.
_LOST = {2003, 2006, 2013, 2055, 1927, 4031}

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL) ENGINE=InnoDB",
    """CREATE TABLE IF NOT EXISTS experiments (
        experiment_id VARCHAR(128) NOT NULL PRIMARY KEY,
        config TEXT NOT NULL,
        arm_changes BIGINT NOT NULL DEFAULT 0,
        created_at DOUBLE NOT NULL,
        ord BIGINT NOT NULL AUTO_INCREMENT,
        UNIQUE KEY (ord)
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS arms (
        experiment_id VARCHAR(128) NOT NULL,
        arm_id VARCHAR(128) NOT NULL,
        slot INT NOT NULL,
        features TEXT NOT NULL,
        active TINYINT NOT NULL,
        PRIMARY KEY (experiment_id, arm_id)
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS decisions (
        seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        event_id VARCHAR(128) NOT NULL,
        experiment_id VARCHAR(128) NOT NULL,
        created_at DOUBLE NOT NULL,
        deadline DOUBLE NOT NULL,
        model_version BIGINT NOT NULL,
        x MEDIUMBLOB NOT NULL,
        arms MEDIUMTEXT NOT NULL,
        scores MEDIUMTEXT NOT NULL,
        propensities MEDIUMTEXT NOT NULL,
        candidates MEDIUMTEXT NOT NULL,
        closed TINYINT NOT NULL DEFAULT 0,
        UNIQUE KEY (event_id),
        KEY decisions_closed (closed, deadline)
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS rewards (
        seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        event_id VARCHAR(128) NOT NULL,
        arm_id VARCHAR(128) NOT NULL,
        experiment_id VARCHAR(128) NOT NULL,
        arm_slot INT NOT NULL,
        x MEDIUMBLOB NOT NULL,
        reward DOUBLE NOT NULL,
        reward_norm DOUBLE NOT NULL,
        source VARCHAR(16) NOT NULL,
        ts DOUBLE NOT NULL,
        write_id CHAR(32) NOT NULL,
        UNIQUE KEY (event_id, arm_id),
        KEY rewards_exp (experiment_id, seq)
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS learner_offsets (
        group_id VARCHAR(128) NOT NULL,
        part INT NOT NULL,
        dec_next BIGINT NOT NULL,
        dec_resume BIGINT NOT NULL,
        fb_next BIGINT NOT NULL,
        fb_resume BIGINT NOT NULL,
        watermark DOUBLE NOT NULL,
        PRIMARY KEY (group_id, part)
    ) ENGINE=InnoDB""",
    # kind 0: rewards waiting for their decision at the commit, as runs of n
    # consecutive offsets from fb_offset (a learner catching up may hold tens
    # of thousands, mostly consecutive); 1: a reward dead-lettered as
    # unknown_event (n = 1), kept until fb_resume passes it. See HeldRewards.
    """CREATE TABLE IF NOT EXISTS learner_held (
        group_id VARCHAR(128) NOT NULL,
        part INT NOT NULL,
        kind TINYINT NOT NULL,
        fb_offset BIGINT NOT NULL,
        n INT NOT NULL,
        PRIMARY KEY (group_id, part, kind, fb_offset)
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS learner_counters (
        experiment_id VARCHAR(128) NOT NULL,
        name VARCHAR(64) NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (experiment_id, name)
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS snapshots (
        experiment_id VARCHAR(128) NOT NULL PRIMARY KEY,
        last_seq BIGINT NOT NULL,
        counters TEXT NOT NULL,
        state LONGBLOB NOT NULL,
        created_at DOUBLE NOT NULL
    ) ENGINE=InnoDB""",
]


def parse_dsn(dsn: str) -> dict[str, Any]:
    """``mysql://user:pw@host:port/db?connect_timeout=5`` to PyMySQL arguments."""
    u = urlparse(dsn)
    if u.scheme not in ("mysql", "mariadb"):
        raise InvalidArgument(f"MySQL DSN {dsn!r} must start with mysql://")
    db = u.path.lstrip("/")
    if not db:
        raise InvalidArgument(f"MySQL DSN {dsn!r} names no database (mysql://host/DATABASE)")
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    try:
        timeouts = {
            "connect_timeout": float(q.pop("connect_timeout", 5)),
            "read_timeout": float(q.pop("read_timeout", 30)),
            "write_timeout": float(q.pop("write_timeout", 30)),
        }
    except ValueError as exc:
        raise InvalidArgument(f"MySQL DSN {dsn!r}: bad timeout ({exc})") from None
    if q:
        raise InvalidArgument(f"MySQL DSN {dsn!r}: unknown options {sorted(q)}")
    return {
        "host": u.hostname or "127.0.0.1",
        "port": u.port or 3306,
        "user": unquote(u.username or "root"),
        "password": unquote(u.password or ""),
        "database": db,
        **timeouts,
    }


def redact(dsn: str) -> str:
    """The DSN with its password replaced, for logs."""
    u = urlparse(dsn)
    if u.password:
        return dsn.replace(f":{u.password}@", ":***@", 1)
    return dsn


class MySQLStore(Store):
    """Store in a MySQL/MariaDB database; one connection guarded by a lock."""

    def __init__(self, dsn: str, *, retries: int = 5) -> None:
        self.dsn = redact(dsn)
        self._args = parse_dsn(dsn)
        self._retries = retries
        self._lock = threading.RLock()
        self._conn: pymysql.connections.Connection[Any] | None = None
        self._ensure_database()
        self._run(self._migrate)

    # ------------------------------------------------------------ connection
    def _connect(self) -> pymysql.connections.Connection[Any]:
        a = self._args
        return pymysql.connect(
            host=a["host"],
            port=a["port"],
            user=a["user"],
            password=a["password"],
            database=a["database"],
            connect_timeout=a["connect_timeout"],
            read_timeout=a["read_timeout"],
            write_timeout=a["write_timeout"],
            autocommit=False,
            charset="utf8mb4",
        )

    def _ensure_database(self) -> None:
        a = self._args
        try:
            conn = pymysql.connect(
                host=a["host"],
                port=a["port"],
                user=a["user"],
                password=a["password"],
                connect_timeout=a["connect_timeout"],
                read_timeout=a["read_timeout"],
                write_timeout=a["write_timeout"],
            )
        except pymysql.err.MySQLError as exc:
            raise StoreError(f"cannot connect to MySQL at {self.dsn}: {exc}") from exc
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{a['database']}`")
        finally:
            conn.close()

    def connection_id(self) -> int:
        """Server-side id of the current connection (for tests that KILL it)."""
        return int(self._run(lambda c: _one(c, "SELECT CONNECTION_ID()")[0]))

    def _run(self, op: Callable[[Any], T], *, retry: bool = True) -> T:
        """Run ``op(cursor)`` in a transaction; reconnect and retry if the link drops.

        With ``retry=False`` a lost link raises StoreError at once: for
        operations with side effects outside the database.
        """
        delay = 0.05
        retries = self._retries if retry else 0
        with self._lock:
            for attempt in range(retries + 1):
                try:
                    if self._conn is None:
                        self._conn = self._connect()
                    with self._conn.cursor() as cur:
                        result = op(cur)
                    self._conn.commit()
                    return result
                except pymysql.err.MySQLError as exc:
                    code = exc.args[0] if exc.args else None
                    lost = isinstance(exc, pymysql.err.InterfaceError) or code in _LOST
                    self._drop()
                    if not lost or attempt == retries:
                        raise StoreError(f"MySQL store {self.dsn}: {exc}") from exc
                    log.warning("MySQL connection lost (%s); retry %d", exc, attempt + 1)
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                except Exception:
                    if self._conn is not None:
                        try:
                            self._conn.rollback()
                        except pymysql.err.MySQLError:
                            self._drop()
                    raise
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # already broken; nothing else to do
                pass
            self._conn = None

    def _migrate(self, cur: Any) -> None:
        for stmt in _SCHEMA:
            cur.execute(stmt)
        cur.execute("SELECT version FROM schema_version")
        row = cur.fetchone()
        if row is None:
            cur.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
        elif row[0] < SCHEMA_VERSION:
            # v1 -> v2 added the learner tables, v2 -> v3 learner_held (all
            # created above): nothing to move. A v2 learner stored no held
            # rewards: rewards it left waiting for their decision at its last
            # commit count as resolved after the upgrade (stop v2 learners
            # with SIGTERM first: their final commit comes after a drain).
            # v3 -> v4: the index on closed decisions gains their deadline
            # (prune_log).
            cur.execute(
                "SELECT index_name FROM information_schema.statistics WHERE "
                "table_schema = DATABASE() AND table_name = 'decisions'"
            )
            indexes = {r[0] for r in cur.fetchall()}
            if "decisions_closed" not in indexes:
                cur.execute("ALTER TABLE decisions ADD KEY decisions_closed (closed, deadline)")
            if "decisions_open" in indexes:
                cur.execute("ALTER TABLE decisions DROP KEY decisions_open")
            cur.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))
        elif row[0] > SCHEMA_VERSION:
            raise StoreError(
                f"MySQL store {self.dsn} has schema version {row[0]}; this engine knows "
                f"up to {SCHEMA_VERSION}"
            )

    # ------------------------------------------------------------ experiments
    def create_experiment(self, experiment_id: str, config: dict[str, Any], now: float) -> None:
        self._run(
            lambda c: c.execute(
                "INSERT INTO experiments (experiment_id, config, created_at) VALUES (%s, %s, %s)",
                (experiment_id, json.dumps(config, sort_keys=True), now),
            )
        )

    def load_experiments(self) -> list[tuple[str, dict[str, Any], int]]:
        rows = self._run(
            lambda c: _all(
                c, "SELECT experiment_id, config, arm_changes FROM experiments ORDER BY ord"
            )
        )
        return [(r[0], json.loads(r[1]), int(r[2])) for r in rows]

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
            lambda c: _all(
                c,
                "SELECT arm_id, slot, features, active FROM arms WHERE experiment_id = %s "
                "ORDER BY slot",
                (experiment_id,),
            )
        )
        return [ArmRow(experiment_id, r[0], int(r[1]), json.loads(r[2]), bool(r[3])) for r in rows]

    # ----------------------------------------------------- decisions, rewards
    def log_decisions(self, rows: Sequence[DecisionRow]) -> None:
        args = [decision_params(r) for r in rows]
        self._run(
            lambda c: c.executemany(
                f"INSERT IGNORE INTO decisions ({DECISION_COLS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                args,
            )
        )

    def commit_rewards(
        self, rows: Sequence[RewardRow], close_events: Sequence[str] = ()
    ) -> list[int | None]:
        write_id = uuid.uuid4().hex

        def op(c: Any) -> list[int | None]:
            seqs: list[int | None] = []
            for r in rows:
                n = c.execute(
                    "INSERT INTO rewards (event_id, arm_id, experiment_id, arm_slot, x, reward, "
                    "reward_norm, source, ts, write_id) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
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
                    ),
                )
                if n == 1:
                    seqs.append(int(c.lastrowid))
                else:
                    # Ours from an attempt whose COMMIT was lost with the link?
                    c.execute(
                        "SELECT seq, write_id FROM rewards WHERE event_id = %s AND arm_id = %s",
                        (r.event_id, r.arm_id),
                    )
                    seq, wid = c.fetchone()
                    seqs.append(int(seq) if wid == write_id else None)
            for ev in close_events:
                c.execute("UPDATE decisions SET closed = 1 WHERE event_id = %s", (ev,))
            return seqs

        return self._run(op)

    def decision_status(self, event_id: str) -> tuple[str, bool] | None:
        rows = self._run(
            lambda c: _all(
                c, "SELECT experiment_id, closed FROM decisions WHERE event_id = %s", (event_id,)
            )
        )
        return (rows[0][0], bool(rows[0][1])) if rows else None

    def reward_source(self, event_id: str, arm_id: str) -> str | None:
        rows = self._run(
            lambda c: _all(
                c,
                "SELECT source FROM rewards WHERE event_id = %s AND arm_id = %s",
                (event_id, arm_id),
            )
        )
        return str(rows[0][0]) if rows else None

    def open_decisions(self) -> Iterator[tuple[DecisionRow, set[str]]]:
        def op(c: Any) -> tuple[list[Any], list[Any]]:
            rows = _all(c, f"SELECT {DECISION_COLS} FROM decisions WHERE closed = 0 ORDER BY seq")
            done = _all(
                c,
                "SELECT r.event_id, r.arm_id FROM rewards r JOIN decisions d "
                "ON r.event_id = d.event_id WHERE d.closed = 0",
            )
            return rows, done

        rows, done = self._run(op)
        rewarded: dict[str, set[str]] = {}
        for ev, arm in done:
            rewarded.setdefault(ev, set()).add(arm)
        for r in rows:
            yield decision_from_row(r), rewarded.get(r[0], set())

    def rewards_after(self, experiment_id: str, seq: int) -> Iterator[RewardRow]:
        rows = self._run(
            lambda c: _all(
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
        rows = self._run(lambda c: _all(c, f"SELECT {REWARD_COLS} FROM rewards ORDER BY seq"))
        return (reward_from_row(r) for r in rows)

    def decisions(self, experiment_id: str | None = None) -> Iterator[DecisionRow]:
        args: tuple[Any, ...]
        if experiment_id is None:
            sql, args = f"SELECT {DECISION_COLS} FROM decisions ORDER BY seq", ()
        else:
            sql = f"SELECT {DECISION_COLS} FROM decisions WHERE experiment_id = %s ORDER BY seq"
            args = (experiment_id,)
        rows = self._run(lambda c: _all(c, sql, args))
        return (decision_from_row(r) for r in rows)

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
            lambda c: _all(
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

    def ping(self) -> None:
        self._run(lambda c: c.execute("SELECT 1"), retry=False)

    def prune_log(self, before: float, limit: int = PRUNE_CHUNK) -> tuple[int, int]:
        return self._run(
            lambda c: prune_log_rows(
                lambda sql, args: _all(c, sql, args), c.execute, "%s", before, limit
            )
        )

    def snapshot_versions(self) -> dict[str, int]:
        rows = self._run(lambda c: _all(c, "SELECT experiment_id, last_seq FROM snapshots"))
        return {r[0]: int(r[1]) for r in rows}

    # ---------------------------------------------------------------- learner
    def learner_offsets(self, group_id: str) -> dict[int, LearnerOffsets]:
        rows = self._run(
            lambda c: _all(
                c,
                "SELECT part, dec_next, dec_resume, fb_next, fb_resume, watermark "
                "FROM learner_offsets WHERE group_id = %s",
                (group_id,),
            )
        )
        return {
            int(r[0]): LearnerOffsets(int(r[1]), int(r[2]), int(r[3]), int(r[4]), float(r[5]))
            for r in rows
        }

    def learner_held(self, group_id: str) -> dict[int, HeldRewards]:
        """The held rewards per partition number (see ``HeldRewards``)."""
        rows = self._run(
            lambda c: _all(
                c,
                "SELECT part, kind, fb_offset, n FROM learner_held WHERE group_id = %s "
                "ORDER BY part, kind, fb_offset",
                (group_id,),
            )
        )
        acc: dict[int, tuple[list[int], list[int]]] = {}
        for part, kind, off, n in rows:
            acc.setdefault(int(part), ([], []))[int(kind)].extend(
                range(int(off), int(off) + int(n))
            )
        return {p: HeldRewards(tuple(o), tuple(u)) for p, (o, u) in acc.items()}

    def learner_counters(self, experiment_id: str | None = None) -> dict[tuple[str, str], int]:
        rows = self._run(lambda c: _all(c, "SELECT experiment_id, name, n FROM learner_counters"))
        return {
            (r[0], r[1]): int(r[2]) for r in rows if experiment_id is None or r[0] == experiment_id
        }

    def learner_commit(
        self,
        group_id: str,
        updates: dict[str, Callable[[int, Callable[[], Snapshot | None]], dict[str, Any]]],
        counters: dict[tuple[str, str], int],
        offsets: dict[int, LearnerOffsets],
        now: float,
        held: dict[int, HeldRewards] | None = None,
    ) -> dict[str, int]:
        """One transaction: new statistics, counters, log offsets and held rewards.

        ``held[p]`` replaces partition ``p``'s waiting rewards and adds its new
        unknown ones; unknown ones below the new ``fb_resume`` are dropped
        (a replay no longer reads them). A partition absent from ``held``
        keeps what it had.

        ``updates[exp](version, load)`` is called with the experiment's
        snapshot row locked (``FOR UPDATE``, so learners sharing an experiment
        take turns); ``load()`` reads the stored state when the caller's copy
        is stale. It returns the new state. No retry: if the
        link drops, the caller cannot know whether this committed and must
        reload its state and offsets from the database.
        """

        def op(c: Any) -> dict[str, int]:
            versions: dict[str, int] = {}
            for exp_id, update in sorted(updates.items()):
                c.execute(
                    "SELECT last_seq FROM snapshots WHERE experiment_id = %s FOR UPDATE",
                    (exp_id,),
                )
                row = c.fetchone()
                version = int(row[0]) if row else 0

                def load(exp_id: str = exp_id) -> Snapshot | None:
                    # read only when the caller's copy is stale (another learner wrote)
                    c.execute(
                        "SELECT last_seq, counters, state, created_at FROM snapshots "
                        "WHERE experiment_id = %s",
                        (exp_id,),
                    )
                    r = c.fetchone()
                    if r is None:
                        return None
                    return Snapshot(exp_id, int(r[0]), decode_state(r[2]), json.loads(r[1]), r[3])

                state = update(version, load)
                c.execute(
                    "INSERT INTO snapshots (experiment_id, last_seq, counters, state, created_at) "
                    "VALUES (%s, %s, '{}', %s, %s) ON DUPLICATE KEY UPDATE "
                    "last_seq = VALUES(last_seq), state = VALUES(state), "
                    "created_at = VALUES(created_at)",
                    (exp_id, version + 1, encode_state(state), now),
                )
                versions[exp_id] = version + 1
            if counters:
                c.executemany(
                    "INSERT INTO learner_counters (experiment_id, name, n) VALUES (%s, %s, %s) "
                    "ON DUPLICATE KEY UPDATE n = n + VALUES(n)",
                    [(e, n, v) for (e, n), v in sorted(counters.items())],
                )
            if offsets:
                c.executemany(
                    "INSERT INTO learner_offsets (group_id, part, dec_next, dec_resume, fb_next, "
                    "fb_resume, watermark) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                    "ON DUPLICATE KEY UPDATE dec_next = VALUES(dec_next), "
                    "dec_resume = VALUES(dec_resume), fb_next = VALUES(fb_next), "
                    "fb_resume = VALUES(fb_resume), watermark = VALUES(watermark)",
                    [
                        (group_id, p, o.dec_next, o.dec_resume, o.fb_next, o.fb_resume, o.watermark)
                        for p, o in sorted(offsets.items())
                    ],
                )
            for p, h in sorted((held or {}).items()):
                c.execute(
                    "DELETE FROM learner_held WHERE group_id = %s AND part = %s AND "
                    "(kind = 0 OR fb_offset < %s)",
                    (group_id, p, offsets[p].fb_resume if p in offsets else -1),
                )
                rows = [(group_id, p, 0, o, n) for o, n in _runs(h.orphans)]
                rows += [(group_id, p, 1, o, 1) for o in h.unknown]
                if rows:
                    c.executemany(
                        "INSERT IGNORE INTO learner_held (group_id, part, kind, fb_offset, n) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        rows,
                    )
            return versions

        return self._run(op, retry=False)

    def close(self) -> None:
        with self._lock:
            self._drop()


def _runs(offsets: Sequence[int]) -> list[tuple[int, int]]:
    """Distinct offsets as (first, count) runs of consecutive values."""
    if not offsets:
        return []
    a = np.unique(np.asarray(offsets, dtype=np.int64))
    breaks = np.flatnonzero(np.diff(a) != 1) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [a.shape[0]]))
    return list(zip(a[starts].tolist(), (ends - starts).tolist(), strict=True))


def _all(cur: Any, sql: str, args: Sequence[Any] = ()) -> list[Any]:
    cur.execute(sql, args)
    return list(cur.fetchall())


def _one(cur: Any, sql: str, args: Sequence[Any] = ()) -> Any:
    cur.execute(sql, args)
    return cur.fetchone()
