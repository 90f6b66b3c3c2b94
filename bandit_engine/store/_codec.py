"""Encoding of arrays and state dicts for storage (shared by the stores)."""

from __future__ import annotations

import io
import json
import struct
import time
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bandit_engine.store.base import DecisionRow, PolicyChange, RewardRow, Snapshot

#: Column order that ``decision_from_row`` and ``reward_from_row`` read.
DECISION_COLS = (
    "event_id, experiment_id, created_at, deadline, model_version, x, arms, scores, "
    "propensities, candidates, prefix_propensities"
)
REWARD_COLS = (
    "event_id, arm_id, experiment_id, arm_slot, x, reward, reward_norm, source, ts, seq, weight"
)

#: Column order of ``policy_changes`` rows that ``policy_change_from_row`` reads.
POLICY_CHANGE_COLS = "experiment_id, action, name, settings, actor, at, from_seq, seq"


def policy_change_params(ch: PolicyChange) -> tuple[Any, ...]:
    """The insert parameters of a policy change (``POLICY_CHANGE_COLS`` but seq)."""
    return (
        ch.experiment_id,
        ch.action,
        ch.name,
        json.dumps(ch.settings, sort_keys=True),
        ch.actor,
        ch.at,
        ch.from_seq,
    )


def policy_change_from_row(r: Sequence[Any]) -> PolicyChange:
    return PolicyChange(r[0], r[1], r[2], json.loads(r[3]), r[4], float(r[5]), int(r[6]), int(r[7]))


def json_ids(ids: Sequence[str]) -> str:
    """``json.dumps(ids)`` for a sequence of ids, several times faster: the
    decision log writes two of these per decision from a
    thread that competes for the GIL with the request threads. The same text
    when no id needs escaping (printable ASCII without quotes or backslashes,
    as every id ``check_id`` accepts); anything else goes through json."""
    joined = "".join(ids)
    if joined.isascii() and joined.isprintable() and '"' not in joined and "\\" not in joined:
        return '["' + '", "'.join(ids) + '"]' if ids else "[]"
    return json.dumps(ids)


def config_from_json(text: str | bytes) -> dict[str, Any]:
    """An experiment's stored config. A row that is not a JSON object comes
    back as ``{"unreadable_config": <why>}``, which the engine refuses to
    load (naming it) without refusing the other experiments."""
    try:
        data = json.loads(text)
    except (ValueError, TypeError) as exc:
        return {"unreadable_config": f"not JSON ({exc}): {text!r:.120}"}
    if not isinstance(data, dict):
        return {"unreadable_config": f"not a JSON object: {text!r:.120}"}
    if (
        "exploration" not in data
        and "noise_scale" in data  # every config ExperimentConfig.to_dict wrote has it
        and data.get("policy") in ("lin_ts_disjoint", "logistic_ts")
    ):
        # stored before ``exploration`` existed: keep the draws it made then
        data["exploration"] = 1.0
    if "click_model" not in data and "decay" in data:
        data["click_model"] = "independent"  # stored before click models existed
    if "half_life_s" not in data and "decay" in data:  # decay: in every stored config
        # stored before forgetting by time existed: it keeps its evidence
        data["half_life_s"] = 0.0
    return data


def encode_vector(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x, dtype="<f8").tobytes()


def decode_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f8").copy()


def encode_state(state: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **state)  # type: ignore[arg-type]  # uncompressed: snapshots must be fast
    return buf.getvalue()


def decode_state(blob: bytes) -> dict[str, np.ndarray]:
    """A snapshot's arrays; ``ValueError`` if the blob is not such an archive."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(
            f"snapshot state of {len(blob)} bytes is not a readable array archive "
            f"({type(exc).__name__}: {str(exc)[:120]})"
        ) from exc


def encode_floats(xs: Sequence[float]) -> bytes:
    """Floats as little-endian float64s: a fraction of the cost of their JSON
    text (a shortest repr per float)."""
    return struct.pack(f"<{len(xs)}d", *xs)


def decode_floats(v: str | bytes) -> tuple[float, ...]:
    """A list of floats as ``encode_floats`` or JSON text wrote it."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        if len(b) % 8:
            raise ValueError(f"a float64 column of {len(b)} bytes")
        return struct.unpack(f"<{len(b) // 8}d", b)
    return tuple(json.loads(v))


