"""Health: the gRPC health service (Check, Watch and List), NOT_SERVING while
the store is unreachable or the learner stalled."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2

from bandit_engine.core import Engine
from bandit_engine.server.learner_thread import LearnerThread
from bandit_engine.server.servicer import SERVICE_NAME

log = logging.getLogger(__name__)

__all__ = ["HealthMonitor", "HealthService"]


class HealthService(health.HealthServicer):  # type: ignore[misc]
    """grpcio's health servicer with ``List`` (every service's status), which
    its base class leaves unimplemented though the service lists it."""

    def __init__(self) -> None:
        super().__init__()
        self._statuses: dict[str, int] = {"": health_pb2.HealthCheckResponse.SERVING}
        self._closing = False

    def set(self, service: str, status: int) -> None:
        super().set(service, status)
        with self._lock:  # the base class's lock: one order of updates
            if not self._closing:
                self._statuses[service] = status

    def enter_graceful_shutdown(self) -> None:
        with self._lock:
            super().enter_graceful_shutdown()
            self._statuses = dict.fromkeys(
                self._statuses, health_pb2.HealthCheckResponse.NOT_SERVING
            )
            self._closing = True

    def List(
        self, request: health_pb2.HealthListRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthListResponse:
        with self._lock:
            statuses = dict(self._statuses)
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in statuses.items()
            }
        )


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
