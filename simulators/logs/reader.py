"""One reader for both log formats: ``read_log``, ``iter_log_chunks``, ``open_log``.

``path`` is a JSON Lines export (``.jsonl``, ``.jsonl.gz``), a Parquet file,
or a directory of Parquet partitions (``simulators.logs.parquet``). Files of
a directory are read in sorted path order, so a log has one row order
whichever reader walks it. Every chunk of one log shares one arm numbering:
the arms of the headers in order, then arms met only in the rows, in order
of first appearance (a first pass over the arm columns finds them).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bandit_engine import InvalidArgument
from simulators.logs.bandit_log import BanditLog

__all__ = ["LogFiles", "iter_log_chunks", "open_log", "read_log"]


def _is_parquet(path: Path) -> bool:
    return path.is_dir() or path.suffix == ".parquet"


@dataclass
class LogFiles:
    """A log on disk: its files, arm numbering, header and dimension."""

    path: str
    kind: str  # "parquet" | "jsonl"
    files: list[str]
    arm_ids: tuple[str, ...]
    meta: dict[str, Any]
    dim: int
    arm_features: tuple[dict[str, Any], ...] = ()
    rows: int | None = None  # Parquet: from the footers
    fragments: list[tuple[str, int, int]] = field(default_factory=list)  # (file, group, rows)

    def empty(self) -> BanditLog:
        """A log with no rows but this one's arms, header and dimension."""
        return BanditLog(
            arm_ids=self.arm_ids,
            x=np.zeros((0, self.dim)),
            shown=np.zeros((0, 1), dtype=np.int64),
            propensity=np.zeros((0, 1)),
            reward=np.zeros((0, 1)),
            event_id=(),
            timestamp=np.zeros(0),
            arm_features=self.arm_features or None,
            meta=dict(self.meta),
        )

    def chunks(self, rows: int = 65536) -> Iterator[BanditLog]:
        if rows < 1:
            raise InvalidArgument(f"rows={rows!r} must be >= 1")
        if self.kind == "jsonl":
            yield from _jsonl_chunks(self, rows)
            return
        import pyarrow.parquet as pq

        for f in self.files:
            pf = pq.ParquetFile(f)
            for batch in pf.iter_batches(batch_size=rows):
                yield self.convert(batch, where=f)

    def complete_counts(self, rows: int = 65536) -> list[int]:
        """Per chunk of ``chunks(rows)``: rows whose first shown arm has its
        reward (Parquet: from the rewards column alone)."""
        if self.kind == "jsonl":
            return [int((~np.isnan(c.logged_reward)).sum()) for c in self.chunks(rows)]
        import pyarrow.parquet as pq

        from simulators.logs.parquet_convert import complete_count

        out = []
        for f in self.files:
            pf = pq.ParquetFile(f)
            for batch in pf.iter_batches(batch_size=rows, columns=["rewards"]):
                out.append(complete_count(batch))
        return out

    def fragment_count(self, path: str, group: int) -> int:
        """``complete_counts`` of one row group."""
        import pyarrow.parquet as pq

        from simulators.logs.parquet_convert import complete_count

        return complete_count(pq.ParquetFile(path).read_row_group(group, columns=["rewards"]))

    def fragment(self, path: str, group: int) -> BanditLog:
        """One row group of one file (the unit of work of a distributed run)."""
        import pyarrow.parquet as pq

        return self.convert(pq.ParquetFile(path).read_row_group(group), where=path)

    def convert(self, batch: Any, *, where: str = "") -> BanditLog:
        from simulators.logs.parquet_convert import to_bandit_log

        return to_bandit_log(batch, self, where=where)


def open_log(path: str | Path, *, experiment: str | None = None) -> LogFiles:
    """Look a log over (headers, footers, arms) without loading its rows."""
    p = Path(path)
    if str(path) != "-" and not p.exists():
        raise FileNotFoundError(f"no log at {str(path)!r}")
    if str(path) != "-" and _is_parquet(p):
        return _open_parquet(p, experiment)
    return _open_jsonl(str(path))


def read_log(path: str | Path, *, experiment: str | None = None) -> BanditLog:
    """The whole log in memory, from either format."""
    p = Path(path)
    if str(path) == "-" or (p.exists() and not _is_parquet(p)):
        from simulators.logs.jsonl import read_jsonl

        return read_jsonl(path)
    lf = open_log(path, experiment=experiment)
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(f) for f in lf.files]
    if not tables:
        return lf.empty()
    return lf.convert(pa.concat_tables(tables, promote_options="none"), where=str(path))


def iter_log_chunks(
    path: str | Path, *, rows: int = 65536, experiment: str | None = None
) -> Iterator[BanditLog]:
    """The log in chunks of at most ``rows`` decisions, in log order, every
    chunk with the same arm numbering (``arm_ids``)."""
    return open_log(path, experiment=experiment).chunks(rows)


# ------------------------------------------------------------------ Parquet
def _experiment_dirs(root: Path) -> dict[str, Path]:
    out = {}
    for d in sorted(root.glob("experiment=*")):
        if d.is_dir():
            out[urllib.parse.unquote(d.name.split("=", 1)[1])] = d
    return out


