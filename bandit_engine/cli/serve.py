"""``bandit-engine serve`` and ``bandit-engine learn``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import Any

from bandit_engine._exceptions import InvalidArgument
from bandit_engine.cli.args import cpu_list, duration, kafka_settings, mysql_dsn
from bandit_engine.server.app import DEFAULT_RPC_WORKERS, NETWORK_RPC_WORKERS

__all__ = ["add_learn", "add_serve"]


def run_learn(args: argparse.Namespace) -> int:
    from bandit_engine.store import MySQLStore, redact
    from bandit_engine.stream.learner import run_learner

    kafka = kafka_settings(args)
    dsn = mysql_dsn(args)
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
        snapshot_parts=args.snapshot_parts,
        absorb_interval=args.absorb_interval,
    )
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bandit_engine.core import Limits
    from bandit_engine.server import ServerSettings, create_server, stop_server
    from bandit_engine.server.security import TLSConfig, load_tokens

    kafka = kafka_settings(args)
    token_names: dict[str, str] = {}
    settings = ServerSettings(
        host=args.host,
        port=args.port,
        state_dir=None if args.state_dir == ":memory:" else args.state_dir,
        seed=None if args.seed < 0 else args.seed,
        max_workers=args.workers,
        limits=Limits(
            max_candidates=args.max_candidates,
            max_features=args.max_features,
            max_challengers=args.max_challengers,
            sweep_chunk=args.sweep_chunk,
        ),
        checkpoint_interval=args.checkpoint_interval,
        log_retention=args.log_retention,
        mysql_dsn=mysql_dsn(args),
        kafka=kafka,
        learner=not args.no_learner,
        refresh_interval=args.refresh_interval,
        tokens=load_tokens(args.auth_tokens, names=token_names),
        token_names=token_names,
        tls=TLSConfig(
            Path(args.tls_cert),
            Path(args.tls_key),
            Path(args.tls_client_ca) if args.tls_client_ca else None,
        )
        if args.tls_cert or args.tls_key
        else None,
        max_concurrent_rpcs=args.max_concurrent_rpcs,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        http_port=args.http_port or None,
        http_host=args.http_host,
        reuseport=args.reuseport,
        cpus=args.cpus,
    )
    if not 0 <= args.http_port <= 65535:
        raise InvalidArgument(f"--http-port {args.http_port} must be in 0..65535 (0: off)")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise InvalidArgument("--tls-cert and --tls-key go together")
    if kafka is not None and args.log_retention:
        logging.getLogger("bandit_engine").warning(
            "--log-retention is ignored in Kafka mode: the log is in Kafka (topic retention.ms)"
        )
    server, port, engine = create_server(settings)
    if args.gc_freeze:  # start-up is over: later full collections skip its heap
        from bandit_engine.server.gc_pauses import freeze_heap

        freeze_heap()  # before serving: no call waits for its collection
    server.start()
    log = logging.getLogger("bandit_engine")
    from bandit_engine.store import redact

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
    dashboard = getattr(server, "dashboard", None)
    if dashboard is not None:
        print(f"dashboard on {dashboard.url}", flush=True)
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


def _services(c: argparse.ArgumentParser) -> None:
    g = c.add_argument_group("production services (default: embedded SQLite and log)")
    g.add_argument("--mysql-dsn", help="mysql://user:pw@host:port/db (env BANDIT_MYSQL_DSN)")
    g.add_argument("--kafka-bootstrap", help="host:port[,host:port] (env BANDIT_KAFKA_BOOTSTRAP)")
    g.add_argument("--partitions", type=int, help="partitions of new topics (default 4)")
    g.add_argument("--group-id", help="learner consumer group (default bandit-learner)")
    g.add_argument("--decisions-topic", help="default bandit.decisions")
    g.add_argument("--feedback-topic", help="default bandit.feedback")
    g.add_argument("--deadletter-topic", help="default bandit.deadletter")


def add_serve(sub: Any) -> None:
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
        "unpinned. One pinned process per core is the fastest layout (docs/operations.md)",
    )
    s.add_argument("--max-candidates", type=int, default=10_000)
    s.add_argument(
        "--max-challengers", type=int, default=4, help="challengers per experiment (default 4)"
    )
    s.add_argument("--max-features", type=int, default=1_024)
    s.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="do not freeze the start-up heap out of the garbage collector's full "
        "collections (frozen by default: they pause every RPC thread)",
    )
    s.add_argument(
        "--sweep-chunk",
        type=int,
        default=32,
        help="expired reward windows closed per hold of an experiment's lock (default 32; "
        "0: all at once)",
    )
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
        help="bearer tokens, 'TOKEN SCOPE[,SCOPE] [name=NAME]' per line (scopes: serve, "
        "admin, metrics; NAME: who admin changes are recorded under); "
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
        help="serve Prometheus /metrics on this port; default off",
    )
    s.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address /metrics binds (default 127.0.0.1); with --auth-tokens a scrape needs "
        "a token of scope metrics or admin, with --tls-cert it is HTTPS",
    )
    s.add_argument(
        "--http-port",
        type=int,
        default=0,
        help="serve the web dashboard on this port (docs/dashboard.md); default 0: off",
    )
    s.add_argument(
        "--http-host",
        default="127.0.0.1",
        help="address the dashboard binds (default 127.0.0.1); with --auth-tokens it needs a "
        "token of scope admin or metrics (admin to promote), with --tls-cert it is HTTPS",
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
    _services(s)
    s.set_defaults(func=run_serve)


def add_learn(sub: Any) -> None:
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
    lrn.add_argument(
        "--no-snapshot-parts",
        dest="snapshot_parts",
        action="store_false",
        help="learners that share the partitions take turns on each experiment's snapshot "
        "row, instead of storing their evidence beside it (the default)",
    )
    lrn.add_argument(
        "--absorb-interval",
        type=float,
        default=0.25,
        help="seconds between absorbing the evidence stored beside the snapshots, by the "
        "learner that holds partition 0 (default 0.25)",
    )
    _services(lrn)
    lrn.set_defaults(func=run_learn)
