"""Arrow record batches of the Parquet log schema -> ``BanditLog`` (vectorised)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bandit_engine import InvalidArgument
from simulators.logs.bandit_log import SOURCES, BanditLog
from simulators.logs.parquet import COLUMNS

if TYPE_CHECKING:
    from simulators.logs.reader import LogFiles

__all__ = ["complete_count", "to_bandit_log"]


def _col(batch: Any, name: str) -> pa.Array:
    c = batch.column(name)
    return c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c


def _f64(a: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(a.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False))


def _i64(a: pa.Array, fill: int = -1) -> np.ndarray:
    return np.asarray(pc.fill_null(a.cast(pa.int64()), fill).to_numpy(zero_copy_only=False))


def _arm_index(values: pa.Array, universe: pa.Array, where: str) -> np.ndarray:
    idx = pc.index_in(values, value_set=universe)
    if idx.null_count:
        bad = pc.filter(values, pc.is_null(idx)).to_pylist()[:3]
        raise InvalidArgument(f"{where}: arm(s) {bad} are not in the log's arms")
    return _i64(idx)


def _slotted(a: pa.ListArray, rows: np.ndarray, slots: np.ndarray, n: int, k: int) -> np.ndarray:
    """A list<float64> column as an (n, k) array, NaN where absent."""
    out = np.full((n, k), np.nan)
    lengths = _i64(pc.list_value_length(a), 0)
    ok = lengths[rows] > slots  # a row whose list is shorter than its arms: NaN there
    start = _i64(a.offsets)[:-1] if len(a) else np.zeros(0, dtype=np.int64)
    vals = _f64(a.values) if len(a.values) else np.zeros(0)
    out[rows[ok], slots[ok]] = vals[start[rows[ok]] + slots[ok]]
    return out


def to_bandit_log(batch: Any, lf: LogFiles, *, where: str = "") -> BanditLog:
    """One record batch (or table) of a Parquet log as a ``BanditLog`` with
    ``lf``'s arm numbering and header."""
    names = set(batch.schema.names)
    lacking = [c for c in COLUMNS if c not in names]
    if lacking:
        raise InvalidArgument(f"{where}: not a decision log: missing column(s) {lacking}")
    n = batch.num_rows
    universe = pa.array(list(lf.arm_ids), type=pa.string())
    arms = _col(batch, "arms")
    if arms.null_count:
        raise InvalidArgument(f"{where}: a decision has no shown arms (null arms)")
    lengths = _i64(pc.list_value_length(arms), 0)
    if n and lengths.min() < 1:
        raise InvalidArgument(f"{where}: a decision needs at least one shown arm")
    k = max(1, int(lengths.max())) if n else 1
    rows = np.repeat(np.arange(n), lengths)
    slots = np.arange(rows.shape[0]) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    shown = np.full((n, k), -1, dtype=np.int64)
    shown[rows, slots] = _arm_index(arms.flatten(), universe, where)
    x_col = _col(batch, "x")
    d = x_col.type.list_size
    x = _f64(x_col.flatten()).reshape(n, d) if n else np.zeros((0, d))
    if x_col.null_count:
        raise InvalidArgument(f"{where}: {x_col.null_count} decision(s) without a context x")
    prop = _slotted(_col(batch, "propensities"), rows, slots, n, k)
    scores_col = _col(batch, "scores")
    scores = None
    if scores_col.null_count < n:
        scores = _slotted(scores_col, rows, slots, n, k)
    pre_col = _col(batch, "prefix_propensities")
    prefix = None
    if pre_col.null_count < n:
        prefix = _slotted(pre_col, rows, slots, n, k)
    rw = _col(batch, "rewards").flatten()  # struct per shown slot
    m = len(rw)
    if m != rows.shape[0]:
        raise InvalidArgument(f"{where}: {m} rewards entries for {rows.shape[0]} shown arms")
    closed = np.asarray(rw.is_valid().to_numpy(zero_copy_only=False), dtype=bool)

    def field(name: str) -> pa.Array:
        return rw.field(name)

    def grid(vals: np.ndarray, fill: float, dtype: Any = np.float64) -> np.ndarray:
        out = np.full((n, k), fill, dtype=dtype)
        out[rows[closed], slots[closed]] = vals[closed]
        return out

    norm = _f64(field("reward_norm"))
    raw = _f64(field("reward"))
    raw = np.where(np.isnan(raw), norm, raw)
    # SOURCES[0] is "" (none): index_in gives 0 for "" and -1 (null) otherwise
    src = (
        _i64(pc.index_in(field("source"), value_set=pa.array(list(SOURCES))))
        if m
        else np.zeros(0, np.int64)
    )
    src = np.maximum(src, 0).astype(np.int8)
    weight = _f64(field("weight"))
    reward = grid(norm, np.nan)
    ptr = idx = None
    cands = _col(batch, "candidates")
    if cands.null_count < n:
        sizes = _i64(pc.list_value_length(cands), 0)
        ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(sizes, out=ptr[1:])
        if ptr[-1]:
            idx = _arm_index(pc.list_flatten(cands), universe, where)
        else:
            ptr = None
    kinds = {str(s) for s in pc.unique(_col(batch, "propensity_kind")).to_pylist() if s}
    kind = lf.meta.get("propensity_kind") or (kinds.pop() if len(kinds) == 1 else "first_slot")
    if kinds and kinds != {kind}:
        raise InvalidArgument(f"{where}: decisions of more than one propensity_kind")
    position = _i64(_col(batch, "position"))
    meta = {k: v for k, v in lf.meta.items() if k != "propensity_kind"}
    return BanditLog(
        arm_ids=lf.arm_ids,
        x=x,
        shown=shown,
        propensity=prop,
        reward=reward,
        event_id=tuple(_col(batch, "event_id").to_pylist()),
        timestamp=_f64(_col(batch, "created_at")),
        cand_ptr=ptr,
        cand_idx=idx,
        scores=scores,
        reward_raw=grid(raw, np.nan),
        reward_source=grid(src.astype(np.float64), 0, np.int8) if m else np.zeros((n, k), np.int8),
        reward_ts=grid(_f64(field("ts")), np.nan),
        reward_seq=grid(_i64(field("seq")), -1, np.int64),
        model_version=_i64(_col(batch, "model_version")),
        deadline=_f64(_col(batch, "deadline")),
        position=position if (position >= 0).any() else None,
        arm_features=lf.arm_features or None,
        meta=meta,
        reward_weight=grid(np.where(np.isnan(weight), 1.0, weight), np.nan),
        propensity_kind=kind,
        prefix_propensity=prefix,
    )


def complete_count(batch: Any) -> int:
    """Rows of a batch (at least its ``rewards`` column) whose first shown
    arm has its reward: the rows the estimators use."""
    rw = _col(batch, "rewards")
    if len(rw) == 0:
        return 0
    starts = _i64(rw.offsets)[:-1]
    lengths = _i64(pc.list_value_length(rw), 0)
    flat = rw.flatten()
    valid = np.asarray(flat.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    norm = _f64(flat.field("reward_norm"))
    ok = valid & ~np.isnan(norm)
    has = lengths > 0
    return int(ok[starts[has]].sum())