def _open_parquet(p: Path, experiment: str | None) -> LogFiles:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from simulators.logs.parquet import check_file

    if p.is_dir():
        exps = _experiment_dirs(p)
        if exps:
            if experiment is None:
                if len(exps) != 1:
                    raise InvalidArgument(
                        f"{p} holds experiments {sorted(exps)}; choose one with --experiment"
                    )
                experiment = next(iter(exps))
            if experiment not in exps:
                raise InvalidArgument(
                    f"experiment {experiment!r} not under {p}; it has {sorted(exps)}"
                )
            p = exps[experiment]
        files = sorted(str(f) for f in p.rglob("*.parquet"))
        if not files:
            raise InvalidArgument(f"no .parquet files under {p}")
    else:
        files = [str(p)]
    arm_ids: list[str] = []
    seen: dict[str, int] = {}
    feats: list[dict[str, Any]] = []
    active: list[bool] = []
    meta: dict[str, Any] = {}
    dims = set()
    kinds: set[str] = set()
    frags: list[tuple[str, int, int]] = []
    total = 0

    def add(a: str, f: Mapping[str, Any] | None = None, act: bool = True) -> None:
        if a not in seen:
            seen[a] = len(arm_ids)
            arm_ids.append(a)
            feats.append(dict(f or {}))
            active.append(act)
        elif f:
            feats[seen[a]] = dict(f)
            active[seen[a]] = act

    pfs = []
    for f in files:
        try:
            pf = pq.ParquetFile(f)
        except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
            raise InvalidArgument(f"{f}: not a readable Parquet file ({exc})") from None
        head = check_file(f, pf)
        dims.add(int(head["dim"]))
        for a in head.get("arms") or ():
            add(str(a["arm_id"]), a.get("features"), bool(a.get("active", True)))
        for key in ("experiment_id", "config", "source"):
            if head.get(key) is not None:
                meta[key] = head[key]
        md = pf.metadata
        for g in range(md.num_row_groups):
            frags.append((f, g, md.row_group(g).num_rows))
        total += md.num_rows
        pfs.append(pf)
    if len(dims) > 1:
        raise InvalidArgument(f"{p}: files disagree on the context dimension: {sorted(dims)}")
    for pf in pfs:  # arms only the rows name, in order of first appearance
        for batch in pf.iter_batches(batch_size=1 << 16, columns=["arms", "candidates"]):
            for name in ("arms", "candidates"):
                for a in pc.unique(pc.list_flatten(batch.column(name))).to_pylist():
                    if a is not None and a not in seen:
                        add(a)
        if "propensity_kind" in pf.schema_arrow.names:
            for batch in pf.iter_batches(batch_size=1 << 16, columns=["propensity_kind"]):
                kinds.update(k for k in pc.unique(batch.column(0)).to_pylist() if k)
    if len(kinds) > 1:
        raise InvalidArgument(f"{p}: decisions of more than one propensity_kind: {sorted(kinds)}")
    meta["active"] = tuple(active)
    meta["propensity_kind"] = kinds.pop() if kinds else _config_kind(meta)
    return LogFiles(
        str(p), "parquet", files, tuple(arm_ids), meta, dims.pop() if dims else 0,
        tuple(feats), total, frags,
    )  # fmt: skip


def _config_kind(meta: Mapping[str, Any]) -> str:
    cfg = meta.get("config")
    if isinstance(cfg, Mapping):
        return str(cfg.get("propensity_kind") or "first_slot")
    return "first_slot"


# ------------------------------------------------------------- JSON Lines
def _records(path: str) -> Iterator[dict[str, Any]]:
    from simulators.logs.jsonl import _open_text, _parse_lines

    f = _open_text(path, "r")
    try:
        yield from _parse_lines(f, path)
    finally:
        if f.name != "<stdin>":
            f.close()


def _open_jsonl(path: str) -> LogFiles:
    if path == "-":
        raise InvalidArgument("a chunked read needs a file, not stdin")
    head: dict[str, Any] | None = None
    arm_ids: list[str] = []
    seen: set[str] = set()
    dim = 0
    for rec in _records(path):
        kind = rec.get("type", "decision")
        if kind == "header":
            head = rec
            for a in rec.get("arms") or ():
                if str(a["arm_id"]) not in seen:
                    seen.add(str(a["arm_id"]))
                    arm_ids.append(str(a["arm_id"]))
        elif kind == "decision":
            if not dim:
                dim = len(rec.get("x") or ())
            for a in [*rec.get("arms", ()), *(rec.get("candidates") or ())]:
                if str(a) not in seen:
                    seen.add(str(a))
                    arm_ids.append(str(a))
    meta: dict[str, Any] = {}
    feats: tuple[dict[str, Any], ...] = ()
    if head is not None:
        meta = {k: head.get(k) for k in ("experiment_id", "config", "source")}
        by_arm = {str(a["arm_id"]): a for a in head.get("arms") or ()}
        feats = tuple(dict(by_arm.get(a, {}).get("features") or {}) for a in arm_ids)
        meta["active"] = tuple(bool(by_arm.get(a, {}).get("active", True)) for a in arm_ids)
        meta["_header"] = head
    return LogFiles(path, "jsonl", [path], tuple(arm_ids), meta, dim, feats)


def _jsonl_chunks(lf: LogFiles, rows: int) -> Iterator[BanditLog]:
    from simulators.logs.jsonl import from_records

    head = dict(lf.meta.get("_header") or {"type": "header"})
    old = {str(a["arm_id"]): a for a in head.get("arms") or ()}
    head["arms"] = [old.get(a, {"arm_id": a}) for a in lf.arm_ids]
    batch: list[dict[str, Any]] = []
    for rec in _records(lf.path):
        if rec.get("type", "decision") != "decision":
            continue
        batch.append(rec)
        if len(batch) == rows:
            yield from_records([head, *batch])
            batch = []
    if batch:
        yield from_records([head, *batch])
