"""Logged bandit feedback: the in-memory ``BanditLog`` and its file format.

Every offline tool (replay, the off-policy estimators, the CLI) works on one
structure, ``BanditLog``: one row per decision, arrays throughout, arms as
indices into ``arm_ids``. Sources fill it:

- ``from_store``: the engine's own decision + reward log from any
  ``bandit_engine.store.Store`` (SQLite state dir, or MySQL);
- ``read_jsonl``: the documented export format (``simulators.logs.jsonl``),
  which a Kafka or MySQL exporter can write without this package;
- ``read_log`` / ``iter_log_chunks``: either format, JSON Lines or Parquet
  partitions (``simulators.logs.parquet``, pyarrow, the ``research``
  extra), whole or in chunks of bounded size;
- ``simulators.obd``: the Open Bandit Dataset sample;
- ``SyntheticWorld.sample``: logs with a known truth, for tests.

The parts: ``bandit_log`` (``BanditLog``), ``jsonl`` (the export format,
documented there), ``stores`` (``from_store``, ``open_store``) and
``synthetic`` (``SyntheticWorld``, ``uniform_stream``).
"""

from __future__ import annotations

from pathlib import Path

from simulators.logs.bandit_log import SOURCES, BanditLog
from simulators.logs.jsonl import FORMAT, VERSION, from_records, read_jsonl, write_jsonl
from simulators.logs.reader import LogFiles, iter_log_chunks, open_log, read_log
from simulators.logs.stores import LogSource, from_store, open_store
from simulators.logs.synthetic import SyntheticWorld, uniform_stream

__all__ = [
    "FORMAT",
    "SOURCES",
    "VERSION",
    "BanditLog",
    "LogFiles",
    "LogSource",
    "SyntheticWorld",
    "from_records",
    "from_store",
    "iter_log_chunks",
    "open_log",
    "open_store",
    "read_jsonl",
    "read_log",
    "uniform_stream",
    "write_jsonl",
    "write_parquet",
]


def write_parquet(
    log: BanditLog,
    out_dir: str | Path,
    *,
    source: str = "",
    tag: str | None = None,
    row_group_rows: int = 65536,
) -> list[Path]:
    """``simulators.logs.parquet.write_parquet``: ``log`` as Parquet partitions
    under ``out_dir`` (imported on use: pyarrow is an optional dependency)."""
    from simulators.logs.parquet import write_parquet as write

    return write(log, out_dir, source=source, tag=tag, row_group_rows=row_group_rows)
