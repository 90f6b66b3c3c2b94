"""The streaming estimators as a Spark job (local[2]) give the single-machine
result on the same Parquet log. Skipped with the reason without pyspark or
Java, except under CI=true, where that fails (tests/services.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ope_logs import rich_log

from bandit_engine import InvalidArgument
from simulators import logs, offline_cli
from simulators.estimators.streaming import LocalRunner, StreamSettings, evaluate_stream
from simulators.replay import policy_for_log


def _run(lf: logs.LogFiles, runner: Any) -> dict[tuple[str, str], float]:
    policies = [
        ("uniform", "uniform"),
        ("lin_ts_disjoint", policy_for_log(lf.empty(), "lin_ts_disjoint", {})),
        ("beta_ts", policy_for_log(lf.empty(), "beta_ts", {})),
    ]
    cfg = StreamSettings(draws=50, seed=4, n_boot=50, train_frac=0.3)
    res = evaluate_stream(lf, policies, cfg, runner)
    assert res.behaviour is not None
    out = {(e.policy, e.estimator): e.value for e in res.estimates}
    out[("logged", "on-policy")] = res.behaviour.value
    return out


def test_spark_equals_the_single_machine_run(spark_master: str, tmp_path: Path) -> None:
    from simulators.estimators.spark import SparkRunner

    log = rich_log(1500, arms=6, dim=4, seed=8, step_s=200.0)
    # several files and row groups: units spread over both executors
    logs.write_parquet(log, str(tmp_path / "pq"), row_group_rows=100)
    lf = logs.open_log(tmp_path / "pq")
    assert len(lf.fragments) > 8
    local = _run(lf, LocalRunner(lf, rows=333))
    runner = SparkRunner(spark_master, lf)
    try:
        spark = _run(lf, runner)
        with pytest.raises(InvalidArgument, match="progressive"):
            evaluate_stream(lf, [("u", "uniform")], StreamSettings(learn=True), runner)
    finally:
        runner.close()
    assert set(spark) == set(local) and len(local) == 13  # 3 policies x 4 + logged
    worst = max(abs(spark[k] - local[k]) / abs(local[k]) for k in local)
    assert worst <= 1e-9, worst
    # the command line: --spark MASTER --log DIR
    out = tmp_path / "spark.json"
    args = ["evaluate", "--spark", spark_master, "--log", str(tmp_path / "pq"), "--policy",
            "lin_ts_disjoint", "--draws", "50", "--seed", "4", "--n-boot", "50",
            "--train-frac", "0.3", "--quiet", "--out", str(out)]  # fmt: skip
    assert offline_cli.main(args) == 0
    got = json.loads(out.read_text())
    assert got["settings"]["streaming"] == "spark"
    for e in got["results"]:
        want = local[("lin_ts_disjoint", e["estimator"])]
        assert abs(e["value"] - want) <= 1e-9 * abs(want)


def test_spark_refuses_a_json_lines_log(spark_master: str, tmp_path: Path) -> None:
    from simulators.estimators.spark import SparkRunner

    logs.write_jsonl(rich_log(10), tmp_path / "l.jsonl")
    with pytest.raises(InvalidArgument, match="reads Parquet logs"):
        SparkRunner(spark_master, logs.open_log(tmp_path / "l.jsonl"))
