"""Offline commands of ``python -m simulators``: replay, evaluate, tune, export-log, archive...

``add_parsers(subparsers)`` registers them on the package CLI; each sets
``func(args) -> int``. ``python -m simulators.offline_cli ...`` runs them
standalone. The parts: ``sources`` (data sources, policy specs),
``commands`` (what each command does) and ``output`` (progress, tables,
JSON); ``tune`` lives in ``simulators.tune``.

Data sources (every command but obd-info takes one):

    --obd random/all            the Open Bandit Dataset sample (make data)
    --log FILE.jsonl[.gz]       an export (see simulators.logs.jsonl), or a
          FILE.parquet / DIR        Parquet log (simulators.logs.parquet; evaluate
                                    reads it in chunks, or on Spark with --spark)
    --state-dir DIR --experiment ID   an engine's SQLite state, read directly

Policies: ``--policy SPEC`` (repeatable), SPEC = ``KIND[:key=value,...]``,
e.g. ``lin_ts_disjoint:noise_scale=0.1``; ``uniform`` is the uniform random
policy; ``served`` rebuilds the policy in the log's header (engine logs),
with the same ``:key=value`` overrides.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bandit_engine import BanditError
from simulators.offline_cli.commands import (
    cmd_archive,
    cmd_evaluate,
    cmd_export,
    cmd_obd_info,
    cmd_replay,
)
from simulators.offline_cli.output import format_table
from simulators.offline_cli.sources import add_policies, add_source

__all__ = ["add_parsers", "format_table", "main"]


def _guarded(fn: Any) -> Any:
    """Bad input and missing data end the command with a message and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except (BanditError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


def add_parsers(subparsers: Any) -> None:
    """Register replay, evaluate, tune, export-log and obd-info on an argparse subparsers object."""
    from simulators.tune.command import add_tune_parser  # here: it imports this package

    fmt = argparse.RawDescriptionHelpFormatter

    p = subparsers.add_parser(
        "evaluate",
        formatter_class=fmt,
        help="off-policy estimates (IPS, SNIPS, DM, DR, replay) of policies on a log",
        description="Estimate what each --policy would have earned on the logged traffic, "
        "with bootstrap intervals, next to what the logging policy earned.\n\n"
        "Each policy is warm-started on the first --train-frac of the log (default "
        "0.5) and then either frozen (--mode fixed) or also trained on each "
        "evaluation row after scoring it (--mode progressive).",
    )
    add_source(p)
    add_policies(p, "Default: uniform and the served policy (or lin_ts_disjoint).")
    p.add_argument(
        "--estimators",
        help="comma list of replay,ips,snips,dm,dr (default: all "
        "that apply; replay only on uniform logs)",
    )
    p.add_argument("--mode", choices=("fixed", "progressive"), default="fixed")
    p.add_argument(
        "--draws",
        type=int,
        default=1000,
        help="posterior draws per row for the policy's propensities (default 1000)",
    )
    p.add_argument("--folds", type=int, default=2, help="cross-fitting folds of the DM/DR model")
    p.add_argument(
        "--ridge",
        type=float,
        default=None,
        help="ridge penalty of the reward model (default: the best of "
        "0.1..1000 by cross-fitted error)",
    )
    s = p.add_argument_group("large logs (docs/research.md)")
    s.add_argument(
        "--stream",
        action="store_true",
        help="read the log in chunks, in bounded memory (always so for Parquet logs)",
    )
    s.add_argument(
        "--chunk-rows", type=int, default=16384, help="decisions per chunk (default 16384)"
    )
    s.add_argument(
        "--spark",
        metavar="MASTER",
        help="run the streaming estimators as a PySpark job (e.g. local[2], spark://host:7077) "
        "over a Parquet log's row groups",
    )
    _add_output(p)
    p.set_defaults(func=_guarded(cmd_evaluate))

    p = subparsers.add_parser(
        "replay",
        formatter_class=fmt,
        help="replay learning policies over a uniformly logged stream (Li et al. 2011)",
        description="Walk the log in order; when a policy's choice equals the logged arm, it "
        "earns the logged reward and learns from it. Needs uniform logging.",
    )
    add_source(p)
    add_policies(p, "Default: the served policy (or lin_ts_disjoint).")
    p.add_argument("--no-learn", action="store_true", help="keep each policy fixed")
    p.add_argument(
        "--allow-nonuniform",
        action="store_true",
        help="replay a non-uniform log anyway (the estimate is then biased)",
    )
    _add_output(p)
    p.set_defaults(func=_guarded(cmd_replay))

    add_tune_parser(subparsers, _guarded)

    from simulators.slate.cli import add_slate_parser

    add_slate_parser(subparsers, _guarded)

    p = subparsers.add_parser(
        "export-log",
        formatter_class=fmt,
        help="write a decision + reward log as JSON Lines or Parquet partitions",
        description="Export an engine experiment's decisions joined with their rewards "
        "(or an OBD log) in the formats documented in simulators/logs/jsonl.py, "
        "simulators/logs/parquet.py and docs/research.md.",
    )
    add_source(p)
    p.add_argument(
        "--out",
        help="output file (.jsonl, .jsonl.gz or - for stdout); with --format parquet the "
        "directory of the partitions experiment=ID/date=YYYY-MM-DD/",
    )
    p.add_argument(
        "--format",
        choices=("jsonl", "parquet"),
        default="jsonl",
        help="JSON Lines (default) or Parquet partitions (needs pyarrow: the research extra)",
    )
    p.add_argument(
        "--closed-only",
        action="store_true",
        help="only decisions whose every shown arm has its reward",
    )
    p.set_defaults(func=_guarded(cmd_export))

    p = subparsers.add_parser(
        "archive",
        formatter_class=fmt,
        help="keep Parquet partitions of the joined log up to date from the Kafka topics",
        description="Append the decisions whose reward join is final (deadline + lateness "
        "passed) to OUT/experiment=ID/date=DAY/, reading the topics from where the last run "
        "stopped (OUT/_archive/state.json). See simulators/archive.py and docs/research.md.",
    )
    p.add_argument("--mysql-dsn", required=True, help="the engine's MySQL (experiments, arms)")
    p.add_argument("--kafka-bootstrap", "--bootstrap", required=True, metavar="HOST:PORT")
    p.add_argument("--decisions-topic", default="bandit.decisions")
    p.add_argument("--feedback-topic", default="bandit.feedback")
    p.add_argument("--out", required=True, metavar="DIR", help="the archive directory")
    p.add_argument(
        "--lateness",
        type=float,
        default=2.0,
        help="seconds after a decision's deadline before its join is final (default 2)",
    )
    p.set_defaults(func=_guarded(cmd_archive))

    p = subparsers.add_parser("obd-info", help="summarise the Open Bandit Dataset sample")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=_guarded(cmd_obd_info))


def _add_output(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    g.add_argument("--alpha", type=float, default=0.05, help="1 - interval level (default 0.05)")
    g.add_argument("--out", metavar="JSON", help="write the results as JSON")
    g.add_argument("--plot-dir", metavar="DIR", help="write a PNG plot there")
    g.add_argument("--quiet", action="store_true", help="no progress on stderr")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.offline_cli", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_parsers(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))
