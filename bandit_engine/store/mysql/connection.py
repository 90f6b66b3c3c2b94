"""The MySQL store's connection: DSN, schema and migration, transactions with retry.

DSN: ``mysql://user:password@host:port/database?connect_timeout=5&read_timeout=30``.
The database is created if missing and the schema migrated on open, tracked
in a ``schema_version`` table.

PyMySQL waits forever by default; here every connection has connect, read
and write timeouts. A lost connection (server gone, connection killed, time
out) is reopened and the operation retried with backoff (``MySQLConnection._run``),
unless the caller says a retry could apply it twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlparse

import pymysql
import pymysql.err

from bandit_engine._exceptions import InvalidArgument, StoreError

__all__ = ["SCHEMA_VERSION", "MySQLConnection", "fetch_all", "fetch_one", "parse_dsn", "redact"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 8

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
        prefix_propensities MEDIUMTEXT NULL,
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
        weight DOUBLE NOT NULL DEFAULT 1,
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
    # the embedded engine's counters, counted with their rows (Store.counters)
    """CREATE TABLE IF NOT EXISTS engine_counters (
        experiment_id VARCHAR(128) NOT NULL,
        name VARCHAR(64) NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (experiment_id, name)
    ) ENGINE=InnoDB""",
    # changes of experiments' policy sets: challengers added and removed,
    # promotions and rollbacks, with who and when (core.challenger_admin)
    """CREATE TABLE IF NOT EXISTS policy_changes (
        seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        experiment_id VARCHAR(128) NOT NULL,
        action VARCHAR(16) NOT NULL,
        name VARCHAR(64) NOT NULL,
        settings TEXT NOT NULL,
        actor VARCHAR(128) NOT NULL,
        at DOUBLE NOT NULL,
        from_seq BIGINT NOT NULL,
        KEY policy_changes_exp (experiment_id, seq)
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS snapshots (
        experiment_id VARCHAR(128) NOT NULL PRIMARY KEY,
        last_seq BIGINT NOT NULL,
        counters TEXT NOT NULL,
        state LONGBLOB NOT NULL,
        created_at DOUBLE NOT NULL
    ) ENGINE=InnoDB""",
    # evidence a learner committed for an experiment without taking its
    # snapshot's row (policies.merge), absorbed by a later commit that takes it
    """CREATE TABLE IF NOT EXISTS snapshot_parts (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        experiment_id VARCHAR(128) NOT NULL,
        counters TEXT NOT NULL,
        state LONGBLOB NOT NULL,
        created_at DOUBLE NOT NULL,
        KEY snapshot_parts_exp (experiment_id, id)
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


class MySQLConnection:
    """One connection to a MySQL/MariaDB database, guarded by a lock; the
    schema is created or migrated when it is opened."""

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
        return int(self._run(lambda c: fetch_one(c, "SELECT CONNECTION_ID()")[0]))

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
        # the columns v6 added, on tables made before them
        for table, column, kind in (
            ("rewards", "weight", "DOUBLE NOT NULL DEFAULT 1"),
            ("decisions", "prefix_propensities", "MEDIUMTEXT NULL"),
        ):
            cur.execute(
                "SELECT column_name FROM information_schema.columns WHERE "
                "table_schema = DATABASE() AND table_name = %s",
                (table,),
            )
            if column not in {str(r[0]).lower() for r in cur.fetchall()}:
                cur.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
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
            # (prune_log). v4 -> v5: engine_counters (created above), seeded
            # from the snapshots by the engine. v5 -> v6: a reward's weight
            # (its click model's; rows before it counted 1) and a decision's
            # prefix propensities. v6 -> v7: policy_changes (created above). v7 -> v8:
            # snapshot_parts (created above).
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

    def ping(self) -> None:
        self._run(lambda c: c.execute("SELECT 1"), retry=False)

    def close(self) -> None:
        with self._lock:
            self._drop()


def fetch_all(cur: Any, sql: str, args: Sequence[Any] = ()) -> list[Any]:
    """All rows of a query."""
    cur.execute(sql, args)
    return list(cur.fetchall())


def fetch_one(cur: Any, sql: str, args: Sequence[Any] = ()) -> Any:
    """The first row of a query (None if none)."""
    cur.execute(sql, args)
    return cur.fetchone()
