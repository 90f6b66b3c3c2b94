"""MySQL/MariaDB store (PyMySQL), the production implementation of ``Store``
and of ``LearnerStore``.

DSN: ``mysql://user:password@host:port/database?connect_timeout=5&read_timeout=30``.
The database is created if missing and the schema migrated on open
(``connection``). ``serving`` holds what servers need, ``learning`` what a
Kafka-mode learner needs.

PyMySQL waits forever by default; here every connection has connect, read
and write timeouts. A lost connection (server gone, connection killed, time
out) is reopened and the operation retried with backoff. A retried
``commit_rewards`` cannot tell from the database alone whether the lost
attempt committed, so each attempt writes a random ``write_id`` with its rows:
rows found with the attempt's own ``write_id`` were written by an earlier try
of it (committed before the connection dropped) and rows with another
``write_id`` are real duplicates. Nothing is applied twice and nothing is
lost.
"""

from __future__ import annotations

from bandit_engine.store.base import Store
from bandit_engine.store.mysql.connection import SCHEMA_VERSION, parse_dsn, redact
from bandit_engine.store.mysql.learning import LearnerMethods
from bandit_engine.store.mysql.serving import ServingMethods

__all__ = ["SCHEMA_VERSION", "MySQLStore", "parse_dsn", "redact"]


class MySQLStore(LearnerMethods, ServingMethods, Store):
    """Store in a MySQL/MariaDB database; one connection guarded by a lock."""
