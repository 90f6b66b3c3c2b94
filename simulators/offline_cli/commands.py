"""The offline commands: evaluate, replay, export-log and obd-info."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bandit_engine import InvalidArgument
from simulators.offline_cli.output import Progress, clean, format_table, lift, slug, write_json
from simulators.offline_cli.sources import build_policy, load_source, policy_specs

__all__ = [
    "cmd_archive",
    "cmd_evaluate",
    "cmd_export",
    "cmd_obd_info",
    "cmd_replay",
    "report_evaluation",
    "streaming_source",
]


def cmd_evaluate(args: argparse.Namespace) -> int:
    from simulators import estimators as est

    if getattr(args, "spark", None) or streaming_source(args):
        from simulators.offline_cli.stream_eval import evaluate_streaming

        return evaluate_streaming(args)
    log, name = load_source(args)
    full = log.complete()
    dropped = log.n - full.n
    frac = 0.5 if args.train_frac is None else args.train_frac
    train, test = full.split(frac) if frac > 0 else (None, full)
    pr = Progress("evaluate", quiet=args.quiet)
    pr.note(
        f"{name}: {full.n} rows with rewards ({dropped} without), {log.n_arms} arms, "
        f"dim {log.dim}; training on {0 if train is None else train.n}, "
        f"evaluating on {test.n}"
    )
    names = [n.strip() for n in args.estimators.split(",")] if args.estimators else None
    behaviour = _behaviour(test, args)
    results: list[est.Estimate] = []
    models: dict[str, dict[str, float]] = {}
    overlap: dict[str, dict[str, float]] = {}
    uniform = test.is_uniform()
    for spec in policy_specs(args, log, ["uniform", "$served"]):
        t0 = time.monotonic()
        if spec == "uniform":
            target = est.uniform_target(test, seed=args.seed)
        else:
            policy = build_policy(log, spec, train)
            target = est.policy_target(
                policy,
                test,
                draws=args.draws,
                seed=args.seed,
                learn=args.mode == "progressive",
                name=spec,
                progress=Progress(f"pi({spec})", "rows", quiet=args.quiet),
            )
        wanted = [n for n in (names or est.ESTIMATORS) if n != "logged"]
        if "replay" in wanted and not uniform:
            wanted.remove("replay")
        terms = est.OPETerms.build(
            test,
            target,
            reward_model="dm" in wanted or "dr" in wanted,
            folds=args.folds,
            lam=args.ridge,
            seed=args.seed,
        )
        results.extend(
            est.estimate(
                terms,
                wanted,
                policy=target.name,
                n_boot=args.n_boot,
                alpha=args.alpha,
                seed=args.seed,
            )
        )
        fit = terms.model
        if fit is not None:
            models[spec] = fit.summary()
        overlap[spec] = terms.diagnostics()
        pr.note(
            f"{spec}: done in {time.monotonic() - t0:.1f}s"
            + (
                ""
                if fit is None
                else f" (reward model: ridge {fit.lam:g}, cross-fitted "
                f"MSE {fit.mse:.5g} vs {fit.mse_constant:.5g} for the mean)"
            )
        )
    report_evaluation(
        args,
        name,
        {**full.summary(), "meta": _meta(log)},
        {"n_train": 0 if train is None else train.n, "n_eval": test.n, "bootstrap": "multinomial"},
        behaviour,
        results,
        models,
        overlap,
    )
    return 0


def report_evaluation(
    args: argparse.Namespace,
    name: str,
    source: dict[str, Any],
    extra: dict[str, Any],
    behaviour: Any,
    results: list[Any],
    models: dict[str, dict[str, float]],
    overlap: dict[str, dict[str, float]],
) -> None:
    """The evaluate command's table, notes, JSON and plot."""
    frac = 0.5 if args.train_frac is None else args.train_frac
    n_eval = extra["n_eval"]
    rows = [_row(behaviour, "-")]
    rows += [_row(e, lift(e.value, behaviour.value)) for e in results]
    print(
        f"{name}: {n_eval} rows, {int(100 * (1 - args.alpha))}% percentile "
        f"{extra['bootstrap']} bootstrap ({args.n_boot} resamples), mode={args.mode}, "
        f"train_frac={frac}"
    )
    print(
        format_table(["policy", "estimator", "value", "ci_low", "ci_high", "n", "vs logged"], rows)
    )
    print()
    print(
        format_table(
            ["policy", "mean weight", "max weight", "effective n"],
            [[p, d["mean_weight"], d["max_weight"], round(d["ess"])] for p, d in overlap.items()],
        )
    )
    for note in dict.fromkeys(f"{e.estimator}: {e.note}" for e in results if e.note):
        print(f"({note})")
    if args.out:
        write_json(
            args.out,
            clean(
                {
                    "command": "evaluate",
                    "source": {"name": name, **source},
                    "settings": {
                        "mode": args.mode,
                        "train_frac": frac,
                        **extra,
                        "n_boot": args.n_boot,
                        "alpha": args.alpha,
                        "seed": args.seed,
                        "draws": args.draws,
                        "folds": args.folds,
                        "ridge": args.ridge,
                    },
                    "reward_models": models,
                    "overlap": overlap,
                    "behaviour": behaviour.to_dict(),
                    "results": [e.to_dict() for e in results],
                }
            ),
        )
    if args.plot_dir:
        from simulators.offline_plots import estimator_comparison

        path = estimator_comparison(
            results,
            Path(args.plot_dir) / f"evaluate-{slug(name)}.png",
            title=f"{name}: off-policy estimates ({n_eval} rows)",
            behaviour=behaviour,
        )
        print(f"wrote {path}", file=sys.stderr)


