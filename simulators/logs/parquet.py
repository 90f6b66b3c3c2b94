"""The decision log in Parquet: schema, writer and the Arrow -> ``BanditLog`` conversion.

A Parquet log is a directory of hive-style partitions, one per experiment
and UTC day of ``created_at``::

    DIR/experiment=<id>/date=YYYY-MM-DD/part-<tag>-<n>.parquet

(the experiment id URI-encoded). Each file holds one row per decision with
the fields of the JSON Lines format (``simulators.logs.jsonl``), column by
column (``SCHEMA_VERSION`` 1):

=====================  ===========================================  =========
column                 type                                         JSONL key
=====================  ===========================================  =========
event_id               string                                       event_id
experiment_id          string                                       experiment_id
created_at             float64 (unix seconds)                       created_at
deadline               float64, null                                deadline
model_version          int64, null                                  model_version
x                      fixed_size_list<float64>[dim]                x
candidates             list<string>, null = every active arm        candidates
arms                   list<string> (shown, ranked)                 arms
scores                 list<float64>, null                          scores
propensities           list<float64>                                propensities
propensity_kind        string (first_slot | per_slot)               propensity_kind
prefix_propensities    list<float64>, null                          prefix_propensities
position               int64, null                                  position
rewards                list<struct<reward, reward_norm: float64,    rewards
                       source: string, ts: float64, seq: int64,
                       weight: float64>>, an entry null while open
=====================  ===========================================  =========

The JSON Lines header (format, version, experiment id, config, arms with
their features, source) is the file's key-value metadata under
``bandit_engine.log`` (JSON). A file whose metadata names another format or
a newer version, or that lacks a column, is refused with an error naming it.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bandit_engine import InvalidArgument
from simulators.logs.bandit_log import SOURCES, BanditLog
from simulators.logs.jsonl import FORMAT

__all__ = [
    "COLUMNS",
    "META_KEY",
    "SCHEMA_VERSION",
    "file_header",
    "partition_dir",
    "schema",
    "table_of",
    "write_parquet",
]

SCHEMA_VERSION = 1
META_KEY = b"bandit_engine.log"

REWARD = pa.struct(
    [
        ("reward", pa.float64()),
        ("reward_norm", pa.float64()),
        ("source", pa.string()),
        ("ts", pa.float64()),
        ("seq", pa.int64()),
        ("weight", pa.float64()),
    ]
)


def schema(dim: int) -> pa.Schema:
    """The columns of a log whose contexts have ``dim`` entries."""
    return pa.schema(
        [
            ("event_id", pa.string()),
            ("experiment_id", pa.string()),
            ("created_at", pa.float64()),
            ("deadline", pa.float64()),
            ("model_version", pa.int64()),
            ("x", pa.list_(pa.float64(), dim)),
            ("candidates", pa.list_(pa.string())),
            ("arms", pa.list_(pa.string())),
            ("scores", pa.list_(pa.float64())),
            ("propensities", pa.list_(pa.float64())),
            ("propensity_kind", pa.string()),
            ("prefix_propensities", pa.list_(pa.float64())),
            ("position", pa.int64()),
            ("rewards", pa.list_(REWARD)),
        ]
    )


COLUMNS = tuple(schema(1).names)


def partition_dir(experiment_id: str, day: str) -> str:
    """``experiment=<id>/date=<day>`` with the id URI-encoded."""
    return f"experiment={urllib.parse.quote(experiment_id, safe='')}/date={day}"


def file_header(log: BanditLog, source: str = "") -> dict[str, Any]:
    """The JSON header kept in each file's metadata."""
    from simulators.logs.jsonl import header

    head = header(log, source)
    head["version"] = SCHEMA_VERSION
    head["dim"] = log.dim
    return head


