"""The archiver keeps Parquet partitions of the joined log up to date from
the Kafka topics: open decisions wait for their final join, each decision is
written once, a re-run adds only what is new, and the result is the log a
full read of the topics gives."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ope_logs import assert_same

from bandit_engine import Context, ExperimentConfig, InvalidArgument
from bandit_engine.client import BanditClient
from bandit_engine.server import ServerSettings, create_server, stop_server
from bandit_engine.store import MySQLStore
from bandit_engine.stream import KafkaSettings
from simulators import logs, offline_cli
from simulators.archive import Archiver
from simulators.kafka_log import KafkaLogSource


def _serve(mysql_dsn: str, kafka: KafkaSettings, n: int, first: bool) -> list[str]:
    settings = ServerSettings(
        port=0, state_dir=None, seed=3, mysql_dsn=mysql_dsn, kafka=kafka, learner=False
    )
    server, port, engine = create_server(settings)
    server.start()
    ids = []
    try:
        with BanditClient(f"127.0.0.1:{port}") as client:
            if first:
                client.create_experiment(
                    ExperimentConfig(
                        "k",
                        "lin_ts_disjoint",
                        dim=3,
                        dense_dim=2,
                        reward_max=5,
                        reward_window_s=600,
                    )
                )
                client.add_arms("k", list("abcd"))
            for i in range(n):
                d = client.recommend("k", Context(dense=(i / 10, -i / 7)), k=2)
                ids.append(d.event_id)
                if i % 3:
                    client.feedback(d.event_id, d.arm_ids[i % 2], i % 5)
    finally:
        stop_server(server, engine, 1.0)
    return ids


def test_archiver_writes_each_final_decision_once(
    kafka_settings: KafkaSettings, mysql_dsn: str, tmp_path: Path
) -> None:
    out = tmp_path / "archive"
    first = _serve(mysql_dsn, kafka_settings, 20, True)
    store = MySQLStore(mysql_dsn)
    arch = Archiver(store, kafka_settings, out, lateness=2.0)
    now = time.time()
    rep = arch.run(now=now)  # every window still open: nothing final
    assert rep.written == 0 and rep.open == 20 and not list(out.rglob("*.parquet"))
    later = now + 3600.0
    rep = arch.run(now=later)
    assert rep.written == 20 and rep.open == 0 and rep.files
    assert arch.run(now=later).written == 0  # nothing new: nothing added
    archived = logs.read_log(out)
    assert set(archived.event_id) == set(first)
    assert not np.isnan(archived.reward[:, :2]).any()  # every join final
    # the same log as a full read of the topics at that time
    full = logs.from_store(KafkaLogSource(MySQLStore(mysql_dsn), kafka_settings, now=later), "k")
    order = np.argsort([full.event_id.index(e) for e in archived.event_id])
    got = archived.select(order)
    for name in ("x", "shown", "propensity", "reward", "reward_raw", "reward_source", "scores"):
        np.testing.assert_array_equal(getattr(got, name), getattr(full, name), err_msg=name)
    # export-log reads the topics too, into Parquet (open decisions stay open there)
    exported = tmp_path / "export"
    code = offline_cli.main(
        ["export-log", "--mysql-dsn", mysql_dsn, "--kafka-bootstrap", kafka_settings.bootstrap,
         "--decisions-topic", kafka_settings.decisions_topic, "--feedback-topic",
         kafka_settings.feedback_topic, "--experiment", "k", "--format", "parquet",
         "--out", str(exported)]
    )  # fmt: skip
    assert code == 0
    assert sorted(logs.read_log(exported).event_id) == sorted(first)
    # new traffic: a re-run through the command line adds only it
    second = _serve(mysql_dsn, kafka_settings, 5, False)
    cmd = [sys.executable, "-m", "simulators", "archive", "--mysql-dsn", mysql_dsn,
           "--kafka-bootstrap", kafka_settings.bootstrap, "--decisions-topic",
           kafka_settings.decisions_topic, "--feedback-topic", kafka_settings.feedback_topic,
           "--out", str(out), "--lateness", "0"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote 0 decisions" in done.stderr and "5 still open" in done.stderr
    rep = Archiver(store, kafka_settings, out, lateness=0.0).run(now=time.time() + 3600.0)
    assert rep.written == 5
    again = logs.read_log(out)
    assert sorted(again.event_id) == sorted(first + second)
    assert_same(archived, again.select([again.event_id.index(e) for e in archived.event_id]))
    store.close()


def test_a_crashed_run_is_redone_without_duplicates(
    kafka_settings: KafkaSettings, mysql_dsn: str, tmp_path: Path
) -> None:
    out = tmp_path / "archive"
    ids = _serve(mysql_dsn, kafka_settings, 8, True)
    store = MySQLStore(mysql_dsn)
    later = time.time() + 3600.0
    Archiver(store, kafka_settings, out).run(now=later)
    state = (out / "_archive" / "state.json").read_text()
    # a run that wrote its files but died before its state: its files go
    stray = out / "experiment=k" / "date=2099-01-01" / "part-r00000001-0.parquet"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"half-written")
    rep = Archiver(store, kafka_settings, out).run(now=later)
    assert rep.written == 0 and not stray.exists()
    assert sorted(logs.read_log(out).event_id) == sorted(ids)
    assert state != (out / "_archive" / "state.json").read_text()  # the run number moved on
    store.close()


def test_an_archive_state_of_another_version_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "_archive" / "state.json"
    state.parent.mkdir(parents=True)
    arch = Archiver(None, KafkaSettings("127.0.0.1:1"), tmp_path)  # type: ignore[arg-type]
    assert arch.load_state()["run"] == 0  # no state yet: a first run
    state.write_text('{"version": 99}')
    with pytest.raises(InvalidArgument, match="archive state version 99"):
        arch.load_state()
    state.write_text("{not json")
    with pytest.raises(InvalidArgument, match="unreadable archive state"):
        arch.load_state()
    with pytest.raises(InvalidArgument, match="lateness=-1"):
        Archiver(None, KafkaSettings("127.0.0.1:1"), tmp_path, lateness=-1)  # type: ignore[arg-type]
