"""Server processes of the gRPC benchmark, each spoken to over a pipe.

Kinds (``start_server(ctx, kind, kw, name)``):

- ``real``: the shipped server (``create_server``), or, given
  ``shared_port``, the same servicer on a server that also binds a port
  shared with other processes (``grpc.so_reuseport=1``; ``create_server``
  turns SO_REUSEPORT off);
- ``real_aio``: the same servicer (sync handlers) on a ``grpc.aio`` server,
  the handlers in a migration thread pool;
- ``echo_sync``, ``echo_aio``: the bare echo server (``harness.bench.echo``).

A child answers ``("ready", {"port": ..., "flavour": "sync"|"aio"})`` once
it serves, runs until anything arrives on its pipe, then stops and answers
``("stopped", {})``. A failure comes back as ``("error", {"traceback": ...})``.
"""

from __future__ import annotations

import asyncio
import traceback
from typing import Any

from harness.bench._util import proc_cpu_seconds

__all__ = ["Proc", "start_server"]


def _server_proc(kind: str, conn: Any, kw: dict[str, Any]) -> None:
    """Child process: run one server until told to stop."""
    try:
        if kind == "echo_aio":
            asyncio.run(_echo_aio_main(conn, kw))
        elif kind == "echo_sync":
            _echo_sync_main(conn, kw)
        elif kind == "real":
            _real_main(conn, kw)
        elif kind == "real_aio":
            asyncio.run(_real_aio_main(conn, kw))
        else:
            raise ValueError(f"unknown server kind {kind!r}")
    except BaseException:
        conn.send(("error", {"traceback": traceback.format_exc()}))


def _echo_sync_main(conn: Any, kw: dict[str, Any]) -> None:
    from harness.bench.echo import start_echo_sync

    server, port = start_echo_sync(
        kw["canned"],
        port=kw.get("port", 0),
        reuseport=kw.get("reuseport", False),
        max_workers=kw.get("max_workers", 16),
    )
    conn.send(("ready", {"port": port, "flavour": "sync"}))
    conn.recv()
    server.stop(1.0).wait()
    conn.send(("stopped", {}))


async def _echo_aio_main(conn: Any, kw: dict[str, Any]) -> None:
    from harness.bench.echo import serve_echo_aio

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    waiter = loop.run_in_executor(None, conn.recv)
    waiter.add_done_callback(lambda _f: stop.set())  # runs on the loop
    await serve_echo_aio(
        kw["canned"],
        lambda p: conn.send(("ready", {"port": p, "flavour": "aio"})),
        stop,
        port=kw.get("port", 0),
        reuseport=kw.get("reuseport", False),
    )
    conn.send(("stopped", {}))


def _settings(kw: dict[str, Any]) -> Any:
    from bandit_engine.server import ServerSettings

    return ServerSettings(
        host="127.0.0.1",
        port=0,
        state_dir=None,
        seed=kw.get("seed", 0),
        max_workers=kw.get("max_workers"),  # None: the shipped default of the mode
        kafka=kw.get("kafka"),
        mysql_dsn=kw.get("mysql_dsn"),
        max_concurrent_rpcs=kw.get("max_concurrent_rpcs"),
    )


def _real_main(conn: Any, kw: dict[str, Any]) -> None:
    """The real server: ``create_server`` as shipped, or (``shared_port``) the
    same servicer on a sync server that also binds the shared port."""
    import grpc

    from bandit_engine.server import (
        BanditServicer,
        add_servicer,
        create_server,
        open_engine,
        stop_server,
    )

    settings = _settings(kw)
    shared_port = kw.get("shared_port")
    extra: dict[str, Any] = {}
    if shared_port is None:
        server, port, engine = create_server(settings)
    else:
        from concurrent import futures

        engine = open_engine(settings)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.workers),
            options=[("grpc.so_reuseport", 1)],
        )
        add_servicer(BanditServicer(engine), server)
        port = server.add_insecure_port("127.0.0.1:0")  # this process's own, for setup
        extra["shared_port"] = server.add_insecure_port(f"127.0.0.1:{shared_port}")
        engine.start()
    flavour = "aio" if isinstance(server, grpc.aio.Server) else "sync"
    server.start()
    conn.send(("ready", {"port": port, "flavour": flavour, **extra}))
    conn.recv()
    stop_server(server, engine, 1.0)
    conn.send(("stopped", {}))


async def _real_aio_main(conn: Any, kw: dict[str, Any]) -> None:
    """The real servicer (sync handlers) on a grpc.aio server, the handlers in
    a migration thread pool: the shipped servicer on the other gRPC stack."""
    from concurrent import futures

    import grpc

    from bandit_engine.server import BanditServicer, add_servicer, open_engine

    engine = open_engine(_settings({"seed": kw.get("seed", 0)}))
    server = grpc.aio.server(
        migration_thread_pool=futures.ThreadPoolExecutor(kw.get("max_workers", 16)),
        options=[("grpc.so_reuseport", 0)],
    )
    add_servicer(BanditServicer(engine), server)
    port = server.add_insecure_port("127.0.0.1:0")
    engine.start()
    await server.start()
    loop = asyncio.get_running_loop()
    conn.send(("ready", {"port": port, "flavour": "aio"}))
    await loop.run_in_executor(None, conn.recv)
    await server.stop(1.0)
    engine.close()
    conn.send(("stopped", {}))


class Proc:
    """A child process spoken to over a pipe: ``target(first, conn, *rest)``."""

    def __init__(self, ctx: Any, target: Any, args: tuple[Any, ...], name: str) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=target, args=(*args[:1], child, *args[1:]), name=name, daemon=True
        )
        self.proc.start()
        self.name = name

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return int(self.proc.pid)

    def recv(self, timeout: float = 120.0) -> dict[str, Any]:
        """The next answer's payload; RuntimeError with the child's traceback
        if it failed (or if it died), TimeoutError if it said nothing in
        ``timeout`` s."""
        if not self.conn.poll(timeout):
            raise TimeoutError(f"{self.name}: no answer in {timeout:.0f}s")
        try:
            tag, payload = self.conn.recv()
        except EOFError:
            self.proc.join(5)
            raise RuntimeError(
                f"{self.name} exited (code {self.proc.exitcode}) without an answer"
            ) from None
        if tag == "error":
            raise RuntimeError(f"{self.name} failed:\n{payload['traceback']}")
        return dict(payload)

    def cpu(self) -> float:
        """CPU seconds the process has used so far (all its threads)."""
        return proc_cpu_seconds(self.pid)

    def close(self, timeout: float = 10.0) -> None:
        """Ask the child to stop, wait for it, terminate it if it does not."""
        try:
            if self.proc.is_alive():
                self.conn.send(None)
                if self.conn.poll(timeout):
                    self.conn.recv()
        except (OSError, EOFError, BrokenPipeError):
            pass
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


def start_server(ctx: Any, kind: str, kw: dict[str, Any], name: str) -> tuple[Proc, dict[str, Any]]:
    """Start a server process of ``kind``; returns it and its ready payload."""
    p = Proc(ctx, _server_proc, (kind, kw), name)
    try:
        info = p.recv(timeout=120)
    except BaseException:
        p.close()
        raise
    return p, info
