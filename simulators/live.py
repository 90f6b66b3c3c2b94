"""Drive a live bandit-engine server with a world's stream (``--target host:port``).

The world plays the users: each round becomes one ``Recommend`` (the
round's context and eligible arms as candidates, ``k`` arms back) and one
``Feedback`` per shown arm with its sampled reward, so the server's own
policy, reward join and learner are what is measured. Arms are added with
``AddArms`` (their attributes as named features) when the world brings them.
Calls go through ``bandit_engine.client.BanditClient``; a refused call raises
the engine's error for its status.

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

import numpy as np

from bandit_engine import POLICIES, AlreadyExists, InvalidArgument
from bandit_engine.client import BanditClient
from bandit_engine.policies import FloatArray, IntArray
from simulators.simulate import Agent, engine_config
from simulators.worlds import Round, World

__all__ = ["LiveAgent", "LiveError", "agent_factory", "check_target"]

DEFAULT_POLICY = "lin_ts_disjoint"


class LiveError(RuntimeError):
    """The live server answered something a run cannot use (an arm that was
    not a candidate, too few arms, a reward not applied)."""


def check_target(target: str) -> str:
    """Validate ``host:port`` and return it."""
    host, sep, port = str(target).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"target {target!r} must be host:port, e.g. 127.0.0.1:50051")
    return str(target)


class LiveAgent(Agent):
    """An ``Agent`` whose decisions are a live server's ``Recommend`` answers."""

    def __init__(self, client: BanditClient, experiment_id: str, arm_ids: Sequence[str]) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.arm_ids = list(arm_ids)  # world arm index -> arm id
        self._event: tuple[str, tuple[str, ...]] | None = None

    def add_arms(self, world: World, indices: Sequence[int]) -> None:
        arms = [(world.arm(i).arm_id, world.arm(i).features_dict()) for i in indices]
        self.client.add_arms(self.experiment_id, arms)

    def choose(self, rnd: Round, k: int) -> IntArray:
        world_ids = [self.arm_ids[int(a)] for a in rnd.arms]
        d = self.client.recommend(self.experiment_id, rnd.context, world_ids, k)
        pos = {a: i for i, a in enumerate(world_ids)}
        try:
            order = np.array([pos[a] for a in d.arm_ids], dtype=np.int64)
        except KeyError as exc:
            raise LiveError(f"Recommend returned arm {exc.args[0]!r}, not a candidate") from None
        if order.shape[0] != k:
            raise LiveError(f"Recommend returned {order.shape[0]} arms; asked for k={k}")
        self._event = (d.event_id, d.arm_ids)
        return order

    def learn(self, rnd: Round, order: IntArray, rewards: FloatArray) -> None:
        if self._event is None:
            raise LiveError("learn() without a Recommend to answer")
        event_id, shown = self._event
        self._event = None
        for arm_id, r in zip(shown, rewards, strict=True):
            result = self.client.feedback(event_id, arm_id, float(r))
            if result.outcome != "applied":
                raise LiveError(
                    f"Feedback({event_id}, {arm_id}) answered {result.outcome.upper()}, not APPLIED"
                )

    def close(self) -> None:
        self.client.close()


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
    if policy not in POLICIES:
        raise InvalidArgument(f"live policy {policy!r} unknown; expected one of {sorted(POLICIES)}")

    def factory(world: World, seed: int, rng: np.random.Generator) -> Agent:
        exp_id = experiment or f"sim-{world.name}-s{seed}-{uuid.uuid4().hex[:8]}"
        cfg = engine_config(policy, world, params, experiment_id=str(exp_id))
        client = BanditClient(target, timeout=timeout)
        try:
            client.wait_ready()
            try:
                client.create_experiment(cfg)
            except AlreadyExists:
                if not experiment:
                    raise
                _check_existing(client, cfg.experiment_id, world)
        except BaseException:
            client.close()
            raise
        arm_ids = [world.arm(i).arm_id for i in range(world.n_arms)]
        return LiveAgent(client, cfg.experiment_id, arm_ids)

    return factory


def _check_existing(client: BanditClient, experiment_id: str, world: World) -> None:
    """An existing experiment must fit the world's context layout."""
    cfg = client.get_experiment(experiment_id).config
    space = world.space
    if cfg.dim != space.dim or cfg.dense_dim != space.dense_dim:
        raise InvalidArgument(
            f"experiment {experiment_id!r} has dim={cfg.dim}, dense_dim={cfg.dense_dim}; "
            f"world {world.name!r} needs dim={space.dim}, dense_dim={space.dense_dim}"
        )