def _lists(values: pa.Array, lengths: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    offsets = np.zeros(lengths.shape[0] + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    mask = None if valid is None else pa.array(~valid)
    return pa.ListArray.from_arrays(pa.array(offsets), values, mask=mask)


def _floats(a: np.ndarray) -> pa.Array:
    return pa.array(a, type=pa.float64(), from_pandas=True)  # NaN -> null


def table_of(log: BanditLog) -> pa.Table:
    """``log`` as an Arrow table of the Parquet schema (one row per decision)."""
    n, k = log.shown.shape if log.n else (0, max(1, log.shown.shape[1]))
    ids = np.asarray((*log.arm_ids, ""), dtype=object)
    has = log.shown >= 0
    lengths = has.sum(axis=1)
    flat = log.shown[has]
    exp = log.meta.get("experiment_id")

    def slotted(a: np.ndarray | None, valid_rows: np.ndarray | None = None) -> pa.Array:
        if a is None:
            return pa.nulls(n, pa.list_(pa.float64()))
        return _lists(_floats(a[has]), lengths, valid_rows)

    cands: pa.Array
    if log.cand_ptr is None or log.cand_idx is None:
        cands = pa.nulls(n, pa.list_(pa.string()))
    else:
        sizes = np.diff(log.cand_ptr)
        vals = pa.array(ids[log.cand_idx], type=pa.string())
        cands = _lists(vals, sizes, sizes > 0)
    rw = log.reward[has]
    open_ = np.isnan(rw)
    m = rw.shape[0]

    def col(a: np.ndarray | None, fill: float = np.nan) -> np.ndarray:
        return np.full(m, fill) if a is None else a[has].astype(np.float64)

    src_codes = np.zeros(m, dtype=np.int64) if log.reward_source is None else log.reward_source[has]
    src_names = np.asarray([s or None for s in SOURCES], dtype=object)[src_codes]
    seq = None if log.reward_seq is None else log.reward_seq[has]
    weight = col(log.reward_weight)
    rewards = pa.StructArray.from_arrays(
        [
            _floats(col(log.reward_raw) if log.reward_raw is not None else rw),
            _floats(rw),
            pa.array(src_names, type=pa.string()),
            _floats(col(log.reward_ts)),
            pa.array(seq, type=pa.int64(), mask=None if seq is None else seq < 0)
            if seq is not None
            else pa.nulls(m, pa.int64()),
            _floats(np.where(np.isnan(weight), 1.0, weight)),
        ],
        fields=list(REWARD),
        mask=pa.array(open_),
    )
    prefix_rows = None
    if log.prefix_propensity is not None:
        prefix_rows = ~np.isnan(log.prefix_propensity[:, 0])

    def ints(a: np.ndarray | None) -> pa.Array:
        if a is None:
            return pa.nulls(n, pa.int64())
        return pa.array(a, type=pa.int64(), mask=a < 0)

    cols = {
        "event_id": pa.array(list(log.event_id), type=pa.string()),
        "experiment_id": pa.array([exp] * n, type=pa.string()),
        "created_at": pa.array(log.timestamp, type=pa.float64()),
        "deadline": _floats(log.deadline)
        if log.deadline is not None
        else pa.nulls(n, pa.float64()),
        "model_version": ints(log.model_version),
        "x": pa.FixedSizeListArray.from_arrays(
            pa.array(np.ascontiguousarray(log.x).reshape(-1), type=pa.float64()), log.dim
        ),
        "candidates": cands,
        "arms": _lists(pa.array(ids[flat], type=pa.string()), lengths),
        "scores": slotted(log.scores),
        "propensities": slotted(log.propensity),
        "propensity_kind": pa.array([log.propensity_kind] * n, type=pa.string()),
        "prefix_propensities": slotted(log.prefix_propensity, prefix_rows),
        "position": ints(log.position),
        "rewards": _lists(rewards, lengths),
    }
    del k
    return pa.table(cols, schema=schema(log.dim))


def _day(ts: float) -> str:
    return datetime.fromtimestamp(float(ts), tz=timezone.utc).strftime("%Y-%m-%d")


def write_parquet(
    log: BanditLog,
    out_dir: str | Path,
    *,
    source: str = "",
    tag: str | None = None,
    row_group_rows: int = 65536,
) -> list[Path]:
    """Write ``log`` under ``out_dir`` partitioned by experiment and UTC day;
    one new file per partition (``part-<tag>-0.parquet``; ``tag`` defaults to
    a fresh random one, so repeated writes add files). Returns the files."""
    exp = log.meta.get("experiment_id")
    if not exp:
        raise InvalidArgument("the log has no experiment_id; Parquet logs are partitioned by it")
    tag = tag or uuid.uuid4().hex[:12]
    head = file_header(log, source)
    meta = {META_KEY: json.dumps(head, allow_nan=False).encode()}
    days = np.asarray([_day(t) for t in log.timestamp], dtype=object) if log.n else np.zeros(0)
    out: list[Path] = []
    for day in sorted(set(days.tolist())):
        rows = np.flatnonzero(days == day)
        part = log if rows.shape[0] == log.n else log.select(rows)
        table = table_of(part).replace_schema_metadata(meta)
        folder = Path(out_dir) / partition_dir(str(exp), day)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-{tag}-0.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp, row_group_size=row_group_rows, compression="zstd")
        tmp.replace(path)
        out.append(path)
    return out


def check_file(path: str | Path, pf: pq.ParquetFile) -> dict[str, Any]:
    """The header of a log file; raises ``InvalidArgument`` naming what is wrong."""
    md = pf.schema_arrow.metadata or {}
    raw = md.get(META_KEY)
    head: Mapping[str, Any] = {}
    if raw is not None:
        try:
            head = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(
                f"{path}: unreadable {META_KEY.decode()} metadata ({exc})"
            ) from None
        if head.get("format", FORMAT) != FORMAT:
            raise InvalidArgument(f"{path}: format {head.get('format')!r} is not {FORMAT!r}")
        if int(head.get("version", 1)) > SCHEMA_VERSION:
            raise InvalidArgument(
                f"{path}: schema version {head.get('version')!r} is newer than "
                f"{SCHEMA_VERSION} (this reader)"
            )
    names = set(pf.schema_arrow.names)
    lacking = [c for c in COLUMNS if c not in names]
    if lacking:
        raise InvalidArgument(f"{path}: not a decision log: missing column(s) {lacking}")
    xt = pf.schema_arrow.field("x").type
    if not pa.types.is_fixed_size_list(xt) or not pa.types.is_float64(xt.value_type):
        raise InvalidArgument(f"{path}: column x is {xt}; expected fixed_size_list<double>")
    return {**head, "dim": xt.list_size, "exported_at": head.get("exported_at", time.time())}