def decision_params(r: DecisionRow, binary_floats: bool = False) -> tuple[Any, ...]:
    """A decision as the values of the ``decisions`` columns, in DECISION_COLS
    order. ``binary_floats``: scores and propensities as ``encode_floats``
    (SQLite, where a TEXT column keeps a BLOB as it is) instead of JSON text;
    ``decision_from_row`` reads both, so older rows still load."""
    floats = encode_floats if binary_floats else json.dumps
    return (
        r.event_id,
        r.experiment_id,
        r.created_at,
        r.deadline,
        r.model_version,
        encode_vector(r.x),
        json_ids(r.arms),
        floats(r.scores),
        floats(r.propensities),
        json_ids(r.candidates),
        floats(r.prefix_propensities) if r.prefix_propensities else None,
    )


def decision_from_row(r: Sequence[Any]) -> DecisionRow:
    return DecisionRow(
        event_id=r[0],
        experiment_id=r[1],
        created_at=r[2],
        deadline=r[3],
        model_version=int(r[4]),
        x=decode_vector(r[5]),
        arms=tuple(json.loads(r[6])),
        scores=decode_floats(r[7]),
        propensities=decode_floats(r[8]),
        candidates=tuple(json.loads(r[9])),
        prefix_propensities=() if r[10] is None else decode_floats(r[10]),
    )


def reward_from_row(r: Sequence[Any]) -> RewardRow:
    return RewardRow(
        event_id=r[0],
        arm_id=r[1],
        experiment_id=r[2],
        arm_slot=int(r[3]),
        x=decode_vector(r[4]),
        reward=r[5],
        reward_norm=r[6],
        source=r[7],
        ts=r[8],
        seq=int(r[9]),
        weight=float(r[10]),
    )


def snapshot_params(snap: Snapshot) -> tuple[Any, ...]:
    """(experiment_id, last_seq, counters, state, created_at) as stored."""
    return (
        snap.experiment_id,
        snap.last_seq,
        json.dumps(snap.counters),
        encode_state(snap.state),
        snap.created_at or time.time(),
    )


def prune_log_rows(
    fetch: Callable[[str, tuple[Any, ...]], Sequence[Any]],
    execute: Callable[[str, tuple[Any, ...]], int],
    ph: str,
    before: float,
    limit: int,
) -> tuple[int, int]:
    """``Store.prune_log`` for either store, inside its transaction: ``fetch``
    returns rows, ``execute`` the affected row count, ``ph`` is the driver's
    placeholder (``?`` or ``%s``). Rewards go first, each decision only if
    none of its rewards is left (the rest wait for a later snapshot)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit={limit!r} must be a positive integer")
    last = dict(fetch("SELECT experiment_id, last_seq FROM snapshots", ()))
    due = fetch(
        "SELECT seq, event_id, experiment_id FROM decisions "
        f"WHERE closed = 1 AND deadline < {ph} ORDER BY closed, deadline LIMIT {ph}",
        (before, limit),
    )
    rewards = sum(
        execute(f"DELETE FROM rewards WHERE event_id = {ph} AND seq <= {ph}", (ev, last[exp_id]))
        for _, ev, exp_id in due
        if exp_id in last
    )
    decisions = sum(
        execute(
            f"DELETE FROM decisions WHERE seq = {ph} AND NOT EXISTS "
            f"(SELECT 1 FROM rewards WHERE event_id = {ph})",
            (seq, ev),
        )
        for seq, ev, _ in due
    )
    return decisions, rewards
