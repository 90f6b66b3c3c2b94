"""Helpers for tests that run a real in-process gRPC server on a free port."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from bandit_engine import Engine
from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc
from bandit_engine.server import ServerSettings, create_server, stop_server


@dataclass
class Running:
    server: grpc.Server
    port: int
    engine: Engine
    channel: grpc.Channel
    stub: pb_grpc.BanditServiceStub
    state_dir: Path

    def stop(self) -> None:
        self.channel.close()
        stop_server(self.server, self.engine, grace=1.0)


def start_server(state_dir: Path, **kw: object) -> Running:
    settings = ServerSettings(host="127.0.0.1", port=0, state_dir=state_dir, seed=7, **kw)  # type: ignore[arg-type]
    server, port, engine = create_server(settings)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=10)
    return Running(server, port, engine, channel, pb_grpc.BanditServiceStub(channel), state_dir)  # type: ignore[no-untyped-call]


def make_experiment(
    stub: pb_grpc.BanditServiceStub,
    exp_id: str = "trips",
    policy: int = pb.LIN_TS_DISJOINT,
    arms: tuple[str, ...] = ("paris", "rome", "lisbon", "oslo"),
    **spec: object,
) -> pb.Experiment:
    fields = {"dim": 8, "dense_dim": 2, **spec}
    exp = stub.CreateExperiment(
        pb.CreateExperimentRequest(
            spec=pb.ExperimentSpec(experiment_id=exp_id, policy=policy, **fields)  # type: ignore[arg-type]
        )
    )
    stub.AddArms(pb.AddArmsRequest(experiment_id=exp_id, arms=[pb.ArmSpec(arm_id=a) for a in arms]))
    return exp
