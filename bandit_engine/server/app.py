"""gRPC server: a thin servicer over the engine, health and reflection.

The servicer translates messages (``_convert``) and maps engine errors to
status codes; all logic lives in ``Engine``. Every handler catches every
exception: engine errors map to their status, anything else is logged and
answered INTERNAL, so no call ever ends UNKNOWN.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from bandit_engine._exceptions import (
    AlreadyExists,
    BanditError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    StoreError,
    Unavailable,
)
from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc
from bandit_engine.core.config import DEFAULT_RPC_WORKERS, NETWORK_RPC_WORKERS, Limits
from bandit_engine.core.engine import Engine
from bandit_engine.server import convert as cv
from bandit_engine.server.cpus import pin
from bandit_engine.server.metrics import Metrics
from bandit_engine.server.security import AuthInterceptor, TLSConfig, is_loopback
from bandit_engine.server.warmup import warm_up
from bandit_engine.store import MySQLStore, SQLiteStore, Store
from bandit_engine.stream import KafkaSettings, LogProducer
from bandit_engine.stream.learner import Learner

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BanditService"].full_name

_STATUS: list[tuple[type[BanditError], grpc.StatusCode]] = [
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (StoreError, grpc.StatusCode.UNAVAILABLE),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
]

_OUTCOME = {
    "applied": pb.APPLIED,
    "duplicate": pb.DUPLICATE,
    "late": pb.LATE,
    "queued": pb.QUEUED,
}

F = TypeVar("F", bound=Callable[..., Any])


def _rpc(fn: F) -> F:
    """Map engine errors to gRPC status codes; never let an exception escape."""

    @functools.wraps(fn)
    def wrapper(self: BanditServicer, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(self, request, context)
        except BanditError as exc:
            for cls, code in _STATUS:
                if isinstance(exc, cls):
                    context.abort(code, str(exc))
            context.abort(grpc.StatusCode.INTERNAL, str(exc))
        except Exception as exc:
            log.exception("%s failed", fn.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")

    return wrapper  # type: ignore[return-value]


class BanditServicer(pb_grpc.BanditServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @_rpc
    def Recommend(self, request: pb.RecommendRequest, context: Any) -> pb.RecommendResponse:
        return self._recommend(request)

    @_rpc
    def RecommendWire(self, raw: bytes, context: Any) -> bytes:
        """Recommend as the server registers it: request bytes in, response
        bytes out. The common request goes through ``Engine.recommend_wire``
        (no message objects); any other is parsed and answered by ``Recommend``'s
        code, errors included."""
        body = self.engine.recommend_wire(raw)
        if body is not None:
            return body
        return self._recommend(_parse(pb.RecommendRequest, raw)).SerializeToString()

    def _recommend(self, request: pb.RecommendRequest) -> pb.RecommendResponse:
        d = self.engine.recommend(
            request.experiment_id,
            cv.context_from_msg(request.context),
            list(request.candidates),
            request.k or 1,
        )
        return pb.RecommendResponse(
            event_id=d.event_id,
            arms=[
                pb.RankedArm(arm_id=a, score=s, propensity=p)
                for a, s, p in zip(d.arm_ids, d.scores, d.propensities, strict=True)
            ],
            model_version=d.model_version,
            propensity_kind=pb.FIRST_SLOT,
        )

    @_rpc
    def Feedback(self, request: pb.FeedbackRequest, context: Any) -> pb.FeedbackResponse:
        r = self.engine.feedback(
            request.event_id,
            request.arm_id,
            request.reward,
            request.timestamp if request.HasField("timestamp") else None,
        )
        return pb.FeedbackResponse(outcome=_OUTCOME[r.outcome], model_version=r.model_version)

    @_rpc
    def CreateExperiment(self, request: pb.CreateExperimentRequest, context: Any) -> pb.Experiment:
        return cv.experiment_msg(self.engine.create_experiment(cv.config_from_spec(request.spec)))

    @_rpc
    def GetExperiment(self, request: pb.GetExperimentRequest, context: Any) -> pb.Experiment:
        return cv.experiment_msg(self.engine.get_experiment(request.experiment_id))

    @_rpc
    def ListExperiments(
        self, request: pb.ListExperimentsRequest, context: Any
    ) -> pb.ListExperimentsResponse:
        return pb.ListExperimentsResponse(
            experiments=[cv.experiment_msg(i) for i in self.engine.list_experiments()]
        )

    @_rpc
    def AddArms(self, request: pb.AddArmsRequest, context: Any) -> pb.AddArmsResponse:
        arms = [(a.arm_id, cv.features_dict(a.features)) for a in request.arms]
        infos = self.engine.add_arms(request.experiment_id, arms)
        version = self.engine.get_experiment(request.experiment_id).model_version
        return pb.AddArmsResponse(arms=[cv.arm_msg(a) for a in infos], model_version=version)

    @_rpc
    def RetireArm(self, request: pb.RetireArmRequest, context: Any) -> pb.Arm:
        return cv.arm_msg(self.engine.retire_arm(request.experiment_id, request.arm_id))

    @_rpc
    def GetArm(self, request: pb.GetArmRequest, context: Any) -> pb.Arm:
        ctx = cv.context_from_msg(request.context) if request.HasField("context") else None
        return cv.arm_msg(self.engine.arm_info(request.experiment_id, request.arm_id, ctx))

    @_rpc
    def ListArms(self, request: pb.ListArmsRequest, context: Any) -> pb.ListArmsResponse:
        infos = self.engine.list_arms(request.experiment_id, request.include_retired)
        return pb.ListArmsResponse(arms=[cv.arm_msg(a) for a in infos])


def _parse(request_cls: Any, raw: bytes) -> Any:
    """Request bytes as a message; InvalidArgument, naming the message, if
    protobuf cannot parse them (grpcio's own deserializer step would answer
    INTERNAL)."""
    try:
        return request_cls.FromString(raw)
    except DecodeError as exc:
        raise InvalidArgument(
            f"malformed {request_cls.DESCRIPTOR.name} ({len(raw)} bytes): {exc}"
        ) from None


def _parsing(method: Callable[[Any, Any], Any], request_cls: Any) -> Callable[[bytes, Any], Any]:
    """``method`` behind ``_parse`` of its request bytes."""

    def handler(raw: bytes, context: Any) -> Any:
        try:
            request = _parse(request_cls, raw)
        except InvalidArgument as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return method(request, context)

    return handler


def add_servicer(servicer: BanditServicer, server: Any) -> None:
    """Register ``servicer`` for every RPC of ``bandit.v1.BanditService``, as
    the generated ``add_BanditServiceServicer_to_server`` does, except that
    requests arrive as bytes: Recommend's go to ``BanditServicer.RecommendWire``
    (which answers with bytes), the others are parsed by ``_parsing``."""
    handlers = {}
    for method in pb.DESCRIPTOR.services_by_name["BanditService"].methods:
        if method.name == "Recommend":
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(servicer.RecommendWire)
            continue
        request = getattr(pb, method.input_type.name)
        response = getattr(pb, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _parsing(getattr(servicer, method.name), request),
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


@dataclass
class ServerSettings:
    """How to run the server. ``state_dir=None`` keeps state in memory only."""

    host: str = "127.0.0.1"
    port: int = 50051
    state_dir: str | Path | None = ".bandit-state"
    seed: int | None = 0
    #: RPC threads; None: 2 in embedded mode with SQLite, 16 with MySQL or
    #: Kafka, where a Feedback waits on the network (``config.DEFAULT_RPC_WORKERS``).
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
    #: TLS (and mutual TLS with a client CA); None: plaintext.
    tls: TLSConfig | None = None
    #: RPCs handled at once; more are refused with RESOURCE_EXHAUSTED. None: no cap.
    max_concurrent_rpcs: int | None = None
    #: Let several server processes bind the same port (SO_REUSEPORT; the
    #: kernel spreads connections over them). Kafka mode only: in embedded
    #: mode each process keeps its own join state.
    reuseport: bool = False
    #: Prometheus /metrics on this port (0: a free one); None: off.
    metrics_port: int | None = None
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
        return MySQLStore(settings.mysql_dsn)
    path = ":memory:" if settings.state_dir is None else Path(settings.state_dir) / "state.db"
    return SQLiteStore(path)


def open_engine(settings: ServerSettings) -> Engine:
    if settings.kafka is not None and not settings.mysql_dsn:
        raise InvalidArgument(
            "Kafka mode needs MySQL: give --mysql-dsn (or BANDIT_MYSQL_DSN) with --kafka-bootstrap"
        )
    producer = LogProducer(settings.kafka) if settings.kafka is not None else None
    return Engine(
        open_store(settings),
        seed=settings.seed,
        limits=settings.limits,
        checkpoint_interval=settings.checkpoint_interval,
        log_retention=settings.log_retention,
        producer=producer,
        refresh_interval=settings.refresh_interval,
    )


class LearnerThread:
    """A learner on its own thread and event loop, beside a server."""

    def __init__(self, mysql_dsn: str, kafka: KafkaSettings, **kw: Any) -> None:
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.learner = Learner(MySQLStore(mysql_dsn), kafka, **kw)
        self._thread = threading.Thread(target=self._run, name="learner", daemon=True)
        self._started = threading.Event()
        self._thread.start()
        self._started.wait(30)

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            self._started.set()
            await self.learner.run(self._stop)

        try:
            asyncio.run(main())
        except Exception:
            log.exception("learner stopped with an error")
            self._started.set()

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        self.learner.store.close()


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
        interceptors.append(metrics.interceptor())  # first: it sees auth refusals too
    if settings.tokens:
        interceptors.append(AuthInterceptor(settings.tokens))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="rpc"),
        options=opts,
        interceptors=interceptors,
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
    )
    add_servicer(BanditServicer(engine), server)
    health_servicer = health.HealthServicer()
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
        metrics.serve(settings.host, settings.metrics_port or 0)
        server.metrics = metrics
    server.health_monitor = HealthMonitor(
        health_servicer,
        engine,
        getattr(server, "learner_thread", None),
        settings.health_interval,
        settings.learner_stall_s,
    )
    engine.start()
    return server, port, engine


class HealthMonitor:
    """Reports NOT_SERVING while the store is unreachable or the learner stalled.

    Checks every ``interval`` seconds; turns back to SERVING when both
    recover. A learner is stalled when it has not committed for
    ``stall_s`` seconds (it commits every commit interval while it runs).
    """

    def __init__(
        self,
        health_servicer: Any,
        engine: Engine,
        learner: LearnerThread | None,
        interval: float,
        stall_s: float,
    ) -> None:
        self._hs = health_servicer
        self._engine = engine
        self._learner = learner
        self._interval = interval
        self._stall_s = stall_s
        self._stop = threading.Event()
        self.serving = True
        self.reason = ""
        self._last_commits = -1
        self._last_progress = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)
        self._thread.start()

    def check(self) -> tuple[bool, str]:
        try:
            self._engine.store.ping()
        except Exception as exc:
            return False, f"store unreachable: {exc}"
        if self._learner is not None:
            commits = self._learner.learner.commits
            now = time.monotonic()
            if commits != self._last_commits:
                self._last_commits = commits
                self._last_progress = now
            elif now - self._last_progress > self._stall_s:
                return False, f"learner stalled: no commit for {now - self._last_progress:.0f}s"
        return True, ""

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            ok, reason = self.check()
            if ok != self.serving:
                status = (
                    health_pb2.HealthCheckResponse.SERVING
                    if ok
                    else health_pb2.HealthCheckResponse.NOT_SERVING
                )
                for name in ("", SERVICE_NAME):
                    self._hs.set(name, status)
                if ok:
                    log.info("health: SERVING again")
                else:
                    log.warning("health: NOT_SERVING (%s)", reason)
                self.serving, self.reason = ok, reason

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


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
    engine.close()
