"""The production shape the campaign attacks: servers and learners as subprocesses.

Two ``bandit-engine serve --no-learner`` servers and one or more
``bandit-engine learn`` processes in one consumer group, over one MySQL
database and one set of topics; each subprocess writes to a log file of its
own. Learners that share the partitions store their evidence as snapshot
parts (``bandit_engine.stream.learner.commit``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc
from bandit_engine.stream import KafkaSettings
from harness.local_broker import free_port

__all__ = ["Cluster", "Proc", "serving", "stub", "wait_until"]


@dataclass
class Proc:
    """One subprocess, restartable with the same command line."""

    name: str
    cmd: list[str]
    log: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(self.cmd, stdout=f, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self) -> None:
        """SIGTERM, if it runs; ``stop`` waits for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM; SIGKILL, and reap, if it has not exited in ``timeout``
        seconds. False if it took the SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return True
        self.terminate()
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return False


def stub(port: int) -> tuple[grpc.Channel, Any]:
    """A channel to the server on ``port`` and its ``BanditService`` stub."""
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    return ch, pb_grpc.BanditServiceStub(ch)


def serving(port: int, timeout: float = 0.5) -> bool:
    """Whether the server on ``port`` answers its health check with SERVING."""
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        return bool(r.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False
    finally:
        ch.close()


def wait_until(what: str, done: Any, timeout: float, poll: float = 0.05) -> float:
    """Poll ``done()`` until true; seconds it took. TimeoutError naming ``what``."""
    t0 = time.monotonic()
    while not done():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{what}: not within {timeout:g}s")
        time.sleep(poll)
    return time.monotonic() - t0


def _serves_arms(port: int, experiment_id: str, n_arms: int) -> bool:
    """Whether the server on ``port`` has the experiment with ``n_arms`` active arms."""
    ch, s = stub(port)
    try:
        exp = s.GetExperiment(pb.GetExperimentRequest(experiment_id=experiment_id), timeout=1)
        return bool(exp.active_arms == n_arms)
    except grpc.RpcError:
        return False
    finally:
        ch.close()


@dataclass
class Cluster:
    """The servers and the learners of one campaign.

    ``n_learners`` learner processes share the group's partitions (the
    topics need at least as many, or some learner holds none). A lone
    learner has the static member name ``chaos-learner-0``; several join as
    dynamic members, since the bundled broker (Tansu) has a group of several
    static members rejoin every 7 s or so, and can leave a restarted one
    without partitions (a group of three idle learners: six joins in 45 s
    with static names, one without).
    """

    dsn: str
    settings: KafkaSettings
    logs: Path
    #: the learners wait this long for a fetch (Tansu over S3 answers a fetch
    #: empty when its storage read outlasts the fetch's wait)
    fetch_max_wait_ms: int | None = None
    n_learners: int = 1
    servers: list[Proc] = field(default_factory=list)
    learners: list[Proc] = field(default_factory=list)

    def __post_init__(self) -> None:
        s = self.settings
        if not 1 <= self.n_learners <= s.partitions:
            raise ValueError(
                f"{self.n_learners} learners for {s.partitions} partitions: "
                "each learner needs a partition of its own"
            )
        common = [
            *("--kafka-bootstrap", s.bootstrap, "--mysql-dsn", self.dsn),
            *("--decisions-topic", s.decisions_topic, "--feedback-topic", s.feedback_topic),
            *("--deadletter-topic", s.deadletter_topic, "--group-id", s.group_id),
            *("--partitions", str(s.partitions)),
        ]
        level = os.environ.get("BANDIT_CHAOS_LOG_LEVEL", "WARNING")  # of the subprocesses
        py = [sys.executable, "-m", "bandit_engine", "--log-level", level]
        for i in range(2):
            port = free_port()
            cmd = [*py, "serve", "--port", str(port), "--no-learner"]
            cmd += ["--refresh-interval", "0.5", *common]
            self.servers.append(Proc(f"server{i}", cmd, self.logs / f"server{i}.log", port))
        learn = [*py, "learn", "--commit-interval", "0.05", "--orphan-grace", "3"]
        if self.fetch_max_wait_ms is not None:
            learn += ["--fetch-max-wait-ms", str(self.fetch_max_wait_ms)]
        for i in range(self.n_learners):
            # static membership: a restarted learner takes its partitions
            # back without waiting out the killed one's session
            member = ["--group-instance-id", f"chaos-learner-{i}"] if self.n_learners == 1 else []
            cmd = [*learn, *member, *common]
            self.learners.append(Proc(f"learner{i}", cmd, self.logs / f"learner{i}.log"))

    def start(self, timeout: float = 60.0) -> None:
        """Start every process; return once both servers serve."""
        for p in [*self.servers, *self.learners]:
            p.start()
        try:
            wait_until(
                "servers serving", lambda: all(serving(s.port) for s in self.servers), timeout, 0.2
            )
        except TimeoutError as exc:
            raise RuntimeError(f"servers did not start ({exc}); see {self.logs}") from None

    def create_experiment(self, experiment_id: str, arms: list[str], timeout: float = 30.0) -> None:
        """Create the campaign's experiment (linear TS, two dense features)
        through one server; return once every server serves it with all its
        arms (each picks them up from MySQL on its refresh)."""
        ch, s = stub(self.servers[0].port)
        try:
            s.CreateExperiment(
                pb.CreateExperimentRequest(
                    spec=pb.ExperimentSpec(
                        experiment_id=experiment_id,
                        policy=pb.LIN_TS_DISJOINT,
                        dim=3,
                        dense_dim=2,
                        reward_window_seconds=3600,
                    )
                )
            )
            s.AddArms(
                pb.AddArmsRequest(
                    experiment_id=experiment_id, arms=[pb.ArmSpec(arm_id=a) for a in arms]
                )
            )
        finally:
            ch.close()
        wait_until(
            f"every server serves {experiment_id!r} with its {len(arms)} arms",
            lambda: all(_serves_arms(p.port, experiment_id, len(arms)) for p in self.servers),
            timeout,
        )

    def stop(self, timeout: float = 20.0) -> list[str]:
        """Stop the servers, then every learner at once (SIGTERM; SIGKILL
        after ``timeout`` seconds); the names of those that took the SIGKILL."""
        killed = [s.name for s in self.servers if not s.stop(timeout)]
        for p in self.learners:
            p.terminate()
        deadline = time.monotonic() + timeout
        for p in self.learners:
            if not p.stop(max(deadline - time.monotonic(), 0.1)):
                killed.append(p.name)
        return killed
