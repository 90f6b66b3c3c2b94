"""Offline commands of ``python -m simulators``: replay, evaluate, export-log, obd-info.

``add_parsers(subparsers)`` registers them on the package CLI; each sets
``func(args) -> int``. ``python -m simulators.offline_cli ...`` runs them
standalone.

Data sources (every command but obd-info takes one):

    --obd random/all            the Open Bandit Dataset sample (make data)
    --log FILE.jsonl[.gz]       an export (see simulators.logs)
    --state-dir DIR --experiment ID   an engine's SQLite state, read directly

Policies: ``--policy SPEC`` (repeatable), SPEC = ``KIND[:key=value,...]``,
e.g. ``lin_ts_disjoint:noise_scale=0.1``; ``uniform`` is the uniform random
policy; ``served`` rebuilds the policy in the log's header (engine logs),
with the same ``:key=value`` overrides.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bandit_engine import BanditError

__all__ = ["add_parsers", "format_table", "main"]

_T0 = time.monotonic()


# ------------------------------------------------------------------ output
class Progress:
    """Progress on stderr: silent for the first two seconds, then a line per second."""

    def __init__(self, label: str, unit: str = "events", quiet: bool = False) -> None:
        self.label = label
        self.unit = unit
        self.quiet = quiet
        self.t0 = time.monotonic()
        self.last = 0.0
        self.shown = False
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.quiet or now - self.t0 < 2.0 or (now - self.last < 1.0 and done < total):
            return
        self.last = now
        self.shown = True
        pct = 100.0 * done / total if total else 100.0
        width = 24
        fill = int(width * done / total) if total else width
        bar = "#" * fill + "." * (width - fill)
        rate = done / (now - self.t0)
        eta = (total - done) / rate if rate > 0 else 0.0
        line = (
            f"{self.label} [{bar}] {pct:5.1f}% {done}/{total} {self.unit} "
            f"{now - self.t0:5.1f}s eta {eta:4.0f}s"
        )
        end = "\r" if self.tty and done < total else "\n"
        print(line, end=end, file=sys.stderr, flush=True)

    def note(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "-"
        if abs(f) >= 1000:
            return f"{f:,.0f}"
        return f"{f:.5f}"
    return str(v)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table (numbers right-aligned)."""
    cells = [[_fmt(v) for v in r] for r in rows]
    numeric = [
        all(isinstance(r[c], (int, float, np.number)) or r[c] is None for r in rows)
        for c in range(len(columns))
    ]
    widths = [max([len(columns[c])] + [len(r[c]) for r in cells]) for c in range(len(columns))]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(widths[c]) if numeric[c] else v.ljust(widths[c]) for c, v in enumerate(vals)
        ).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _lift(value: float, base: float) -> str:
    if not (math.isfinite(value) and math.isfinite(base)) or base == 0:
        return "-"
    return f"{100.0 * (value / base - 1.0):+.1f}%"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "log"


