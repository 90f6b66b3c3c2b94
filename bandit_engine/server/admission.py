"""Admission control: a cap on the RPCs a server holds at once, which health
checks bypass and which the metrics see.

``AdmissionExecutor`` is the server's thread pool. gRPC hands it one task
per accepted RPC; it counts the tasks submitted and not yet finished (the
RPCs queued or running, what grpcio's own ``maximum_concurrent_rpcs``
counts) and marks each task admitted or shed when it is submitted. The
count goes down in the task's ``Future`` callback, which runs however the
task ends, so a cancelled call cannot leak a slot.

``AdmissionInterceptor`` reads the mark when a call's handler runs: a shed
call is refused with RESOURCE_EXHAUSTED before any work, except the calls
of ``EXEMPT_SERVICES`` (gRPC health), which are always answered, so a
liveness probe does not fail a server that is only busy. Interceptors placed
before this one (the metrics) see a shed call with its status code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc

__all__ = ["EXEMPT_SERVICES", "AdmissionExecutor", "AdmissionInterceptor"]

#: Services whose calls are served even while the server sheds.
EXEMPT_SERVICES = ("/grpc.health.v1.Health/",)

_mark = threading.local()


def _shed_now() -> bool:
    return bool(getattr(_mark, "shed", False))


class AdmissionExecutor(futures.ThreadPoolExecutor):
    """A thread pool that admits at most ``max_inflight`` tasks at once
    (None: all); the others run only to be refused (see the module doc)."""

    def __init__(self, max_workers: int, max_inflight: int | None, thread_name_prefix: str = "rpc"):
        if max_inflight is not None and max_inflight < 1:
            raise ValueError(f"max_concurrent_rpcs={max_inflight!r} must be at least 1")
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self.max_inflight = max_inflight
        self._lock = threading.Lock()
        self.inflight = 0  # counted only under a cap
        self.shed = 0

    def _done(self, _future: futures.Future[Any]) -> None:
        with self._lock:
            self.inflight -= 1

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future[Any]:
        if self.max_inflight is None:
            return super().submit(fn, *args, **kwargs)
        with self._lock:
            shed = self.max_inflight is not None and self.inflight >= self.max_inflight
            self.inflight += 1
            if shed:
                self.shed += 1

        def run() -> Any:
            _mark.shed = shed
            try:
                return fn(*args, **kwargs)
            finally:
                _mark.shed = False

        try:
            future = super().submit(run)
        except BaseException:
            with self._lock:
                self.inflight -= 1
            raise
        future.add_done_callback(self._done)
        return future


class AdmissionInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Refuses the calls ``AdmissionExecutor`` shed, but health checks."""

    def __init__(self, max_inflight: int) -> None:
        self._message = (
            f"server busy: more than max_concurrent_rpcs={max_inflight} calls in flight; "
            "retry with backoff"
        )

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        if handler is None or details.method.startswith(EXEMPT_SERVICES):
            return handler
        message = self._message
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                if _shed_now():
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, message)
                return inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            inner_ss = handler.stream_stream

            def streaming(requests: Any, context: grpc.ServicerContext) -> Any:
                if _shed_now():
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, message)
                return inner_ss(requests, context)

            return grpc.stream_stream_rpc_method_handler(
                streaming,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
