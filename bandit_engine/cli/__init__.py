"""Command line: ``bandit-engine serve`` and a small gRPC client for the shell.

Client commands print the server's answer as JSON (the proto3 JSON mapping,
as grpcurl prints it). Features on the command line: ``name=value`` is a
categorical feature (``country=NL``), ``name:number`` a numeric one
(``nights:3``).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import grpc

from bandit_engine._exceptions import InvalidArgument
from bandit_engine.server.app import DEFAULT_RPC_WORKERS, NETWORK_RPC_WORKERS

DEFAULT_TARGET = "127.0.0.1:50051"

_POLICIES = ["beta_ts", "lin_ts_disjoint", "lin_ts_shared", "logistic_ts"]


def parse_features(items: Sequence[str]) -> tuple[dict[str, float], list[str]]:
    """Split ``name=value`` (categorical) and ``name:number`` (numeric) items."""
    numeric: dict[str, float] = {}
    categorical: list[str] = []
    for item in items:
        for part in filter(None, item.split(",")):
            if ":" in part and "=" not in part:
                name, _, value = part.partition(":")
                try:
                    numeric[name] = float(value)
                except ValueError:
                    raise InvalidArgument(f"numeric feature {part!r} must be name:number") from None
            else:
                categorical.append(part)
    return numeric, categorical


def _kafka(args: argparse.Namespace) -> Any:
    from bandit_engine.stream import KafkaSettings

    return KafkaSettings.from_env(
        args.kafka_bootstrap,
        partitions=args.partitions,
        group_id=args.group_id,
        decisions_topic=args.decisions_topic,
        feedback_topic=args.feedback_topic,
        deadletter_topic=args.deadletter_topic,
    )


def _mysql_dsn(args: argparse.Namespace) -> str | None:
    return args.mysql_dsn or os.environ.get("BANDIT_MYSQL_DSN") or None


def _at_least_one(text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"k={text!r} is not a whole number") from None
    if k < 1:
        raise argparse.ArgumentTypeError(f"k={k} must be at least 1")
    return k


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration(text: str) -> float:
    """Seconds from ``"90"``, ``"90s"``, ``"15m"``, ``"12h"`` or ``"7d"``."""
    t = text.strip().lower()
    unit = _UNITS.get(t[-1:], None)
    try:
        value = float(t[:-1] if unit is not None else t)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration (seconds, or a number with s, m, h or d)"
        ) from None
    seconds = value * (unit or 1.0)
    if not (math.isfinite(seconds) and seconds >= 0):
        raise argparse.ArgumentTypeError(f"duration {text!r} must be finite and >= 0")
    return seconds


def cpu_list(text: str) -> tuple[int, ...]:
    """``--cpus``: ``"0"``, ``"0-1"``, ``"0,2"`` (``cpus.parse_cpus``)."""
    from bandit_engine.server.cpus import parse_cpus

    try:
        return parse_cpus(text)
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _learn(args: argparse.Namespace) -> int:
    from bandit_engine.store import MySQLStore
    from bandit_engine.store.mysql import redact
    from bandit_engine.stream.learner import run_learner

    kafka = _kafka(args)
    dsn = _mysql_dsn(args)
    if kafka is None or dsn is None:
        raise InvalidArgument(
            "bandit-engine learn needs --kafka-bootstrap (BANDIT_KAFKA_BOOTSTRAP) and "
            "--mysql-dsn (BANDIT_MYSQL_DSN)"
        )
    logging.getLogger("bandit_engine").info(
        "learner: Kafka %s group %s, MySQL %s", kafka.bootstrap, kafka.group_id, redact(dsn)
    )
    run_learner(
        MySQLStore(dsn),
        kafka,
        commit_interval=args.commit_interval,
        lateness=args.lateness,
        orphan_grace=args.orphan_grace,
        fetch_max_wait_ms=args.fetch_max_wait_ms,
        group_instance_id=args.group_instance_id
        or os.environ.get("BANDIT_KAFKA_GROUP_INSTANCE_ID")
        or None,
        metrics_port=args.metrics_port,
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bandit_engine.core.config import Limits
    from bandit_engine.server import ServerSettings, create_server, stop_server
    from bandit_engine.server.security import TLSConfig, load_tokens

    kafka = _kafka(args)
    settings = ServerSettings(
        host=args.host,
        port=args.port,
        state_dir=None if args.state_dir == ":memory:" else args.state_dir,
        seed=None if args.seed < 0 else args.seed,
        max_workers=args.workers,
        limits=Limits(max_candidates=args.max_candidates, max_features=args.max_features),
        checkpoint_interval=args.checkpoint_interval,
        log_retention=args.log_retention,
        mysql_dsn=_mysql_dsn(args),
        kafka=kafka,
        learner=not args.no_learner,
        refresh_interval=args.refresh_interval,
        tokens=load_tokens(args.auth_tokens),
        tls=TLSConfig(
            Path(args.tls_cert),
            Path(args.tls_key),
            Path(args.tls_client_ca) if args.tls_client_ca else None,
        )
        if args.tls_cert or args.tls_key
        else None,
        max_concurrent_rpcs=args.max_concurrent_rpcs,
        metrics_port=args.metrics_port,
        reuseport=args.reuseport,
        cpus=args.cpus,
    )
    if (args.tls_cert is None) != (args.tls_key is None):
        raise InvalidArgument("--tls-cert and --tls-key go together")
    if kafka is not None and args.log_retention:
        logging.getLogger("bandit_engine").warning(
            "--log-retention is ignored in Kafka mode: the log is in Kafka (topic retention.ms)"
        )
    server, port, engine = create_server(settings)
    server.start()
    log = logging.getLogger("bandit_engine")
    from bandit_engine.store.mysql import redact

    state = redact(settings.mysql_dsn) if settings.mysql_dsn else settings.state_dir
    mode = "embedded log"
    if kafka is not None:
        mode = f"Kafka {kafka.bootstrap}" + ("" if settings.learner else ", no learner")
    log.info(
        "bandit-engine serving on %s:%d (state: %s; %s); health and reflection on",
        args.host,
        port,
        state or "memory only",
        mode,
    )
    print(f"bandit-engine listening on {args.host}:{port}", flush=True)
    done = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: draining", signum)
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    done.wait()
    stop_server(server, engine, args.grace)
    log.info("stopped; state checkpointed")
    return 0


def _client(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf import json_format

    from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
    from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc

    if args.tls_ca:
        from pathlib import Path

        creds = grpc.ssl_channel_credentials(
            root_certificates=Path(args.tls_ca).read_bytes(),
            private_key=Path(args.tls_key).read_bytes() if args.tls_key else None,
            certificate_chain=Path(args.tls_cert).read_bytes() if args.tls_cert else None,
        )
        channel = grpc.secure_channel(args.target, creds)
    else:
        channel = grpc.insecure_channel(args.target)
    token = args.token or os.environ.get("BANDIT_TOKEN")
    if token:
        channel = grpc.intercept_channel(channel, _BearerAuth(token))
    stub = pb_grpc.BanditServiceStub(channel)
    cmd = args.command

    def ctx_msg() -> Any:
        numeric, categorical = parse_features(args.feature or [])
        dense = [float(v) for v in args.dense.split(",")] if args.dense else []
        return pb.Features(dense=dense, numeric=numeric, categorical=categorical)

    if cmd == "create-experiment":
        spec = pb.ExperimentSpec(
            experiment_id=args.experiment_id,
            policy=pb.PolicyKind.Value(args.policy.upper()),
            dim=args.dim,
            dense_dim=args.dense_dim,
            no_intercept=args.no_intercept,
        )
        for name in (
            "reward_min",
            "reward_max",
            "reward_window_seconds",
            "default_reward",
            "decay",
            "prior_precision",
            "noise_scale",
            "prior_alpha",
            "prior_beta",
            "propensity_draws",
            "joint_dim",
        ):
            value = getattr(args, name)
            if value is not None:
                setattr(spec, name, value)
        reply = stub.CreateExperiment(pb.CreateExperimentRequest(spec=spec), timeout=args.timeout)
    elif cmd == "experiments":
        reply = stub.ListExperiments(pb.ListExperimentsRequest(), timeout=args.timeout)
    elif cmd == "experiment":
        reply = stub.GetExperiment(
            pb.GetExperimentRequest(experiment_id=args.experiment_id), timeout=args.timeout
        )
    elif cmd == "add-arms":
        arms = []
        for spec_str in args.arms:
            arm_id, _, feats = spec_str.partition(":")
            numeric, categorical = parse_features([feats] if feats else [])
            arms.append(
                pb.ArmSpec(
                    arm_id=arm_id,
                    features=pb.Features(numeric=numeric, categorical=categorical),
                )
            )
        reply = stub.AddArms(
            pb.AddArmsRequest(experiment_id=args.experiment_id, arms=arms), timeout=args.timeout
        )
    elif cmd == "retire-arm":
        reply = stub.RetireArm(
            pb.RetireArmRequest(experiment_id=args.experiment_id, arm_id=args.arm_id),
            timeout=args.timeout,
        )
    elif cmd == "arm":
        req = pb.GetArmRequest(experiment_id=args.experiment_id, arm_id=args.arm_id)
        if args.feature or args.dense:
            req.context.CopyFrom(ctx_msg())
        reply = stub.GetArm(req, timeout=args.timeout)
    elif cmd == "arms":
        reply = stub.ListArms(
            pb.ListArmsRequest(experiment_id=args.experiment_id, include_retired=args.all),
            timeout=args.timeout,
        )
    elif cmd == "recommend":
        reply = stub.Recommend(
            pb.RecommendRequest(
                experiment_id=args.experiment_id,
                context=ctx_msg(),
                candidates=args.candidate or [],
                k=args.k,
            ),
            timeout=args.timeout,
        )
    elif cmd == "feedback":
        req = pb.FeedbackRequest(event_id=args.event_id, arm_id=args.arm_id, reward=args.reward)
        if args.timestamp is not None:
            req.timestamp = args.timestamp
        reply = stub.Feedback(req, timeout=args.timeout)
    elif cmd == "health":
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
        )
    else:  # pragma: no cover - argparse guards this
        raise SystemExit(f"unknown command {cmd!r}")
    print(
        json_format.MessageToJson(
            reply,
            preserving_proto_field_name=True,
            indent=2,
            always_print_fields_with_no_presence=True,
        )
    )
    return 0


class _JsonFormatter(logging.Formatter):
    """Structured logs: one JSON object per record, times in UTC."""

    converter = time.gmtime  # type: ignore[assignment]

    def format(self, record: logging.LogRecord) -> str:
        import json

        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


class _BearerAuth(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Adds ``authorization: Bearer <token>`` to every call."""

    def __init__(self, token: str) -> None:
        self._md = ("authorization", f"Bearer {token}")

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        md = [*(details.metadata or []), self._md]
        return continuation(_Details(details, md), request)


