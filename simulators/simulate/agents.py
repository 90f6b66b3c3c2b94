"""What the runner drives: the ``Agent`` contract, ``PolicyAgent``, and ``run_agent``.

An agent makes world arms available (``add_arms``), chooses a ranking per
round (``choose``) and learns each shown slot's reward (``learn``).
``run_agent`` plays an agent on a world's first rounds and records, per
round, the reward summed over the shown slots and the expected regret of the
shown list (a ``Trace``).

An engine policy learns a ranked list the way the engine does, by its
experiment's click model (``bandit_engine.core.click_models``): a clicked
slot (reward > 0) is a Feedback and counts 1; every other shown slot is a
default reward of 0 weighted by ``ClickModel.default_weights`` (independent:
1 each; cascade: 1 down to the last click, 0 below it; position_based: the
slot's examination probability).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bandit_engine import ArmFeatures, InvalidArgument
from bandit_engine.core import ClickModel
from bandit_engine.policies import POLICIES, FloatArray, IntArray, Policy, Ranking
from simulators.simulate.progress import Progress
from simulators.worlds import Round, World

__all__ = ["Agent", "PolicyAgent", "PolicyLike", "Trace", "check_k", "check_rounds", "run_agent"]


class PolicyLike(Protocol):
    """The part of the ``Policy`` contract a simulation needs."""

    def add_arm(self, features: ArmFeatures | None = None) -> int: ...

    def rank(
        self, arms: IntArray, x: FloatArray | None, k: int, rng: np.random.Generator
    ) -> Ranking: ...

    def update_batch(self, arms: IntArray, xs: FloatArray | None, rewards: FloatArray) -> None: ...


class Agent(ABC):
    """What the runner drives: arms in, a ranking out, rewards back."""

    @abstractmethod
    def add_arms(self, world: World, indices: Sequence[int]) -> None:
        """Make world arms ``indices`` (in order, next in line) available."""

    @abstractmethod
    def choose(self, rnd: Round, k: int) -> IntArray:
        """Positions into ``rnd.arms`` of the ``k`` arms to show, top slot first."""

    @abstractmethod
    def learn(self, rnd: Round, order: IntArray, rewards: FloatArray) -> None:
        """The reward of each shown slot of ``rnd`` (after ``choose``)."""

    def close(self) -> None:  # noqa: B027 - most agents hold nothing to release
        """Release what the agent holds (connections, native handles)."""


class PolicyAgent(Agent):
    """Drives any ``PolicyLike`` (engine policy, baseline, peer) in process.

    World arm ``i`` is policy arm ``i`` (arms are added in world order).
    Rewards are applied every ``update_every`` rounds, in order, as the
    engine's learner applies batches. ``click_model`` (engine policies only;
    None: independent) weighs each round's default rewards as the engine
    would (see the module docstring); the weights reach
    ``Policy.update_batch``.
    """

    def __init__(
        self,
        policy: PolicyLike,
        rng: np.random.Generator,
        update_every: int = 1,
        click_model: ClickModel | None = None,
    ) -> None:
        if not isinstance(update_every, int) or update_every < 1:
            raise InvalidArgument(f"update_every={update_every!r} must be a positive integer")
        self.policy = policy
        self.rng = rng
        self.update_every = update_every
        # engine policies learn when each round was decided (forgetting by time)
        self._timed = isinstance(policy, Policy)
        self.click_model = click_model if click_model is not None else ClickModel()
        # independent: no weights at all (the very events, and bits, of unweighted updates)
        self._weighted = self.click_model.kind != "independent"
        if self._weighted and not (self._timed and getattr(policy, "kind", None) in POLICIES):
            raise InvalidArgument(
                f"click_model={self.click_model.kind!r} needs an engine policy (one of "
                f"{sorted(POLICIES)}); {type(policy).__name__} learns every shown slot as an "
                "independent impression"
            )
        self._buf: list[tuple[IntArray, FloatArray, FloatArray, FloatArray, FloatArray | None]] = []
        self._pace = World.seconds_per_round

    def add_arms(self, world: World, indices: Sequence[int]) -> None:
        self._pace = world.seconds_per_round
        for i in indices:
            got = self.policy.add_arm(world.arm(i).features())
            if got != i:
                raise RuntimeError(f"policy numbered world arm {i} as {got}; arms out of order")

    def choose(self, rnd: Round, k: int) -> IntArray:
        return self.policy.rank(rnd.arms, rnd.x, k, self.rng).order

    def learn(self, rnd: Round, order: IntArray, rewards: FloatArray) -> None:
        shown = rnd.arms[order]
        k = shown.shape[0]
        xs = rnd.x[None, :] if k == 1 else np.repeat(rnd.x[None, :], k, 0)
        times = np.full(k, rnd.t * self._pace)
        weights: FloatArray | None = None
        if self._weighted:
            rewards, weights = self.weigh(rewards)
        if self.update_every == 1:
            self._update(shown, xs, rewards, times, weights)
            return
        self._buf.append((shown, xs, rewards, times, weights))
        if len(self._buf) >= self.update_every:
            self.flush()

    def weigh(self, rewards: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(rewards, weights) the engine learns from one list's slot rewards:
        clicks (reward > 0) as they are, weight 1; every other slot reward 0
        with the click model's default weight."""
        clicked = rewards > 0.0
        slots = np.flatnonzero(clicked)
        weights = self.click_model.default_weights(rewards.shape[0], slots)
        weights[slots] = 1.0
        return np.where(clicked, rewards, 0.0), weights

    def _update(
        self,
        arms: IntArray,
        xs: FloatArray,
        rewards: FloatArray,
        times: FloatArray,
        weights: FloatArray | None = None,
    ) -> None:
        if self._timed:
            assert isinstance(self.policy, Policy)
            self.policy.update_batch(arms, xs, rewards, times, weights)
        else:
            self.policy.update_batch(arms, xs, rewards)

    def flush(self) -> None:
        if self._buf:
            arms = np.concatenate([b[0] for b in self._buf])
            xs = np.concatenate([b[1] for b in self._buf])
            rewards = np.concatenate([b[2] for b in self._buf])
            times = np.concatenate([b[3] for b in self._buf])
            parts = [b[4] for b in self._buf if b[4] is not None]
            weights = np.concatenate(parts) if self._weighted else None
            self._buf.clear()
            self._update(arms, xs, rewards, times, weights)

    def close(self) -> None:
        self.flush()
        close = getattr(self.policy, "close", None)
        if close is not None:
            close()


