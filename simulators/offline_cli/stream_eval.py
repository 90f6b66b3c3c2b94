"""``evaluate`` on a log read in chunks (Parquet, ``--stream``) or by Spark (``--spark``)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from simulators.offline_cli.output import Progress
from simulators.offline_cli.sources import build_policy, log_name, policy_specs

__all__ = ["evaluate_streaming"]


def evaluate_streaming(args: argparse.Namespace) -> int:
    from simulators import logs
    from simulators.estimators.streaming import LocalRunner, StreamSettings, evaluate_stream
    from simulators.offline_cli.commands import _meta, report_evaluation

    if not getattr(args, "log", None):
        raise SystemExit("--stream and --spark read an exported log: give --log PATH")
    lf = logs.open_log(args.log, experiment=getattr(args, "experiment", None))
    empty = lf.empty()
    name = log_name(args.log, empty)
    frac = 0.5 if args.train_frac is None else args.train_frac
    pr = Progress("evaluate", quiet=args.quiet)
    runner: Any
    if args.spark:
        from simulators.estimators.spark import SparkRunner

        runner = SparkRunner(args.spark, lf)
        pr.note(f"{name}: Spark at {args.spark}, {len(lf.fragments)} row groups")
    else:
        runner = LocalRunner(
            lf,
            rows=args.chunk_rows,
            progress=lambda label: Progress(label, "rows", quiet=args.quiet),
        )
    pr.note(
        f"{name}: {lf.kind} log, {lf.rows if lf.rows is not None else '?'} rows, "
        f"{len(lf.arm_ids)} arms, dim {lf.dim}; in chunks of {args.chunk_rows}"
    )
    policies: list[tuple[str, Any]] = []
    for spec in policy_specs(args, empty, ["uniform", "$served"]):
        policies.append((spec, "uniform" if spec == "uniform" else build_policy(empty, spec, None)))
    settings = StreamSettings(
        names=tuple(n.strip() for n in args.estimators.split(",")) if args.estimators else None,
        learn=args.mode == "progressive",
        draws=args.draws,
        seed=args.seed,
        folds=args.folds,
        lam=args.ridge,
        n_boot=args.n_boot,
        alpha=args.alpha,
        train_frac=frac,
        chunk_rows=args.chunk_rows,
    )
    t0 = time.monotonic()
    try:
        res = evaluate_stream(lf, policies, settings, runner, note=pr.note)
    finally:
        close = getattr(runner, "close", None)
        if close is not None:
            close()
    pr.note(f"{name}: {res.rows} rows in {time.monotonic() - t0:.1f}s")
    assert res.behaviour is not None
    models = {}
    if res.reward_model is not None:
        models = {label: dict(res.reward_model) for label, _ in policies}
    report_evaluation(
        args,
        name,
        {"rows": res.rows, "rows_rewarded": res.complete, "arms": len(lf.arm_ids),
         "dim": lf.dim, "uniform_logging": res.uniform, "meta": _meta(empty)},
        {"n_train": res.n_train, "n_eval": res.n_eval, "bootstrap": "Poisson",
         "streaming": "spark" if args.spark else "local", "chunk_rows": args.chunk_rows},
        res.behaviour,
        res.estimates,
        models,
        res.overlap,
    )  # fmt: skip
    return 0