class _Details:
    def __init__(self, d: Any, metadata: list[tuple[str, str]]) -> None:
        self.method = d.method
        self.timeout = d.timeout
        self.metadata = metadata
        self.credentials = d.credentials
        self.wait_for_ready = getattr(d, "wait_for_ready", None)
        self.compression = getattr(d, "compression", None)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bandit-engine", description=__doc__.split("\n")[0])
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="json: one JSON object per line (time, level, logger, message)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def services(c: argparse.ArgumentParser) -> None:
        g = c.add_argument_group("production services (default: embedded SQLite and log)")
        g.add_argument("--mysql-dsn", help="mysql://user:pw@host:port/db (env BANDIT_MYSQL_DSN)")
        g.add_argument(
            "--kafka-bootstrap", help="host:port[,host:port] (env BANDIT_KAFKA_BOOTSTRAP)"
        )
        g.add_argument("--partitions", type=int, help="partitions of new topics (default 4)")
        g.add_argument("--group-id", help="learner consumer group (default bandit-learner)")
        g.add_argument("--decisions-topic", help="default bandit.decisions")
        g.add_argument("--feedback-topic", help="default bandit.feedback")
        g.add_argument("--deadletter-topic", help="default bandit.deadletter")

    s = sub.add_parser("serve", help="run the gRPC server (embedded defaults)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=50051)
    s.add_argument(
        "--state-dir",
        default=".bandit-state",
        help="folder of the SQLite state file; ':memory:' keeps nothing",
    )
    s.add_argument("--seed", type=int, default=0, help="random seed; -1 for fresh entropy")
    s.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"RPC worker threads (default: {DEFAULT_RPC_WORKERS} in embedded mode with SQLite, "
        f"where handlers wait only on the GIL; {NETWORK_RPC_WORKERS} with MySQL or Kafka, where a "
        "Feedback waits on the network)",
    )
    s.add_argument(
        "--cpus",
        type=cpu_list,
        default=None,
        help="pin the server process to these CPUs, e.g. 0 or 0-1 or 0,2 (Linux); default: "
        "unpinned. One pinned process per core is the fastest layout (README)",
    )
    s.add_argument("--max-candidates", type=int, default=10_000)
    s.add_argument("--max-features", type=int, default=1_024)
    s.add_argument(
        "--checkpoint-interval",
        type=float,
        default=10.0,
        help="seconds between posterior snapshots (default 10)",
    )
    s.add_argument(
        "--log-retention",
        type=duration,
        default=0.0,
        metavar="DURATION",
        help="delete decisions closed longer ago than this (e.g. 7d, 12h), with their "
        "rewards, from the SQLite or MySQL log; default 0: keep everything "
        "(not in Kafka mode: set the topics' retention.ms instead)",
    )
    s.add_argument("--grace", type=float, default=5.0, help="drain time on SIGTERM")
    s.add_argument(
        "--auth-tokens",
        metavar="FILE",
        help="bearer tokens, 'TOKEN SCOPE[,SCOPE]' per line (scopes: serve, admin); "
        "env BANDIT_AUTH_TOKENS_FILE or BANDIT_AUTH_TOKENS; default: no auth",
    )
    s.add_argument("--tls-cert", metavar="PEM", help="server certificate (turns TLS on)")
    s.add_argument("--tls-key", metavar="PEM", help="server private key")
    s.add_argument(
        "--tls-client-ca",
        metavar="PEM",
        help="require client certificates signed by this CA (mutual TLS)",
    )
    s.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus /metrics on this port (same host); default off",
    )
    s.add_argument(
        "--max-concurrent-rpcs",
        type=int,
        default=None,
        help="RPCs in flight at once; more are refused with RESOURCE_EXHAUSTED",
    )
    s.add_argument(
        "--no-learner",
        action="store_true",
        help="Kafka mode: serve only; posteriors refresh from MySQL",
    )
    s.add_argument(
        "--reuseport",
        action="store_true",
        help="Kafka mode: let several server processes share --port (SO_REUSEPORT), "
        "e.g. one per core",
    )
    s.add_argument(
        "--refresh-interval",
        type=float,
        default=0.5,
        help="Kafka mode: seconds between posterior refreshes (default 0.5)",
    )
    services(s)
    s.set_defaults(func=_serve)

    lrn = sub.add_parser("learn", help="run a learner only (Kafka + MySQL)")
    lrn.add_argument(
        "--commit-interval",
        type=float,
        default=0.1,
        help="seconds between MySQL commits (default 0.1)",
    )
    lrn.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus /metrics (lag, commits, latency) on 127.0.0.1:PORT",
    )
    lrn.add_argument(
        "--lateness",
        type=float,
        default=2.0,
        help="seconds a window stays open past its deadline, for log lag (default 2)",
    )
    lrn.add_argument(
        "--orphan-grace",
        type=float,
        default=10.0,
        help="seconds a reward waits for its decision before unknown_event (default 10)",
    )
    lrn.add_argument(
        "--fetch-max-wait-ms",
        type=int,
        default=20,
        help="longest a fetch waits at the head of the log (default 20, for latency); a "
        "broker whose storage reads take longer than that (Tansu over S3) may answer every "
        "fetch empty: raise it there (500 is aiokafka's default)",
    )
    lrn.add_argument(
        "--group-instance-id",
        default=None,
        help="a stable name for this learner replica (env BANDIT_KAFKA_GROUP_INSTANCE_ID; "
        "Kafka static membership): restarted under the same name, it takes its partitions "
        "back without waiting for the old session to time out (here 6 s after a SIGKILL "
        "instead of 11). Two live learners must never share one",
    )
    services(lrn)
    lrn.set_defaults(func=_learn)

    def client(name: str, help_: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_)
        c.add_argument(
            "--target", default=DEFAULT_TARGET, help=f"server (default {DEFAULT_TARGET})"
        )
        c.add_argument("--timeout", type=float, default=10.0, help="deadline in seconds")
        c.add_argument("--token", help="bearer token (env BANDIT_TOKEN)")
        c.add_argument("--tls-ca", metavar="PEM", help="CA to verify the server (turns TLS on)")
        c.add_argument("--tls-cert", metavar="PEM", help="client certificate (mutual TLS)")
        c.add_argument("--tls-key", metavar="PEM", help="client private key (mutual TLS)")
        c.set_defaults(func=_client)
        return c

    def features(c: argparse.ArgumentParser) -> None:
        c.add_argument(
            "-f",
            "--feature",
            action="append",
            help="context feature: name=value (categorical) or name:number",
        )
        c.add_argument("--dense", help="dense context, comma-separated floats")

    c = client("create-experiment", "create an experiment")
    c.add_argument("experiment_id")
    c.add_argument("--policy", choices=_POLICIES, default="lin_ts_disjoint")
    c.add_argument("--dim", type=int, default=16, help="context dimension d (default 16)")
    c.add_argument("--dense-dim", type=int, default=0)
    c.add_argument("--no-intercept", action="store_true")
    c.add_argument("--joint-dim", type=int)
    c.add_argument("--reward-min", type=float)
    c.add_argument("--reward-max", type=float)
    c.add_argument(
        "--window",
        dest="reward_window_seconds",
        type=float,
        help="reward window in seconds (default 3600)",
    )
    c.add_argument("--default-reward", type=float)
    c.add_argument("--decay", type=float)
    c.add_argument("--prior-precision", type=float)
    c.add_argument("--noise-scale", type=float)
    c.add_argument("--prior-alpha", type=float)
    c.add_argument("--prior-beta", type=float)
    c.add_argument("--propensity-draws", type=int)
    client("experiments", "list experiments")
    c = client("experiment", "show one experiment")
    c.add_argument("experiment_id")
    c = client("add-arms", "add arms: ARM or ARM:country=FR,stars:4.5")
    c.add_argument("experiment_id")
    c.add_argument("arms", nargs="+")
    c = client("retire-arm", "retire an arm")
    c.add_argument("experiment_id")
    c.add_argument("arm_id")
    c = client("arm", "an arm's posterior summary")
    c.add_argument("experiment_id")
    c.add_argument("arm_id")
    features(c)
    c = client("arms", "list arms")
    c.add_argument("experiment_id")
    c.add_argument("--all", action="store_true", help="include retired arms")
    c = client("recommend", "rank arms for a context")
    c.add_argument("experiment_id")
    features(c)
    c.add_argument("-c", "--candidate", action="append", help="eligible arm (repeat)")
    c.add_argument(
        "-k",
        type=_at_least_one,
        default=1,
        help="how many arms to return (default 1; the API reads 0 as unset, so 0 is refused here)",
    )
    c = client("feedback", "report a reward")
    c.add_argument("event_id")
    c.add_argument("arm_id")
    c.add_argument("reward", type=float)
    c.add_argument("--timestamp", type=float)
    c = client("health", "gRPC health check")
    c.add_argument("--service", default="")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler()
    if args.log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    try:
        return int(args.func(args))
    except InvalidArgument as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        import grpc

        if isinstance(exc, grpc.RpcError):
            print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
