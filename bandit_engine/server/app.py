"""Assembling a server: settings, the store and engine they name, the gRPC
server with health, reflection, security and metrics; and draining it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from bandit_engine._exceptions import InvalidArgument
from bandit_engine.core import Engine, Limits, Store
from bandit_engine.server.admission import AdmissionExecutor, AdmissionInterceptor
from bandit_engine.server.cpus import pin
from bandit_engine.server.health import HealthMonitor, HealthService
from bandit_engine.server.learner_thread import LearnerThread
from bandit_engine.server.metrics import Metrics
from bandit_engine.server.security import AuthInterceptor, TLSConfig, is_loopback
from bandit_engine.server.servicer import SERVICE_NAME, BanditServicer, add_servicer
from bandit_engine.server.warmup import warm_up
from bandit_engine.store import SQLiteStore
from bandit_engine.stream import KafkaEventLog, KafkaSettings

log = logging.getLogger(__name__)

__all__ = ["ServerSettings", "create_server", "open_engine", "open_store", "stop_server"]

#: RPC worker threads of a server by default (``ServerSettings.workers``).
#: In embedded mode with SQLite, handlers wait on nothing but the GIL, so
#: more threads only add hand-overs of it (docs/performance.md). Where a
#: Feedback waits on the network (MySQL's commit, or in Kafka mode the
#: broker's acknowledgement), 2 threads would let two Feedbacks hold up every
#: other call, so those modes take 16.
DEFAULT_RPC_WORKERS = 2
NETWORK_RPC_WORKERS = 16


@dataclass
class ServerSettings:
    """How to run the server. ``state_dir=None`` keeps state in memory only."""

    host: str = "127.0.0.1"
    port: int = 50051
    state_dir: str | Path | None = ".bandit-state"
    seed: int | None = 0
    #: RPC threads; None: 2 in embedded mode with SQLite, 16 with MySQL or
    #: Kafka, where a Feedback waits on the network (``DEFAULT_RPC_WORKERS``).
    max_workers: int | None = None

    @property
    def workers(self) -> int:
        """``max_workers``, or the default for this mode."""
        if self.max_workers is not None:
            return self.max_workers
        if self.mysql_dsn or self.kafka is not None:
            return NETWORK_RPC_WORKERS
        return DEFAULT_RPC_WORKERS

    limits: Limits = field(default_factory=Limits)
    max_message_bytes: int = 4 * 1024 * 1024
    checkpoint_interval: float = 10.0
    #: Seconds a closed decision and its rewards stay in the SQLite/MySQL log
    #: past its deadline (``Engine.prune_log``); 0 keeps them.
    log_retention: float = 0.0
    #: Seconds between rounds of log retention (``log_retention`` > 0).
    prune_interval: float = 60.0
    #: MySQL instead of the SQLite file (``mysql://user:pw@host:port/db``).
    mysql_dsn: str | None = None
    #: Decisions and rewards through Kafka (needs ``mysql_dsn``).
    kafka: KafkaSettings | None = None
    #: Run a learner in this process (Kafka mode); False: serve only.
    learner: bool = True
    #: Seconds between posterior refreshes from MySQL (Kafka mode).
    refresh_interval: float = 0.5
    #: Extra arguments of the in-process ``Learner`` (commit_interval, lateness...).
    learner_options: dict[str, Any] = field(default_factory=dict)
    #: Bearer tokens and their scopes (``security.load_tokens``); empty: no auth.
    tokens: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Tokens' names (``security.load_tokens``): who admin changes are recorded under.
    token_names: dict[str, str] = field(default_factory=dict)
    #: TLS (and mutual TLS with a client CA); None: plaintext.
    tls: TLSConfig | None = None
    #: RPCs queued or running at once; more are refused with
    #: RESOURCE_EXHAUSTED, but health checks, which are always answered
    #: (``server.admission``). None: no cap.
    max_concurrent_rpcs: int | None = None
    #: Let several server processes bind the same port (SO_REUSEPORT; the
    #: kernel spreads connections over them). Kafka mode only: in embedded
    #: mode each process keeps its own join state.
    reuseport: bool = False
    #: Prometheus /metrics on this port (0: a free one); None: off.
    metrics_port: int | None = None
    #: The address /metrics binds. Loopback by default: the series name every
    #: experiment. With ``tokens``, a scrape needs a token of scope
    #: ``metrics`` or ``admin``; with ``tls``, it is HTTPS.
    metrics_host: str = "127.0.0.1"
    #: The web dashboard on this port (0: a free one); None: off
    #: (``server.dashboard``, docs/dashboard.md). With ``tokens``, reading it
    #: needs a token of scope ``admin`` or ``metrics``, its admin actions one
    #: of scope ``admin``; with ``tls``, it is HTTPS.
    http_port: int | None = None
    #: The address the dashboard binds. Loopback by default.
    http_host: str = "127.0.0.1"
    #: Pin the whole process (every thread) to these CPUs (``cpus.pin``,
    #: Linux); None: the scheduler decides. A server process's Python runs
    #: on one core at a time: pinned, it keeps its caches warm.
    cpus: tuple[int, ...] | None = None
    #: Seconds between health checks of the store and the learner.
    health_interval: float = 1.0
    #: A learner without a commit for this long is stalled: NOT_SERVING.
    learner_stall_s: float = 30.0


def open_store(settings: ServerSettings) -> Store:
    if settings.mysql_dsn:
        from bandit_engine.store import MySQLStore  # loads the driver: only when asked for

        return MySQLStore(settings.mysql_dsn)
    path = ":memory:" if settings.state_dir is None else Path(settings.state_dir) / "state.db"
    return SQLiteStore(path)


def open_engine(settings: ServerSettings) -> Engine:
    if settings.kafka is not None and not settings.mysql_dsn:
        raise InvalidArgument(
            "Kafka mode needs MySQL: give --mysql-dsn (or BANDIT_MYSQL_DSN) with --kafka-bootstrap"
        )
    event_log = KafkaEventLog(settings.kafka) if settings.kafka is not None else None
    return Engine(
        open_store(settings),
        seed=settings.seed,
        limits=settings.limits,
        checkpoint_interval=settings.checkpoint_interval,
        log_retention=settings.log_retention,
        prune_interval=settings.prune_interval,
        event_log=event_log,
        refresh_interval=settings.refresh_interval,
    )


def create_server(
    settings: ServerSettings, engine: Engine | None = None
) -> tuple[grpc.Server, int, Engine]:
    """Build (not start) a server with health and reflection; returns (server, port, engine).

    Binds ``settings.port`` (0 picks a free port) and starts the engine's
    background threads. Call ``server.start()``, then ``stop_server`` to drain.
    """
    if settings.reuseport and settings.kafka is None:
        raise InvalidArgument(
            "--reuseport needs Kafka mode (--kafka-bootstrap): in embedded mode each process "
            "keeps its own join state, and a Feedback reaching another process than its "
            "Recommend would find no decision"
        )
    if settings.cpus is not None:
        pin(settings.cpus)  # before any thread of ours starts: they inherit it
    warm_up()  # before the port is bound: no request waits for a compile
    owned = engine is None
    engine = engine or open_engine(settings)
    opts = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        # off unless asked: a second server on a taken port must fail, not share it
        ("grpc.so_reuseport", 1 if settings.reuseport else 0),
    ]
    interceptors: list[grpc.ServerInterceptor] = []
    metrics = None
    if settings.metrics_port is not None:
        metrics = Metrics()
        metrics.watch_engine(engine)
        # first: it sees shed calls and auth refusals too
        interceptors.append(metrics.interceptor(_known_methods()))
    if settings.max_concurrent_rpcs is not None:
        interceptors.append(AdmissionInterceptor(settings.max_concurrent_rpcs))
    if settings.tokens:
        interceptors.append(AuthInterceptor(settings.tokens))
    server = grpc.server(
        AdmissionExecutor(settings.workers, settings.max_concurrent_rpcs),
        options=opts,
        interceptors=interceptors,
    )
    names = settings.token_names if settings.tokens else None
    add_servicer(BanditServicer(engine, names), server)
    health_servicer = HealthService()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"{settings.host}:{settings.port}"
    try:
        if settings.tls is not None:
            port = server.add_secure_port(address, settings.tls.credentials())
        else:
            port = server.add_insecure_port(address)
    except RuntimeError:  # grpcio's "Failed to bind to address ..."
        port = 0
    if port == 0:
        if owned:
            engine.close()
        raise OSError(f"cannot bind {address} (is the port in use?)")
    dashboard = None
    if settings.http_port is not None:
        from bandit_engine.server.dashboard import Dashboard  # starlette, uvicorn: when asked

        dashboard = Dashboard(engine, settings.tokens, settings.token_names, settings.tls)
        try:
            dashboard.bind(settings.http_host, settings.http_port)
        except OSError:
            server.stop(None)
            if owned:
                engine.close()
            raise
        if not settings.tokens and not is_loopback(settings.http_host):
            log.warning(
                "dashboard on non-loopback %s without tokens: anyone who reaches it reads every "
                "experiment and can promote challengers",
                settings.http_host,
            )
    if settings.tls is None:
        if not is_loopback(settings.host):
            log.warning(
                "serving PLAINTEXT on non-loopback %s: give --tls-cert/--tls-key (and tokens) "
                "before exposing the engine",
                settings.host,
            )
    if not settings.tokens and not is_loopback(settings.host):
        log.warning("no auth tokens: anyone who reaches %s can call every RPC", address)
    server.health_servicer = health_servicer
    if settings.kafka is not None and settings.learner:
        assert settings.mysql_dsn is not None
        server.learner_thread = LearnerThread(
            settings.mysql_dsn, settings.kafka, **settings.learner_options
        )
        if metrics is not None:
            metrics.watch_learner(server.learner_thread.learner)
    if metrics is not None:
        if not settings.tokens and not is_loopback(settings.metrics_host):
            log.warning(
                "/metrics on non-loopback %s without tokens: anyone who reaches it reads "
                "every experiment's id",
                settings.metrics_host,
            )
        metrics.serve(
            settings.metrics_host, settings.metrics_port or 0, settings.tokens, settings.tls
        )
        server.metrics = metrics
    server.health_monitor = HealthMonitor(
        health_servicer,
        engine,
        getattr(server, "learner_thread", None),
        settings.health_interval,
        settings.learner_stall_s,
    )
    engine.start()
    if dashboard is not None:
        dashboard.start()
        server.dashboard = dashboard
    return server, port, engine


def _known_methods() -> list[str]:
    """The full names of the methods the metrics label one by one."""
    from bandit_engine._proto.bandit.v1 import bandit_pb2

    service = bandit_pb2.DESCRIPTOR.services_by_name["BanditService"]
    names = [f"/{service.full_name}/{m.name}" for m in service.methods]
    return [*names, "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/List"]


def stop_server(server: grpc.Server, engine: Engine, grace: float = 5.0) -> None:
    """Drain: report NOT_SERVING, let in-flight calls finish, then close the engine."""
    monitor = getattr(server, "health_monitor", None)
    if monitor is not None:
        monitor.stop()
    hs = getattr(server, "health_servicer", None)
    if hs is not None:
        hs.enter_graceful_shutdown()
    server.stop(grace).wait()
    learner = getattr(server, "learner_thread", None)
    if learner is not None:
        learner.stop()
    metrics = getattr(server, "metrics", None)
    if metrics is not None:
        metrics.close()
    dashboard = getattr(server, "dashboard", None)
    if dashboard is not None:
        dashboard.stop(grace)
    engine.close()
