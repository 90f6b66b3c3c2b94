"""Decision logs in Parquet: the schema round-trips every field, one reader
loads both formats whole or in chunks, export-log writes the partitions from
SQLite and MySQL, and the archiver keeps them up to date from Kafka."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ope_logs import assert_same, rich_log

from bandit_engine import Context, Engine, ExperimentConfig, InvalidArgument
from bandit_engine.store import SQLiteStore, Store
from simulators import logs, offline_cli
from simulators.logs.parquet import META_KEY, SCHEMA_VERSION


def _concat(chunks: list[logs.BanditLog], dest: Path) -> logs.BanditLog:
    """Chunks written back as one JSON Lines file and read whole."""
    recs: list[dict[str, object]] = []
    for c in chunks:
        recs.extend(logs.jsonl.records(c))
    head = logs.jsonl.header(chunks[0])
    return logs.from_records([head, *recs])


def test_parquet_round_trip_keeps_every_field(tmp_path: Path) -> None:
    log = rich_log(120, step_s=2000.0)
    files = logs.write_parquet(log, str(tmp_path))
    days = sorted({Path(str(f)).parent.name for f in files})
    assert len(days) > 1 and all(d.startswith("date=2023-11-") for d in days)
    assert {Path(str(f)).parent.parent.name for f in files} == {"experiment=exp%2F1"}
    back = logs.read_log(tmp_path)
    assert_same(log, back)
    assert back.meta["experiment_id"] == "exp/1" and back.meta["source"] == "test"
    # the context column is a fixed-size list of float64
    x_type = pq.read_schema(str(files[0])).field("x").type
    assert pa.types.is_fixed_size_list(x_type) and x_type.list_size == log.dim
    assert pa.types.is_float64(x_type.value_type)
    # and the first-slot kind too
    flog = rich_log(30, per_slot=False, seed=3, experiment="plain")
    logs.write_parquet(flog, str(tmp_path / "f"))
    assert_same(flog, logs.read_log(tmp_path / "f"))


@settings(max_examples=15, deadline=None)
@given(rows=st.integers(1, 70), seed=st.integers(0, 1000))
def test_chunks_of_any_size_make_the_whole_log(
    rows: int, seed: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("chunks")
    log = rich_log(57, seed=seed, step_s=3600.0 * 7)
    logs.write_parquet(log, str(tmp / "pq"))
    logs.write_jsonl(log, tmp / "log.jsonl")
    for path in (tmp / "pq", tmp / "log.jsonl"):
        chunks = list(logs.iter_log_chunks(path, rows=rows))
        assert all(0 < c.n <= rows for c in chunks)
        assert all(c.arm_ids == log.arm_ids for c in chunks)
        assert_same(log, _concat(chunks, tmp))


def test_one_reader_for_both_formats(tmp_path: Path) -> None:
    log = rich_log(40, seed=2)
    logs.write_jsonl(log, tmp_path / "l.jsonl.gz")
    logs.write_parquet(log, str(tmp_path / "pq"))
    a, b = logs.read_log(tmp_path / "l.jsonl.gz"), logs.read_log(tmp_path / "pq")
    assert_same(a, b)
    one = next((tmp_path / "pq").rglob("*.parquet"))
    assert logs.read_log(one).n == pq.ParquetFile(one).metadata.num_rows


def test_bad_parquet_is_refused_naming_the_problem(tmp_path: Path) -> None:
    log = rich_log(10, step_s=60.0)
    (f,) = logs.write_parquet(log, str(tmp_path / "ok"))
    table = pq.read_table(str(f))
    lacking = tmp_path / "lacking.parquet"
    pq.write_table(
        table.drop_columns(["propensities"]).replace_schema_metadata(table.schema.metadata), lacking
    )
    with pytest.raises(InvalidArgument, match=r"missing column\(s\) \['propensities'\]"):
        logs.read_log(lacking)
    newer = tmp_path / "newer.parquet"
    head = json.loads(table.schema.metadata[META_KEY])
    head["version"] = SCHEMA_VERSION + 1
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps(head).encode()}), newer)
    with pytest.raises(InvalidArgument, match=f"schema version {SCHEMA_VERSION + 1}"):
        logs.read_log(newer)
    other = tmp_path / "other.parquet"
    head["version"], head["format"] = 1, "someone-elses-log"
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps(head).encode()}), other)
    with pytest.raises(InvalidArgument, match="someone-elses-log"):
        logs.read_log(other)
    two = tmp_path / "two"
    logs.write_parquet(log, str(two))
    logs.write_parquet(rich_log(5, experiment="other"), str(two))
    with pytest.raises(InvalidArgument, match=r"experiments \['exp/1', 'other'\]"):
        logs.read_log(two)
    assert logs.read_log(two, experiment="other").n == 5
    with pytest.raises(InvalidArgument, match="'nope' not under"):
        logs.read_log(two, experiment="nope")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(InvalidArgument, match=r"junk\.parquet: not a readable Parquet file"):
        logs.read_log(junk)


# ----------------------------------------------------------- export-log
class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


def _serve(store: Store) -> None:
    """Slates of 1-3 over two days, per-slot propensities, some feedback,
    windows closed by a sweep, one decision left open."""
    clock = Clock()
    cfg = ExperimentConfig(
        "trips", policy="lin_ts_disjoint", dim=4, dense_dim=2, reward_max=5.0,
        reward_window_s=60.0, propensity_draws=100, propensity_kind="per_slot",
    )  # fmt: skip
    eng = Engine(store, seed=5, clock=clock)
    eng.create_experiment(cfg)
    eng.add_arms("trips", [("paris", {"numeric": {"price": 3.0}}), ("rome", None), ("oslo", None)])
    rng = np.random.default_rng(0)
    for i in range(30):
        cands = ("paris", "rome") if i % 4 == 0 else ()
        dec = eng.recommend("trips", Context(dense=[i % 3, rng.random()]), cands, 1 + i % 2)
        if i % 2 == 0:
            eng.feedback(dec.event_id, dec.arm_ids[0], float(i % 6))
        clock.t += 4000.0
    eng.sweep(now=clock.t + 1e6)
    eng.recommend("trips", Context(dense=[1.0, 0.5]), (), 2)  # still open
    eng.close()


@pytest.fixture(params=["sqlite", "mysql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    if request.param == "sqlite":
        _serve(SQLiteStore(tmp_path / "state" / "state.db"))
        return ["--state-dir", str(tmp_path / "state")]
    from bandit_engine.store import MySQLStore

    dsn = request.getfixturevalue("mysql_dsn")
    _serve(MySQLStore(dsn))
    return ["--mysql-dsn", dsn]


def test_export_log_writes_parquet_partitions(tmp_path: Path, where: list[str]) -> None:
    store = logs.open_store(where[1]) if where[0] == "--state-dir" else None
    if store is None:
        from bandit_engine.store import MySQLStore

        store = MySQLStore(where[1])
    direct = logs.from_store(store, "trips")
    store.close()
    out = tmp_path / "pq"
    code = offline_cli.main(["export-log", *where, "--format", "parquet", "--out", str(out)])
    assert code == 0
    dirs = sorted(p.relative_to(out).parent for p in out.rglob("*.parquet"))
    assert [d.parts[0] for d in dirs] == ["experiment=trips"] * len(dirs) and len(dirs) == 3
    back = logs.read_log(out)
    assert_same(direct, back)
    assert back.propensity_kind == "per_slot" and back.prefix_propensity is not None
    assert back.meta["config"] == direct.meta["config"]
    assert math.isnan(back.reward[-1, 0])  # the open decision stays open
    # the evaluate command reads the directory like a JSON Lines file
    assert (
        offline_cli.main(["export-log", "--log", str(out), "--out", str(tmp_path / "l.jsonl")]) == 0
    )
    assert_same(direct, logs.read_jsonl(tmp_path / "l.jsonl"))
