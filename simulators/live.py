"""Drive a live bandit-engine server with a world's stream (``--target host:port``).

The world plays the users: each round becomes one ``Recommend`` (the
round's context and eligible arms as candidates, ``k`` arms back) and one
``Feedback`` per shown arm with its sampled reward, so the server's own
policy, reward join and learner are what is measured. Arms are added with
``AddArms`` (their attributes as named features) when the world brings them.

Each run (one seed) creates its own experiment, ``sim-<world>-s<seed>-<random>``,
from the same ``ExperimentConfig`` an in-process run would use (the world's
feature space, the given policy and settings), unless ``experiment=ID``
names one to use: it is created if missing and reused if present (a
deployed configuration under test). The server's draws come from the
server's generator, so a live run is not reproducible from the seed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import numpy as np

from bandit_engine import InvalidArgument
from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc
from bandit_engine.server.convert import POLICY_TO_PB, spec_from_config
from simulators.simulate import Agent, engine_config
from simulators.worlds import FloatArray, IntArray, Round, World

__all__ = ["LiveAgent", "LiveError", "agent_factory", "check_target"]

DEFAULT_POLICY = "lin_ts_disjoint"


class LiveError(RuntimeError):
    """A call to the live server failed (its status and details in the message)."""


def check_target(target: str) -> str:
    """Validate ``host:port`` and return it."""
    host, sep, port = str(target).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"target {target!r} must be host:port, e.g. 127.0.0.1:50051")
    return str(target)


class LiveAgent(Agent):
    """An ``Agent`` whose decisions are a live server's ``Recommend`` answers."""

    def __init__(
        self,
        channel: grpc.Channel,
        experiment_id: str,
        arm_ids: Sequence[str],
        *,
        target: str = "",
        timeout: float = 10.0,
    ) -> None:
        self.channel = channel
        self.stub = pb_grpc.BanditServiceStub(channel)  # type: ignore[no-untyped-call]
        self.experiment_id = experiment_id
        self.arm_ids = list(arm_ids)  # world arm index -> arm id
        self.target = target
        self.timeout = timeout
        self._event: tuple[str, list[str]] | None = None

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self.stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise LiveError(
                f"{method} on {self.target or 'the server'} failed: "
                f"{exc.code().name}: {exc.details()}"
            ) from exc

    def add_arms(self, world: World, indices: Sequence[int]) -> None:
        specs = []
        for i in indices:
            arm = world.arm(i)
            f = arm.features_dict()
            specs.append(
                pb.ArmSpec(
                    arm_id=arm.arm_id,
                    features=pb.Features(numeric=f["numeric"], categorical=f["categorical"]),
                )
            )
        self._call("AddArms", pb.AddArmsRequest(experiment_id=self.experiment_id, arms=specs))

    def choose(self, rnd: Round, k: int) -> IntArray:
        world_ids = [self.arm_ids[int(a)] for a in rnd.arms]
        ctx = rnd.context
        resp = self._call(
            "Recommend",
            pb.RecommendRequest(
                experiment_id=self.experiment_id,
                context=pb.Features(
                    dense=list(ctx.dense),
                    numeric=dict(ctx.numeric),
                    categorical=list(ctx.categorical),
                ),
                candidates=world_ids,
                k=k,
            ),
        )
        shown = [a.arm_id for a in resp.arms]
        pos = {a: i for i, a in enumerate(world_ids)}
        try:
            order = np.array([pos[a] for a in shown], dtype=np.int64)
        except KeyError as exc:
            raise LiveError(f"Recommend returned arm {exc.args[0]!r}, not a candidate") from None
        if order.shape[0] != k:
            raise LiveError(f"Recommend returned {order.shape[0]} arms; asked for k={k}")
        self._event = (resp.event_id, shown)
        return order

    def learn(self, rnd: Round, order: IntArray, rewards: FloatArray) -> None:
        if self._event is None:
            raise LiveError("learn() without a Recommend to answer")
        event_id, shown = self._event
        self._event = None
        for arm_id, r in zip(shown, rewards, strict=True):
            resp = self._call(
                "Feedback", pb.FeedbackRequest(event_id=event_id, arm_id=arm_id, reward=float(r))
            )
            if resp.outcome != pb.APPLIED:
                raise LiveError(
                    f"Feedback({event_id}, {arm_id}) answered "
                    f"{pb.FeedbackOutcome.Name(resp.outcome)}, not APPLIED"
                )

    def close(self) -> None:
        self.channel.close()


def agent_factory(
    target: str, params: dict[str, Any], *, timeout: float = 10.0
) -> Callable[[World, int, np.random.Generator], Agent]:
    """A factory of ``LiveAgent`` for ``simulate``'s ``live`` contender.

    ``params``: ``policy`` (an engine policy kind, default lin_ts_disjoint),
    ``experiment`` (an experiment id to use), and any ``ExperimentConfig``
    setting (``noise_scale``, ``decay``, ``prior_alpha``...).
    """
    check_target(target)
    params = dict(params)
    policy = str(params.pop("policy", DEFAULT_POLICY))
    experiment = params.pop("experiment", None)
    if policy not in POLICY_TO_PB:
        raise InvalidArgument(
            f"live policy {policy!r} unknown; expected one of {sorted(POLICY_TO_PB)}"
        )

    def factory(world: World, seed: int, rng: np.random.Generator) -> Agent:
        exp_id = experiment or f"sim-{world.name}-s{seed}-{uuid.uuid4().hex[:8]}"
        cfg = engine_config(policy, world, params, experiment_id=str(exp_id))
        channel = grpc.insecure_channel(target)
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            channel.close()
            raise LiveError(f"no server answering at {target} within {timeout:g}s") from None
        arm_ids = [world.arm(i).arm_id for i in range(world.n_arms)]
        agent = LiveAgent(channel, cfg.experiment_id, arm_ids, target=target, timeout=timeout)
        try:
            agent.stub.CreateExperiment(
                pb.CreateExperimentRequest(spec=spec_from_config(cfg)), timeout=timeout
            )
        except grpc.RpcError as exc:
            if not (experiment and exc.code() == grpc.StatusCode.ALREADY_EXISTS):
                channel.close()
                raise LiveError(
                    f"CreateExperiment {cfg.experiment_id!r} on {target} failed: "
                    f"{exc.code().name}: {exc.details()}"
                ) from exc
            _check_existing(agent, world)
        return agent

    return factory


def _check_existing(agent: LiveAgent, world: World) -> None:
    """An existing experiment must fit the world's context layout."""
    exp = agent._call("GetExperiment", pb.GetExperimentRequest(experiment_id=agent.experiment_id))
    space = world.space
    if exp.spec.dim != space.dim or exp.spec.dense_dim != space.dense_dim:
        agent.close()
        raise InvalidArgument(
            f"experiment {agent.experiment_id!r} has dim={exp.spec.dim}, "
            f"dense_dim={exp.spec.dense_dim}; world {world.name!r} needs dim={space.dim}, "
            f"dense_dim={space.dense_dim}"
        )
