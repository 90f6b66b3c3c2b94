"""The MySQL store's side for learners (``LearnerStore``): offsets, held
rewards, counters, and the one-transaction commit."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pymysql

from bandit_engine.store._codec import decode_state, encode_state
from bandit_engine.store.base import (
    HeldRewards,
    LearnerOffsets,
    Snapshot,
    SnapshotPart,
    SnapshotUpdate,
)
from bandit_engine.store.mysql.connection import MySQLConnection, fetch_all

__all__ = ["LearnerMethods"]

_LOCKED = (1205, 3572)  # NOWAIT on a locked row: MariaDB's code, MySQL 8's


class LearnerMethods(MySQLConnection):
    """What a learner keeps in MySQL."""

    def learner_offsets(self, group_id: str) -> dict[int, LearnerOffsets]:
        rows = self._run(
            lambda c: fetch_all(
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
            lambda c: fetch_all(
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
        rows = self._run(
            lambda c: fetch_all(c, "SELECT experiment_id, name, n FROM learner_counters")
        )
        return {
            (r[0], r[1]): int(r[2]) for r in rows if experiment_id is None or r[0] == experiment_id
        }

    def learner_commit(
        self,
        group_id: str,
        updates: Mapping[str, SnapshotUpdate],
        counters: Mapping[tuple[str, str], int],
        offsets: Mapping[int, LearnerOffsets],
        now: float,
        held: Mapping[int, HeldRewards] | None = None,
        parts: Mapping[str, SnapshotPart] | None = None,
    ) -> dict[str, int]:
        """One transaction (``LearnerStore.learner_commit``). Each updated
        experiment's snapshot row is locked (``FOR UPDATE``) while its update
        runs, so learners sharing an experiment take turns; a part is an
        insert into a table of its own, and waits for no one. READ COMMITTED:
        the parts an update absorbs are read after its row is locked, so none
        that another update absorbed meanwhile is read again, and reading
        them locks no gap that another learner's part would go into."""

        def op(c: Any) -> dict[str, int]:
            c.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            versions: dict[str, int] = {}
            for exp_id, update in sorted(updates.items()):
                version = _absorb(c, exp_id, update, now, nowait=False)
                assert version is not None
                versions[exp_id] = version
            for exp_id, part in sorted((parts or {}).items()):
                c.execute(
                    "INSERT INTO snapshot_parts (experiment_id, counters, state, created_at) "
                    "VALUES (%s, %s, %s, %s)",
                    (exp_id, json.dumps(dict(part.counters)), encode_state(part.state), now),
                )
            _add_learner_counters(c, counters)
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

    def pending_parts(self) -> dict[str, int]:
        rows = self._run(
            lambda c: fetch_all(
                c, "SELECT experiment_id, COUNT(*) FROM snapshot_parts GROUP BY experiment_id"
            )
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def absorb_parts(self, experiment_id: str, update: SnapshotUpdate, now: float) -> int | None:
        def op(c: Any) -> int | None:
            c.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            return _absorb(c, experiment_id, update, now, nowait=True)

        return self._run(op, retry=False)


def _absorb(c: Any, exp_id: str, update: SnapshotUpdate, now: float, *, nowait: bool) -> int | None:
    """Lock the experiment's snapshot row, run ``update`` on it with the
    stored parts, store the result, delete the parts and add their counters:
    the new version. ``nowait``: None if the row is locked, with nothing
    changed; and the stored version, unchanged, if no part waits."""
    sql = "SELECT last_seq FROM snapshots WHERE experiment_id = %s FOR UPDATE"
    try:
        c.execute(sql + (" NOWAIT" if nowait else ""), (exp_id,))
    except pymysql.err.OperationalError as exc:
        if nowait and exc.args and exc.args[0] in _LOCKED:
            return None
        raise
    row = c.fetchone()
    version = int(row[0]) if row else 0
    c.execute(
        # no lock: parts are deleted only under the snapshot row's lock, held
        # here, and a part not yet committed is absorbed by a later update
        "SELECT id, counters, state FROM snapshot_parts WHERE experiment_id = %s ORDER BY id",
        (exp_id,),
    )
    stored = c.fetchall()
    if nowait and not stored:
        return version

    def load() -> Snapshot | None:
        # read only when the caller's copy is stale (another learner wrote)
        c.execute(
            "SELECT last_seq, counters, state, created_at FROM snapshots WHERE experiment_id = %s",
            (exp_id,),
        )
        r = c.fetchone()
        if r is None:
            return None
        return Snapshot(exp_id, int(r[0]), decode_state(r[2]), json.loads(r[1]), r[3])

    state = encode_state(update(version, load, [decode_state(r[2]) for r in stored]))
    if row is None:  # a racing first insert fails on the key, and its commit with it
        c.execute(
            "INSERT INTO snapshots (experiment_id, last_seq, counters, state, created_at) "
            "VALUES (%s, %s, '{}', %s, %s)",
            (exp_id, version + 1, state, now),
        )
    else:
        c.execute(
            "UPDATE snapshots SET last_seq = %s, state = %s, created_at = %s "
            "WHERE experiment_id = %s",
            (version + 1, state, now, exp_id),
        )
    if stored:
        ids = [int(r[0]) for r in stored]
        c.execute(f"DELETE FROM snapshot_parts WHERE id IN ({', '.join(['%s'] * len(ids))})", ids)
        added: dict[tuple[str, str], int] = {}
        for r in stored:
            for name, n in json.loads(r[1]).items():
                added[(exp_id, name)] = added.get((exp_id, name), 0) + int(n)
        _add_learner_counters(c, added)
    return version + 1


def _add_learner_counters(c: Any, counters: Mapping[tuple[str, str], int]) -> None:
    if counters:
        c.executemany(
            "INSERT INTO learner_counters (experiment_id, name, n) VALUES (%s, %s, %s) "
            "ON DUPLICATE KEY UPDATE n = n + VALUES(n)",
            [(e, n, v) for (e, n), v in sorted(counters.items())],
        )


def _runs(offsets: Sequence[int]) -> list[tuple[int, int]]:
    """Distinct offsets as (first, count) runs of consecutive values."""
    if not offsets:
        return []
    a = np.unique(np.asarray(offsets, dtype=np.int64))
    breaks = np.flatnonzero(np.diff(a) != 1) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [a.shape[0]]))
    return list(zip(a[starts].tolist(), (ends - starts).tolist(), strict=True))
