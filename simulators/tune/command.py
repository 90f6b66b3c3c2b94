"""``python -m simulators tune``: its options, the table it prints and its JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from bandit_engine import InvalidArgument
from simulators.offline_cli.output import Progress, clean, format_table, lift, write_json
from simulators.offline_cli.sources import add_source, load_source, parse_policy
from simulators.tune.grid import MAX_SETTINGS, build_settings, parse_grid, served_setting
from simulators.tune.runs import OPE, SettingResult, TuneOptions, TuneResult, run_tune

__all__ = ["add_tune_parser", "cmd_tune", "payload"]

DESCRIPTION = """\
Evaluate a grid of policy settings on an experiment's logged decisions and
recommend one. Each setting is scored off-policy (IPS, SNIPS, DM, DR with the
logged propensities; warm-started on the first --train-frac of the log, scored
on the rest) and, when the log is uniformly logged, by replay (Li et al. 2011).
The table is ranked by --estimator, next to the logging policy's own value;
the recommendation says whether the best setting's interval separates it from
the current one (the served experiment's settings, or the first --policy).

  python -m simulators tune --state-dir .bandit-state --experiment trips \\
      --grid noise_scale=0.05,0.1,0.25 --grid prior_precision=0.1,1,10
"""


def add_tune_parser(subparsers: Any, guarded: Any) -> None:
    """Register ``tune`` on an argparse subparsers object; ``guarded`` wraps its command."""
    p = subparsers.add_parser(
        "tune",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="rank a grid of policy settings on the logged decisions and recommend one",
        description=DESCRIPTION,
    )
    add_source(p)
    p.add_argument(
        "--policy",
        action="append",
        metavar="KIND[:key=value,...]",
        help="policy kind to tune (repeatable), optionally with fixed settings; default: "
        "the experiment's own (served), or lin_ts_disjoint for a log without a header",
    )
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="values of one constructor parameter (repeatable; the settings are every "
        "combination); default: a grid per policy kind",
    )
    p.add_argument(
        "--estimator",
        default="snips",
        choices=(*OPE, "replay"),
        help="rank by this estimator (default snips; replay needs uniform logging)",
    )
    p.add_argument("--mode", choices=("fixed", "progressive"), default="progressive")
    p.add_argument(
        "--train-frac",
        type=float,
        default=0.5,
        help="warm-start each setting on this leading fraction of the log (default 0.5)",
    )
    p.add_argument(
        "--draws", type=int, default=300, help="posterior draws per row for propensities (300)"
    )
    p.add_argument("--folds", type=int, default=2, help="cross-fitting folds of the DM/DR model")
    p.add_argument("--ridge", type=float, default=None, help="fixed ridge of the reward model")
    p.add_argument(
        "--max-settings",
        type=int,
        default=MAX_SETTINGS,
        help=f"refuse grids with more settings (default {MAX_SETTINGS})",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--alpha", type=float, default=0.05, help="1 - interval level (default 0.05)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--out", metavar="JSON", help="also write the JSON to this file")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=guarded(cmd_tune))


def _specs(args: argparse.Namespace, served: tuple[str, dict[str, Any]] | None) -> list[Any]:
    out: list[tuple[str, dict[str, Any]]] = []
    for text in args.policy or ["served"]:
        _, kind, params = parse_policy(text)
        if kind is None:
            kind = served[0] if served else "lin_ts_disjoint"
        if kind == "uniform":
            raise InvalidArgument("--policy uniform has no settings to tune")
        if any(k == kind for k, _ in out):
            raise InvalidArgument(f"--policy {kind} is given twice")
        out.append((kind, params))
    return out


def cmd_tune(args: argparse.Namespace) -> int:
    grid = parse_grid(args.grid)
    log, name = load_source(args)
    served = served_setting(log.meta.get("config"))
    settings, grids = build_settings(
        _specs(args, served), grid, dim=log.dim, served=served, max_settings=args.max_settings
    )
    opts = TuneOptions(
        estimator=args.estimator,
        mode=args.mode,
        train_frac=args.train_frac,
        draws=args.draws,
        n_boot=args.n_boot,
        alpha=args.alpha,
        seed=args.seed,
        folds=args.folds,
        ridge=args.ridge,
    )
    pr = Progress("tune", quiet=args.quiet)
    pr.note(
        f"{name}: {log.n} rows, {log.n_arms} arms, dim {log.dim}; "
        f"{len(settings)} settings, ranked by {opts.estimator}"
    )
    result = run_tune(
        log,
        settings,
        opts,
        grids,
        note=pr.note,
        progress=lambda label: Progress(label, "rows", quiet=args.quiet),
    )
    data = payload(name, log, opts, grids, result)
    if args.json:
        print(json.dumps(data, indent=2, allow_nan=False))
    else:
        print(render(name, opts, result))
    if args.out:
        write_json(args.out, data)
    return 0


def _label(r: SettingResult, multi: bool) -> str:
    return r.setting.label(multi) + (" (current)" if r.setting.current else "")


def render(name: str, opts: TuneOptions, result: TuneResult) -> str:
    """The ranked table and the recommendation, as printed."""
    est = opts.estimator
    others = [n for n in ("ips", "snips", "dr", "replay") if n != est]
    if not result.uniform:
        others = [n for n in others if n != "replay"]
    multi = len({r.setting.kind for r in result.results}) > 1
    base = result.baseline
    rows: list[list[Any]] = [
        ["-", "logged policy (baseline)", base.value, base.ci_low, base.ci_high, "-"]
        + [None] * len(others)
        + [None]
    ]
    for i, r in enumerate(result.results, 1):
        e = r.estimates[est]
        rows.append(
            [i, _label(r, multi), e.value, e.ci_low, e.ci_high, lift(e.value, base.value)]
            + [r.value(n) for n in others]
            + [round(r.overlap["ess"])]
        )
    level = round(100 * (1 - opts.alpha))
    head = (
        f"{name}: {result.n_eval} rows scored ({result.n_train} for warm start), "
        f"mode={opts.mode}, {level}% bootstrap ({opts.n_boot} resamples), seed {opts.seed}; "
        f"ranked by {est}"
        + ("; replay: every row, each setting from its prior" if result.uniform else "")
    )
    table = format_table(
        ["rank", "setting", est, "ci_low", "ci_high", "vs logged", *others, "effective n"], rows
    )
    rec = result.recommendation
    lines = [head, table, "", f"recommendation: {rec.sentence}"]
    lines += [f"note: {n}" for n in rec.notes]
    return "\n".join(lines)


def _setting_dict(r: SettingResult, rank: int) -> dict[str, Any]:
    return {
        "rank": rank,
        "policy": r.setting.kind,
        "label": r.setting.label(),
        "grid": r.setting.values(),
        "params": r.setting.params,
        "current": r.setting.current,
        "estimates": {
            k: {"value": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high, "n": e.n}
            for k, e in r.estimates.items()
        },
        "overlap": r.overlap,
        "replay_accepted": r.accepted,
        "seconds": round(r.seconds, 3),
    }


def payload(
    name: str, log: Any, opts: TuneOptions, grids: dict[str, Any], result: TuneResult
) -> dict[str, Any]:
    """The JSON document of a run (documented in docs/research.md)."""
    rec = result.recommendation
    ranked = [_setting_dict(r, i) for i, r in enumerate(result.results, 1)]
    best = ranked[0]
    current = next(d for d in ranked if d["current"])
    diff = rec.difference
    return clean(
        {
            "command": "tune",
            "source": {"name": name, **log.complete().summary()},
            "options": {
                "estimator": opts.estimator,
                "mode": opts.mode,
                "train_frac": opts.train_frac,
                "n_train": result.n_train,
                "n_eval": result.n_eval,
                "draws": opts.draws,
                "n_boot": opts.n_boot,
                "alpha": opts.alpha,
                "seed": opts.seed,
                "folds": opts.folds,
                "ridge": opts.ridge,
                "uniform_logging": result.uniform,
            },
            "grid": {k: {p: list(v) for p, v in g.items()} for k, g in grids.items()},
            "baseline": result.baseline.to_dict(),
            "results": ranked,
            "recommendation": {
                "policy": best["policy"],
                "label": best["label"],
                "params": best["params"],
                "estimator": rec.estimator,
                "estimate": best["estimates"][rec.estimator],
                "current": {
                    "label": current["label"],
                    "params": current["params"],
                    "estimate": current["estimates"][rec.estimator],
                },
                "difference": None
                if diff is None
                else {"value": diff[0], "ci_low": diff[1], "ci_high": diff[2]},
                "verdict": rec.verdict,
                "notes": list(rec.notes),
                "sentence": rec.sentence,
            },
        }
    )
