"""Serving the dashboard: uvicorn on a thread of its own, with its own event
loop, next to the gRPC server (``serve --http-port``).

The socket is bound before ``start`` returns, so a taken port fails the
start with an error naming the address; ``stop`` lets requests in flight
finish for up to ``grace`` seconds. With TLS the page is HTTPS with the
gRPC server's certificate.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Mapping
from typing import Any

import uvicorn

from bandit_engine.server.dashboard.api import build_app
from bandit_engine.server.dashboard.rates import DEFAULT_INTERVAL, DEFAULT_POINTS, RateHistory
from bandit_engine.server.security import TLSConfig, is_loopback

log = logging.getLogger(__name__)

__all__ = ["Dashboard"]


class Dashboard:
    """The dashboard of one engine: the HTTP server and the rate sampler."""

    def __init__(
        self,
        engine: Any,
        tokens: Mapping[str, frozenset[str]] | None = None,
        names: Mapping[str, str] | None = None,
        tls: TLSConfig | None = None,
        interval: float = DEFAULT_INTERVAL,
        points: int = DEFAULT_POINTS,
    ) -> None:
        self.rates = RateHistory(engine, interval, points)
        self._app_args = (engine, tokens, names)
        self.app: Any = None  # built by ``bind``: it depends on the address
        self.tls = tls
        self.port = 0
        self.host = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/"

    def bind(self, host: str, port: int) -> int:
        """Bind ``host:port`` (0: a free port); the port. OSError naming the
        address if it is taken."""
        self._sock = _bind(host, port)
        self.host, self.port = host, int(self._sock.getsockname()[1])
        engine, tokens, names = self._app_args
        self.app = build_app(engine, self.rates, tokens, names, allowed_hosts(host))
        return self.port

    def start(self, host: str | None = None, port: int = 0) -> int:
        """Start serving (binding ``host:port`` first unless ``bind`` did),
        and sampling the rates; the port."""
        if self._sock is None:
            assert host is not None, "bind first, or give the host"
            self.bind(host, port)
        sock = self._sock
        kwargs: dict[str, Any] = {}
        if self.tls is not None:
            kwargs = {"ssl_certfile": str(self.tls.cert), "ssl_keyfile": str(self.tls.key)}
            if self.tls.client_ca is not None:
                import ssl

                kwargs["ssl_ca_certs"] = str(self.tls.client_ca)
                kwargs["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            loop="asyncio",
            http="h11",
            ws="none",
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=2,
            **kwargs,
        )
        server = uvicorn.Server(config)
        self._server = server
        self.rates.start()
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="dashboard-http", daemon=True
        )
        self._thread.start()
        return self.port

    def stop(self, grace: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=grace)
            if self._thread.is_alive():
                assert self._server is not None
                self._server.force_exit = True
                self._thread.join(timeout=2)
            self._thread = None
        self._server = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self.rates.stop()


def allowed_hosts(host: str) -> list[str] | None:
    """The ``Host`` headers a dashboard bound to ``host`` answers: on an IPv4
    loopback address or ``localhost``, those names only; elsewhere any."""
    if host == "localhost" or (is_loopback(host) and ":" not in host):
        return sorted({"127.0.0.1", "localhost", host})
    return None


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or OSError naming the address."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, addr = info[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise OSError(f"dashboard: cannot bind {host}:{port} ({exc})") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(f"dashboard: cannot bind {host}:{port} (is the port in use?): {exc}") from exc
    sock.set_inheritable(True)
    return sock
