"""serve --cpus: parsing and pinning (Linux sched_setaffinity)."""

from __future__ import annotations

import os
import threading

import pytest

from bandit_engine import InvalidArgument
from bandit_engine.server.cpus import parse_cpus, pin

linux = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux affinity")


def test_parse_cpus() -> None:
    assert parse_cpus("0") == (0,)
    assert parse_cpus("3,1") == (1, 3)
    assert parse_cpus("0-2,5") == (0, 1, 2, 5)
    for bad in ("", "x", "2-1", "0,,1", "1-"):
        with pytest.raises(InvalidArgument, match="not a CPU number"):
            parse_cpus(bad)


@linux
def test_pin_moves_every_thread_and_refuses_a_cpu_it_may_not_use() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    started = threading.Event()
    stop = threading.Event()

    def idle() -> None:
        started.set()
        stop.wait(10)

    t = threading.Thread(target=idle)
    t.start()
    started.wait(5)
    try:
        assert pin([allowed[-1]]) == (allowed[-1],)
        tids = [int(x) for x in os.listdir(f"/proc/{os.getpid()}/task")]
        assert all(os.sched_getaffinity(tid) == {allowed[-1]} for tid in tids)
        before = os.sched_getaffinity(0)
        with pytest.raises(InvalidArgument, match="not CPUs this process may use"):
            pin([10_000])
        assert os.sched_getaffinity(0) == before  # nothing changed
    finally:
        pin(allowed)
        stop.set()
        t.join()
    assert os.sched_getaffinity(0) == set(allowed)


@linux
def test_create_server_pins_its_process() -> None:
    from bandit_engine.server import ServerSettings, create_server, stop_server

    allowed = sorted(os.sched_getaffinity(0))
    try:
        server, _port, engine = create_server(
            ServerSettings(port=0, state_dir=None, cpus=(allowed[0],))
        )
        server.start()
        tids = [int(x) for x in os.listdir(f"/proc/{os.getpid()}/task")]
        assert all(os.sched_getaffinity(tid) == {allowed[0]} for tid in tids)
        stop_server(server, engine, 0.5)
    finally:
        pin(allowed)