def _write_json(path: str, payload: dict[str, Any]) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(payload, indent=2, allow_nan=False, default=_jsonable) + "\n")
    print(f"wrote {p}", file=sys.stderr)


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _clean(obj: Any) -> Any:
    """NaN -> None, recursively (JSON has no NaN)."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


# ----------------------------------------------------------------- sources
def _add_source(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    g = p.add_argument_group("data source (one of)")
    g.add_argument(
        "--obd",
        metavar="BEHAVIOUR/CAMPAIGN",
        help="Open Bandit Dataset log: random|bts / all|men|women, e.g. random/all",
    )
    g.add_argument("--log", metavar="FILE", help="an exported log (.jsonl or .jsonl.gz)")
    g.add_argument(
        "--state-dir", metavar="DIR", help="an engine state dir (DIR/state.db) or SQLite file"
    )
    g.add_argument(
        "--mysql-dsn", metavar="DSN", help="an engine's MySQL store, mysql://user:pw@host:port/db"
    )
    g.add_argument(
        "--kafka-bootstrap",
        metavar="HOST:PORT",
        help="with --mysql-dsn: read decisions and rewards from the engine's Kafka topics",
    )
    g.add_argument("--decisions-topic", default="bandit.decisions", help=argparse.SUPPRESS)
    g.add_argument("--feedback-topic", default="bandit.feedback", help=argparse.SUPPRESS)
    g.add_argument("--experiment", metavar="ID", help="experiment in --state-dir / --mysql-dsn")
    o = p.add_argument_group("OBD context vectors")
    o.add_argument("--obd-dir", default=None, help="where the sample is (default: data/obd)")
    o.add_argument("--dim", type=int, default=32, help="context dimension (default 32)")
    o.add_argument(
        "--affinity",
        choices=("hashed", "dense", "none"),
        default="hashed",
        help="user-item affinities as hashed features, the dense block, or not at all",
    )
    o.add_argument("--no-position", action="store_true", help="leave the slot out of the context")


def load_source(args: argparse.Namespace) -> tuple[Any, str]:
    """(BanditLog, a short name) from the source options."""
    from simulators import logs, obd

    given = [s for s in ("obd", "log", "state_dir", "mysql_dsn") if getattr(args, s, None)]
    if len(given) != 1:
        raise SystemExit("give exactly one data source: --obd, --log, --state-dir or --mysql-dsn")
    if args.obd:
        behavior, campaign = obd.parse_spec(args.obd)
        rounds = obd.load(behavior, campaign, args.obd_dir)
        log = rounds.to_log(args.dim, affinity=args.affinity, position=not args.no_position)
        return log, f"obd-{behavior}-{campaign}"
    if args.log:
        log = logs.read_jsonl(args.log)
        name = Path(args.log).name.split(".")[0]
        return log, name
    where = args.state_dir or args.mysql_dsn
    store = logs.open_store(where)
    if getattr(args, "kafka_bootstrap", None):
        if not args.mysql_dsn:
            raise SystemExit("--kafka-bootstrap needs --mysql-dsn (experiments and arms)")
        from bandit_engine.stream import KafkaSettings
        from simulators.kafka_log import KafkaLogSource

        store = KafkaLogSource(  # type: ignore[assignment]
            store,
            KafkaSettings(
                args.kafka_bootstrap,
                decisions_topic=args.decisions_topic,
                feedback_topic=args.feedback_topic,
            ),
        )
    try:
        exps = [e for e, _, _ in store.load_experiments()]
        exp = args.experiment
        if exp is None:
            if len(exps) != 1:
                raise SystemExit(f"--experiment needed; the store has {exps or 'none'}")
            exp = exps[0]
        source = f"sqlite:{args.state_dir}" if args.state_dir else f"mysql:{store_name(store)}"
        if getattr(args, "kafka_bootstrap", None):
            source = f"kafka:{args.kafka_bootstrap}+{source}"
        log = logs.from_store(store, exp, source=source)
    finally:
        store.close()
    return log, str(exp)


def store_name(store: Any) -> str:
    """A store's location without credentials."""
    return str(getattr(store, "dsn", getattr(store, "path", "")))


# ---------------------------------------------------------------- policies
def parse_policy(spec: str) -> tuple[str, str | None, dict[str, Any]]:
    """``"kind:a=1,b=x"`` -> (label, kind, params); kind None = the served config."""
    kind, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, raw = item.partition("=")
        if not eq:
            raise SystemExit(f"policy parameter {item!r} in {spec!r} must be key=value")
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw
    return spec, (None if kind == "served" else kind), params