def streaming_source(args: argparse.Namespace) -> bool:
    """Whether evaluate reads its log in chunks: a Parquet log, or --stream."""
    if not getattr(args, "log", None):
        return False
    p = Path(args.log)
    return bool(getattr(args, "stream", False)) or p.is_dir() or p.suffix == ".parquet"


def _behaviour(test: Any, args: argparse.Namespace) -> Any:
    """The logging policy's own mean reward on the evaluation rows, with its interval."""
    from simulators import estimators as est

    p = test.logged_propensity
    (e,) = est.estimate(
        est.OPETerms(test.logged_reward, p, p),
        ["logged"],
        policy="logged policy",
        n_boot=args.n_boot,
        alpha=args.alpha,
        seed=args.seed,
    )
    return est.Estimate(e.policy, "on-policy", e.value, e.ci_low, e.ci_high, e.n, e.n_boot, e.alpha)


def _row(e: Any, *extra: Any) -> list[Any]:
    return [e.policy, e.estimator, e.value, e.ci_low, e.ci_high, e.n, *extra]


def _meta(log: Any) -> dict[str, Any]:
    return {
        k: v
        for k, v in log.meta.items()
        if k in ("source", "experiment_id", "features", "behavior", "campaign")
    }


def cmd_replay(args: argparse.Namespace) -> int:
    from simulators import estimators as est
    from simulators.replay import replay

    log, name = load_source(args)
    full = log.complete()
    frac = 0.0 if args.train_frac is None else args.train_frac
    train, test = full.split(frac) if frac > 0 else (None, full)
    uniform = test.is_uniform()
    if not uniform and not args.allow_nonuniform:
        print(
            f"{name}: not uniformly logged, so replay is biased; use `evaluate` "
            "(IPS/SNIPS/DR), or pass --allow-nonuniform",
            file=sys.stderr,
        )
        return 2
    pr = Progress("replay", quiet=args.quiet)
    pr.note(
        f"{name}: replaying {test.n} events over {log.n_arms} arms (dim {log.dim}), "
        f"learn={not args.no_learn}"
    )
    behaviour = _behaviour(test, args)
    results = []
    estimates = []
    for spec in policy_specs(args, log, ["$served"]):
        policy = build_policy(log, spec, train)
        res = replay(
            policy,
            test,
            seed=args.seed,
            learn=not args.no_learn,
            allow_nonuniform=args.allow_nonuniform,
            progress=Progress(f"replay {spec}", quiet=args.quiet),
        )
        e = res.estimate(n_boot=args.n_boot, alpha=args.alpha, seed=args.seed)
        label = "replay" if res.learn else "replay (fixed)"
        e = est.Estimate(spec, label, e.value, e.ci_low, e.ci_high, e.n, e.n_boot, e.alpha)
        results.append(res)
        estimates.append(e)
    rows = [_row(behaviour, "-", None)]
    rows += [
        _row(e, lift(e.value, behaviour.value), r.events_per_s)
        for e, r in zip(estimates, results, strict=True)
    ]
    print(
        f"{name}: {test.n} events, {'uniform' if uniform else 'NON-UNIFORM'} logging, "
        f"{int(100 * (1 - args.alpha))}% bootstrap over accepted events, seed {args.seed}"
    )
    print(
        format_table(
            ["policy", "estimator", "value", "ci_low", "ci_high", "n", "vs logged", "events/s"],
            rows,
        )
    )
    if args.out:
        write_json(
            args.out,
            clean(
                {
                    "command": "replay",
                    "source": {"name": name, **full.summary(), "meta": _meta(log)},
                    "settings": {
                        "learn": not args.no_learn,
                        "train_frac": frac,
                        "seed": args.seed,
                        "n_boot": args.n_boot,
                        "alpha": args.alpha,
                        "n_eval": test.n,
                    },
                    "behaviour": behaviour.to_dict(),
                    "results": [
                        {
                            **e.to_dict(),
                            "accepted": r.n_matched,
                            "events": r.n_events,
                            "events_per_s": r.events_per_s,
                            "fast_path": r.fast,
                            "accepted_rows": r.matched.tolist(),
                        }
                        for e, r in zip(estimates, results, strict=True)
                    ],
                }
            ),
        )
    if args.plot_dir:
        from simulators.offline_plots import replay_curves

        path = replay_curves(
            results,
            Path(args.plot_dir) / f"replay-{slug(name)}.png",
            title=f"{name}: replay ({test.n} logged events)",
            behaviour=behaviour.value,
            labels=[e.policy for e in estimates],
        )
        print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from simulators import logs

    log, name = load_source(args)
    if args.closed_only:
        closed = ~np.isnan(np.where(log.shown >= 0, log.reward, 0.0)).any(axis=1)
        log = log.select(closed)
    source = log.meta.get("source", "")
    if getattr(args, "format", "jsonl") == "parquet":
        out = args.out or f"{slug(name)}-parquet"
        if out == "-":
            raise InvalidArgument("--format parquet writes a directory, not stdout")
        if not log.meta.get("experiment_id"):
            log = log.select(np.arange(log.n))
            log.meta["experiment_id"] = name
        files = logs.write_parquet(log, out, source=source)
        print(f"wrote {log.n} decisions of {name} to {len(files)} file(s) under {out}",
              file=sys.stderr)  # fmt: skip
        return 0
    out = args.out or f"{slug(name)}.jsonl"
    n = logs.write_jsonl(log, out, source=source)
    if out != "-":
        print(f"wrote {n} decisions of {name} to {out}", file=sys.stderr)
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    from bandit_engine.store import MySQLStore
    from bandit_engine.stream import KafkaSettings
    from simulators.archive import Archiver

    settings = KafkaSettings(
        args.kafka_bootstrap,
        decisions_topic=args.decisions_topic,
        feedback_topic=args.feedback_topic,
    )
    store = MySQLStore(args.mysql_dsn)
    try:
        rep = Archiver(store, settings, args.out, lateness=args.lateness).run()
    finally:
        store.close()
    print(
        f"run {rep.run}: wrote {rep.written} decisions in {len(rep.files)} file(s) under "
        f"{args.out}; {rep.open} still open, {rep.orphans} orphan feedback, "
        f"{rep.skipped} of unknown experiments",
        file=sys.stderr,
    )
    return 0


def cmd_obd_info(args: argparse.Namespace) -> int:
    from simulators import obd

    return obd.info(args.data_dir)
