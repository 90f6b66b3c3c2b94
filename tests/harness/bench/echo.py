"""A bare echo server on the same gRPC stack as the real one.

It registers a generic handler for ``/bandit.v1.BanditService/Recommend``
that neither parses the request nor builds a response: it returns canned
bytes of a real ``RecommendResponse`` (same size as the real server's), so the
client code, the method path and the message sizes are those of the real
thing and the server's work is only what gRPC itself does. Two flavours: the
sync server (``ThreadPoolExecutor``) and ``grpc.aio``.
"""

from __future__ import annotations

import asyncio
from concurrent import futures
from typing import Any

import grpc

__all__ = ["RECOMMEND_METHOD", "SERVICE", "canned_response", "serve_echo_aio", "start_echo_sync"]

SERVICE = "bandit.v1.BanditService"
RECOMMEND_METHOD = f"/{SERVICE}/Recommend"


def canned_response(n_arms: int = 10) -> bytes:
    """A serialized RecommendResponse shaped like the real server's answer."""
    from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb

    resp = pb.RecommendResponse(
        event_id="0f8fad5bd9cb469fa16570867728950e",
        model_version=20_000,
        propensity_kind=pb.FIRST_SLOT,
    )
    for i in range(n_arms):
        resp.arms.add(arm_id=f"arm-{i:03d}", score=0.123456789 * (i + 1), propensity=0.0123)
    return resp.SerializeToString()


def _options(reuseport: bool) -> list[tuple[str, Any]]:
    return [("grpc.so_reuseport", 1 if reuseport else 0)]


def start_echo_sync(
    canned: bytes,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    max_workers: int = 16,
    reuseport: bool = False,
) -> tuple[grpc.Server, int]:
    """Start a sync echo server; returns it and its port."""

    def recommend(request: bytes, context: grpc.ServicerContext) -> bytes:
        return canned

    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Recommend": grpc.unary_unary_rpc_method_handler(recommend)}
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers), options=_options(reuseport)
    )
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, bound


async def serve_echo_aio(
    canned: bytes,
    ready: Any,
    stop: asyncio.Event,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    reuseport: bool = False,
) -> None:
    """Run a grpc.aio echo server until ``stop`` is set; ``ready(port)`` once bound."""

    async def recommend(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return canned

    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Recommend": grpc.unary_unary_rpc_method_handler(recommend)}
    )
    server = grpc.aio.server(options=_options(reuseport))
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    ready(bound)
    await stop.wait()
    await server.stop(1.0)