def _add_policies(p: argparse.ArgumentParser, default_help: str) -> None:
    p.add_argument(
        "--policy",
        action="append",
        metavar="SPEC",
        help="KIND[:key=value,...] (repeatable); kinds: beta_ts, lin_ts_disjoint, "
        f"lin_ts_shared, logistic_ts, uniform, served. {default_help}",
    )
    p.add_argument(
        "--train-frac",
        type=float,
        default=None,
        help="warm-start each policy on this leading fraction of the log (all its "
        "logged events) and evaluate on the rest",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")


def _policy_specs(args: argparse.Namespace, log: Any, defaults: list[str]) -> list[str]:
    if args.policy:
        return list(args.policy)
    served = "served" if log.meta.get("config") else "lin_ts_disjoint"
    return [s if s != "$served" else served for s in defaults]


def _build_policy(log: Any, spec: str, train: Any) -> Any:
    from simulators.replay import policy_for_log

    _, kind, params = parse_policy(spec)
    policy = policy_for_log(log, kind, params)
    if train is not None and train.n:
        arms, xs, rewards = train.training_events()
        if arms.shape[0]:
            policy.update_batch(arms, xs, rewards)
    return policy


# ---------------------------------------------------------------- commands
def cmd_evaluate(args: argparse.Namespace) -> int:
    from simulators import estimators as est

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
    for spec in _policy_specs(args, log, ["uniform", "$served"]):
        t0 = time.monotonic()
        if spec == "uniform":
            target = est.uniform_target(test, seed=args.seed)
        else:
            policy = _build_policy(log, spec, train)
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
    rows = [_row(behaviour, "-")]
    rows += [_row(e, _lift(e.value, behaviour.value)) for e in results]
    print(
        f"{name}: {test.n} rows, {int(100 * (1 - args.alpha))}% percentile bootstrap "
        f"({args.n_boot} resamples), mode={args.mode}, train_frac={frac}"
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
    if any(e.estimator == "dm" for e in results):
        print(
            "(dm's interval holds the fitted reward model fixed: it leaves out the model's "
            "own error and its bias)"
        )
    if args.out:
        _write_json(
            args.out,
            _clean(
                {
                    "command": "evaluate",
                    "source": {"name": name, **full.summary(), "meta": _meta(log)},
                    "settings": {
                        "mode": args.mode,
                        "train_frac": frac,
                        "n_train": 0 if train is None else train.n,
                        "n_eval": test.n,
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
            Path(args.plot_dir) / f"evaluate-{_slug(name)}.png",
            title=f"{name}: off-policy estimates ({test.n} rows)",
            behaviour=behaviour,
        )
        print(f"wrote {path}", file=sys.stderr)
    return 0


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
    for spec in _policy_specs(args, log, ["$served"]):
        policy = _build_policy(log, spec, train)
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
        _row(e, _lift(e.value, behaviour.value), r.events_per_s)
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
        _write_json(
            args.out,
            _clean(
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
            Path(args.plot_dir) / f"replay-{_slug(name)}.png",
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
    out = args.out or f"{_slug(name)}.jsonl"
    source = log.meta.get("source", "")
    n = logs.write_jsonl(log, out, source=source)
    if out != "-":
        print(f"wrote {n} decisions of {name} to {out}", file=sys.stderr)
    return 0


def cmd_obd_info(args: argparse.Namespace) -> int:
    from simulators import obd

    return obd.info(args.data_dir)


# ------------------------------------------------------------------ parsers
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
    """Register replay, evaluate, export-log and obd-info on an argparse subparsers object."""
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
    _add_source(p)
    _add_policies(p, "Default: uniform and the served policy (or lin_ts_disjoint).")
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
    _add_output(p)
    p.set_defaults(func=_guarded(cmd_evaluate))

    p = subparsers.add_parser(
        "replay",
        formatter_class=fmt,
        help="replay learning policies over a uniformly logged stream (Li et al. 2011)",
        description="Walk the log in order; when a policy's choice equals the logged arm, it "
        "earns the logged reward and learns from it. Needs uniform logging.",
    )
    _add_source(p)
    _add_policies(p, "Default: the served policy (or lin_ts_disjoint).")
    p.add_argument("--no-learn", action="store_true", help="keep each policy fixed")
    p.add_argument(
        "--allow-nonuniform",
        action="store_true",
        help="replay a non-uniform log anyway (the estimate is then biased)",
    )
    _add_output(p)
    p.set_defaults(func=_guarded(cmd_replay))

    p = subparsers.add_parser(
        "export-log",
        formatter_class=fmt,
        help="write a decision + reward log as JSON Lines (the documented export format)",
        description="Export an engine experiment's decisions joined with their rewards "
        "(or an OBD log) in the format documented in simulators/logs.py and "
        "docs/research.md.",
    )
    _add_source(p)
    p.add_argument("--out", help="output file (.jsonl, .jsonl.gz or - for stdout)")
    p.add_argument(
        "--closed-only",
        action="store_true",
        help="only decisions whose every shown arm has its reward",
    )
    p.set_defaults(func=_guarded(cmd_export))

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


if __name__ == "__main__":
    sys.exit(main())
