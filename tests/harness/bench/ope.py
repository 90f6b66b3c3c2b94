"""Bench section ``ope``: off-policy evaluation of large Parquet logs.

A synthetic engine log (100 arms, d = 33 with the intercept, 3 shown per
decision, first-slot propensities of a softmax logging policy, Bernoulli
rewards of a logistic model, two days of traffic) is written as Parquet
partitions in chunks; then, in a child process pinned to one core (numba
and BLAS single-threaded), ``python -m simulators evaluate`` on the whole
directory with ``--policy lin_ts_disjoint --estimators ips,snips,dr --draws
100`` (the streaming path, default chunks, 1000 Poisson resamples):

- ``ope_rows_per_s``: log rows / wall seconds of that evaluation (every pass:
  counting, warm-start on the first half, the reward model, the policy's
  propensities and the sums), 1,000,000 rows (``--quick``: 50,000);
- ``ope_peak_rss_mb_1m``: the child's peak resident memory in that run,
  ``VmHWM`` of ``/proc/self/status`` (not ``getrusage``'s ``ru_maxrss``:
  Linux carries the forking parent's peak over ``exec`` into it, and the
  parent has just generated the log);
- ``ope_spark_vs_local_max_rel_diff``: largest relative difference between
  the point estimates of a Spark ``local[2]`` run and a single-machine run
  of the streaming estimators (uniform and lin_ts_disjoint; ips, snips, dm,
  dr) on a 20,000-row log (``--quick``: 5,000). Absent, with the reason in
  the info, without pyspark or Java.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from simulators import logs
from simulators.logs import BanditLog

__all__ = ["DESCRIPTIONS", "TARGETS", "make_log", "run"]

ARMS, DIM, SHOWN, DRAWS = 100, 33, 3, 100
ROWS, QUICK_ROWS = 1_000_000, 50_000
SPARK_ROWS, QUICK_SPARK_ROWS = 20_000, 5_000
SEED = 20261205

TARGETS: dict[str, tuple[str, float]] = {
    "ope_rows_per_s": (">=", 20_000.0),
    "ope_peak_rss_mb_1m": ("<=", 600.0),
    "ope_spark_vs_local_max_rel_diff": ("<=", 1e-9),
}

_SETTING = (
    f"{ARMS} arms, d={DIM}, {SHOWN} shown, softmax logging; evaluate --policy lin_ts_disjoint "
    f"--estimators ips,snips,dr --draws {DRAWS} on a Parquet directory, one core"
)
DESCRIPTIONS: dict[str, str] = {
    "ope_rows_per_s": f"log rows per wall second through evaluate ({_SETTING}); {ROWS:,} rows "
    f"(--quick: {QUICK_ROWS:,})",
    "ope_peak_rss_mb_1m": f"peak RSS (MB) of the evaluate process on the {ROWS:,}-row log "
    "(VmHWM of /proc/self/status in the child)",
    "ope_spark_vs_local_max_rel_diff": "max |spark - local| / |local| over the point estimates "
    f"of Spark local[2] and the single-machine streaming run ({SPARK_ROWS:,} rows; uniform and "
    "lin_ts_disjoint; ips, snips, dm, dr)",
    "ope_eval_seconds": "wall seconds of the evaluation behind ope_rows_per_s",
    "ope_write_rows_per_s": "rows per second writing the synthetic log as Parquet (the "
    "generator included)",
    "ope_log_mb": "size of the Parquet log on disk (MB)",
}


def make_log(n: int, start: int, *, seed: int = SEED) -> BanditLog:
    """Rows ``start .. start + n`` of the synthetic log (each chunk seeded by
    its start, so a log written in chunks is the same whatever the chunking)."""
    world = np.random.default_rng(seed)
    theta = world.normal(0.0, 1.0, (ARMS, DIM)) / np.sqrt(DIM)
    theta[:, 0] = world.normal(-2.5, 0.5, ARMS)
    logger = world.normal(0.0, 1.0, (ARMS, DIM)) / np.sqrt(DIM)
    rng = np.random.default_rng([seed, start])
    x = rng.normal(0.0, 1.0, (n, DIM))
    x[:, 0] = 1.0
    s = x @ logger.T
    s -= s.max(axis=1, keepdims=True)
    soft = np.exp(s)
    soft /= soft.sum(axis=1, keepdims=True)
    gumbel = s - np.log(-np.log(rng.random((n, ARMS))))
    top = np.argpartition(-gumbel, SHOWN, axis=1)[:, :SHOWN]
    order = np.argsort(-np.take_along_axis(gumbel, top, axis=1), axis=1)
    shown = np.take_along_axis(top, order, axis=1).astype(np.int64)
    prop = np.take_along_axis(soft, shown, axis=1)
    ctr = 1.0 / (1.0 + np.exp(-np.einsum("nd,nkd->nk", x, theta[shown])))
    reward = (rng.random((n, SHOWN)) < ctr).astype(np.float64)
    ts = 1_796_000_000.0 + (start + np.arange(n, dtype=np.float64)) * (172_800.0 / ROWS)
    return BanditLog(
        arm_ids=tuple(f"item{j}" for j in range(ARMS)),
        x=x,
        shown=shown,
        propensity=prop,
        reward=reward,
        event_id=tuple(f"ev{start + i}" for i in range(n)),
        timestamp=ts,
        reward_source=np.ones((n, SHOWN), dtype=np.int8),
        reward_weight=np.ones((n, SHOWN)),
        meta={"experiment_id": "bench", "source": "harness.bench.ope"},
    )


def write_log(path: Path, rows: int, chunk: int = 100_000) -> float:
    """Write the log in chunks; returns rows per second."""
    t0 = time.perf_counter()
    for start in range(0, rows, chunk):
        part = make_log(min(chunk, rows - start), start)
        logs.write_parquet(part, str(path), tag=f"c{start:09d}")
    return rows / (time.perf_counter() - t0)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    return env


CHILD = """
import json, os, resource, sys, time
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
from simulators.offline_cli import main
t0 = time.perf_counter()
code = main(sys.argv[1:])
sec = time.perf_counter() - t0
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")]
rss = int(hwm[0].split()[1]) / 1024.0
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps({"code": code, "seconds": sec, "peak_rss_mb": rss, "ru_maxrss_mb": maxrss}),
      file=sys.stderr)
