"""The offline commands' inputs: data sources and policy specs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = [
    "add_policies",
    "add_source",
    "build_policy",
    "load_source",
    "log_name",
    "parse_policy",
    "policy_specs",
    "store_name",
]


def add_source(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    g = p.add_argument_group("data source (one of)")
    g.add_argument(
        "--obd",
        metavar="BEHAVIOUR/CAMPAIGN",
        help="Open Bandit Dataset log: random|bts / all|men|women, e.g. random/all",
    )
    g.add_argument(
        "--log",
        metavar="PATH",
        help="an exported log: .jsonl[.gz], a .parquet file or a directory of Parquet partitions",
    )
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
        log = logs.read_log(args.log, experiment=getattr(args, "experiment", None))
        return log, log_name(args.log, log)
    where = args.state_dir or args.mysql_dsn
    kafka = getattr(args, "kafka_bootstrap", None)
    if kafka and not args.mysql_dsn:
        raise SystemExit("--kafka-bootstrap needs --mysql-dsn (experiments and arms)")
    engine_store = logs.open_store(where)
    store: logs.LogSource = engine_store
    if kafka:
        from bandit_engine.stream import KafkaSettings
        from simulators.kafka_log import KafkaLogSource

        store = KafkaLogSource(
            engine_store,
            KafkaSettings(
                kafka, decisions_topic=args.decisions_topic, feedback_topic=args.feedback_topic
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
        if kafka:
            source = f"kafka:{kafka}+{source}"
        log = logs.from_store(store, exp, source=source)
    finally:
        store.close()
    return log, str(exp)


def log_name(path: str, log: Any = None) -> str:
    """A short name of a log file or Parquet directory."""
    p = Path(path)
    if log is not None and p.is_dir() and log.meta.get("experiment_id"):
        return str(log.meta["experiment_id"])
    return p.name.split(".")[0] or "log"


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


def add_policies(p: argparse.ArgumentParser, default_help: str) -> None:
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


def policy_specs(args: argparse.Namespace, log: Any, defaults: list[str]) -> list[str]:
    if args.policy:
        return list(args.policy)
    served = "served" if log.meta.get("config") else "lin_ts_disjoint"
    return [s if s != "$served" else served for s in defaults]


def build_policy(log: Any, spec: str, train: Any) -> Any:
    from simulators.replay import policy_for_log

    _, kind, params = parse_policy(spec)
    policy = policy_for_log(log, kind, params)
    if train is not None and train.n:
        arms, xs, rewards = train.training_events()
        if arms.shape[0]:
            policy.update_batch(arms, xs, rewards)
    return policy
