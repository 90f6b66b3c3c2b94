"""The streaming estimators as a PySpark job: ``evaluate --spark MASTER``.

``SparkRunner`` is a runner of ``simulators.estimators.streaming``: the unit
of work is one row group of one Parquet file of the log (the driver lists
them from the footers, in the log's order). Each pass ships the chunk
function (the policy, the reward model, the row split) to the executors,
which read their row groups with pyarrow, compute the mergeable sums of
each (``simulators.estimators.sums``), merge them per Spark partition
(``mapPartitions``) and the driver reduces the partitions' sums with
``merge``. The per-row randomness is keyed by event id
(``simulators.estimators.rowseed``), so the sums are those of a local run;
only the order of the floating-point additions differs.

The executors read the files at the paths the driver sees: a local master,
or a cluster whose nodes mount the log at the same path. Warm-starting
(``--train-frac``) reads the training rows on the driver, in log order;
progressive mode learns row after row and is refused here.

Needs the ``spark`` extra (pyspark) and Java 17.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from bandit_engine import InvalidArgument
from simulators.logs import LogFiles

__all__ = ["SparkRunner", "spark_available"]


def spark_available() -> str | None:
    """None when pyspark and java are there; else what is missing."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install -e '.[spark]')"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no java on PATH and no JAVA_HOME (Spark needs Java 17)"
    return None


class SparkRunner:
    """Map a chunk function over a Parquet log's row groups on Spark."""

    parallel = True

    def __init__(
        self, master: str, log_files: LogFiles, *, slices: int | None = None, spark: Any = None
    ) -> None:
        if log_files.kind != "parquet":
            raise InvalidArgument(
                f"--spark reads Parquet logs; {log_files.path!r} is {log_files.kind} "
                "(export-log --format parquet converts it)"
            )
        missing = spark_available()
        if missing:
            raise InvalidArgument(f"--spark {master}: {missing}")
        # the executors run this interpreter (and so this package)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        self.own = spark is None
        if spark is None:
            from pyspark.sql import SparkSession

            spark = (
                SparkSession.builder.master(master)
                .appName("bandit-engine evaluate")
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .getOrCreate()
            )
            spark.sparkContext.setLogLevel("ERROR")
        self.spark = spark
        self.sc = spark.sparkContext
        self.lf = log_files
        self.units = [(i, f, g) for i, (f, g, _) in enumerate(log_files.fragments)]
        self.slices = max(1, min(len(self.units), slices or 4 * self.sc.defaultParallelism))
        self.total = log_files.rows

    def _rdd(self) -> Any:
        return self.sc.parallelize(self.units, self.slices)

    def map(self, fn: Any, label: str) -> list[Any]:
        """fn(unit, chunk) for every row group, in the log's order."""
        lf = self.lf

        def one(unit: tuple[int, str, int]) -> tuple[int, Any]:
            i, path, group = unit
            return i, fn(i, lf.fragment(path, group))

        return [r for _, r in sorted(self._rdd().map(one).collect(), key=lambda t: t[0])]

    def counts(self) -> list[int]:
        """Complete rows per row group, in the log's order."""
        lf = self.lf

        def one(unit: tuple[int, str, int]) -> tuple[int, int]:
            return unit[0], lf.fragment_count(unit[1], unit[2])

        return [c for _, c in sorted(self._rdd().map(one).collect(), key=lambda t: t[0])]

    def reduce(self, fn: Any, label: str) -> Any:
        """fn over every row group, merged per partition, then across them."""
        lf = self.lf

        def partition(units: Any) -> list[Any]:
            out = None
            for i, path, group in units:
                part = fn(i, lf.fragment(path, group))
                out = part if out is None else out.merge(part)
            return [] if out is None else [out]

        parts = self._rdd().mapPartitions(partition)
        if parts.isEmpty():
            return None
        return parts.reduce(lambda a, b: a.merge(b))

    def close(self) -> None:
        if self.own:
            self.spark.stop()