"""


def evaluate_child(path: Path, out: Path) -> dict[str, Any]:
    """``evaluate`` on ``path`` in a child pinned to one core."""
    argv = ["evaluate", "--log", str(path), "--policy", "lin_ts_disjoint", "--estimators",
            "ips,snips,dr", "--draws", str(DRAWS), "--quiet", "--out", str(out)]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *argv],
        capture_output=True, text=True, env=_child_env(), timeout=3600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"evaluate failed: {done.stderr[-2000:]}")
    stats: dict[str, Any] = json.loads(done.stderr.strip().splitlines()[-1])
    if stats["code"] != 0:
        raise RuntimeError(f"evaluate exited {stats['code']}: {done.stderr[-2000:]}")
    return stats


def spark_vs_local(path: Path) -> tuple[float | None, dict[str, Any]]:
    from simulators.estimators.spark import SparkRunner, spark_available
    from simulators.estimators.streaming import LocalRunner, StreamSettings, evaluate_stream
    from simulators.replay import policy_for_log

    why = spark_available()
    if why is not None:
        return None, {"spark": f"not measured: {why}"}
    lf = logs.open_log(path)
    cfg = StreamSettings(names=("ips", "snips", "dm", "dr"), draws=DRAWS, seed=1, n_boot=200)

    def once(runner: Any) -> dict[tuple[str, str], float]:
        pol = policy_for_log(lf.empty(), "lin_ts_disjoint", {})
        res = evaluate_stream(lf, [("uniform", "uniform"), ("lin_ts_disjoint", pol)], cfg, runner)
        return {(e.policy, e.estimator): e.value for e in res.estimates}

    t0 = time.perf_counter()
    local = once(LocalRunner(lf))
    t_local = time.perf_counter() - t0
    runner = SparkRunner("local[2]", lf)
    try:
        t0 = time.perf_counter()
        spark = once(runner)
        t_spark = time.perf_counter() - t0
    finally:
        runner.close()
    diffs = {f"{p}/{e}": abs(spark[(p, e)] - v) / abs(v) for (p, e), v in local.items()}
    return max(diffs.values()), {
        "spark_rel_diffs": diffs,
        "spark_local_seconds": round(t_local, 2),
        "spark_seconds": round(t_spark, 2),
        "spark_row_groups": len(lf.fragments),
    }


def run(quick: bool) -> tuple[dict[str, float], dict[str, Any]]:
    rows = QUICK_ROWS if quick else ROWS
    figures: dict[str, float] = {}
    info: dict[str, Any] = {"rows": rows, "seed": SEED, "setting": _SETTING}
    with tempfile.TemporaryDirectory(prefix="bench-ope-") as tmp:
        big = Path(tmp) / "log"
        figures["ope_write_rows_per_s"] = write_log(big, rows)
        figures["ope_log_mb"] = sum(f.stat().st_size for f in big.rglob("*.parquet")) / 2**20
        stats = evaluate_child(big, Path(tmp) / "eval.json")
        figures["ope_eval_seconds"] = stats["seconds"]
        figures["ope_rows_per_s"] = rows / stats["seconds"]
        key = "ope_peak_rss_mb_1m" if rows == ROWS else "ope_peak_rss_mb_quick"
        figures[key] = stats["peak_rss_mb"]
        info["child_ru_maxrss_mb"] = stats["ru_maxrss_mb"]
        info["evaluate"] = json.loads((Path(tmp) / "eval.json").read_text())["results"]
        small = Path(tmp) / "small"
        write_log(small, QUICK_SPARK_ROWS if quick else SPARK_ROWS, chunk=5_000)
        diff, extra = spark_vs_local(small)
        info.update(extra)
        if diff is not None:
            figures["ope_spark_vs_local_max_rel_diff"] = diff
    return figures, info