# ------------------------------------------------------------------ traces
@dataclass(frozen=True, eq=False)
class Trace:
    """One run: per-round reward (sum over slots) and expected regret."""

    rewards: FloatArray
    regrets: FloatArray
    seconds: float


def run_agent(
    agent: Agent,
    world: World,
    rounds: int,
    k: int,
    progress: Progress | None = None,
) -> Trace:
    """Run ``agent`` on the first ``rounds`` rounds of ``world``, showing ``k`` arms each."""
    check_rounds(rounds)
    check_k(world, k)
    rewards = np.empty(rounds)
    regrets = np.empty(rounds)
    t0 = time.perf_counter()
    try:
        for rnd in world.rounds(rounds):
            if rnd.new_arms:
                agent.add_arms(world, rnd.new_arms)
            order = agent.choose(rnd, k)
            r, regret = rnd.play(order)
            agent.learn(rnd, order, r)
            rewards[rnd.t] = r.sum()
            regrets[rnd.t] = regret
            if progress is not None and rnd.t & 255 == 255:
                progress.advance(256)
    finally:
        agent.close()
    if progress is not None:
        progress.advance(rounds & 255)
    return Trace(rewards, regrets, time.perf_counter() - t0)


def check_rounds(rounds: int) -> None:
    if not isinstance(rounds, int) or rounds < 1:
        raise InvalidArgument(f"rounds={rounds!r} must be a positive integer")


def check_k(world: World, k: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise InvalidArgument(f"k={k!r} must be a positive integer")
    m = world.min_eligible()
    if k > m:
        raise InvalidArgument(
            f"k={k} is larger than the {m} arms eligible in some rounds of world {world.name!r}"
        )
