"""Synthetic worlds: a stream of rounds with known expected rewards.

A world is built from an explicit ``numpy.random.Generator`` (its structure:
arm attributes, true weights) and then replays one fixed stream of rounds,
as often as asked: ``world.rounds(n)`` yields the same contexts, the same
eligible arms and the same reward draws every time. Running several policies
on one world therefore compares them on paired data.

Each ``Round`` carries

- ``context``: the request's features as a caller would send them
  (``bandit_engine.Context``: dense vector and/or named features),
- ``x``: the model's context vector, ``world.space.vector(...)`` (a
  ``FeatureSpace`` of the world's ``dim``),
- ``arms``: the eligible arms (world arm indices, ascending),
- ``means``: the expected reward of each eligible arm at the top slot,
- ``new_arms``: arms that appear at this round (round 0 brings the initial
  arms); a runner adds them to its policy before it chooses.

A ranked list shows arm ``order[j]`` at slot ``j``; a slot is examined with
probability ``examination[j]`` (position bias), so the expected reward of a
list is ``sum_j examination[j] * means[order[j]]`` and the regret of a list
is the best list's value minus its own (``Round.regret``). The sampled reward
of slot ``j`` is ``u < examination[j] * means[order[j]]``, where ``u`` is the
world's reward uniform for (round, arm) (see ``simulators._simkernels``).

Worlds: ``BernoulliWorld`` (K arms, fixed success rates),
``SwitchingBernoulliWorld`` (the same with rates that change once),
``DestinationsWorld`` (travellers x destinations, logistic click model over
feature crosses, position bias, drift, arriving arms),
``SupervisedWorld`` (a labelled dataset as a bandit: arms are classes,
reward 1 for the true label) and ``RankingWorld`` (ranked lists under a
position-based or cascade click model), in their modules; ``base`` holds
the contract and ``CachedWorld`` (a world's first rounds kept in memory, to replay one
stream to many contenders cheaply).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from bandit_engine import InvalidArgument
from simulators.worlds.base import CachedWorld, Round, World, WorldArm
from simulators.worlds.bernoulli import (
    BernoulliWorld,
    SwitchingBernoulliWorld,
    bernoulli_kl,
    lai_robbins_constant,
)
from simulators.worlds.destinations import DestinationsWorld
from simulators.worlds.ranking import CascadeRound, RankingWorld
from simulators.worlds.supervised import SupervisedWorld, make_labelled, sklearn_dataset

__all__ = [
    "WORLDS",
    "BernoulliWorld",
    "CachedWorld",
    "CascadeRound",
    "DestinationsWorld",
    "RankingWorld",
    "Round",
    "SupervisedWorld",
    "SwitchingBernoulliWorld",
    "World",
    "WorldArm",
    "bernoulli_kl",
    "lai_robbins_constant",
    "make_labelled",
    "make_world",
    "sklearn_dataset",
    "world_parameters",
]


WORLDS: dict[str, type[World]] = {
    w.name: w
    for w in (
        BernoulliWorld,
        DestinationsWorld,
        RankingWorld,
        SupervisedWorld,
        SwitchingBernoulliWorld,
    )
}


def make_world(name: str, rng: np.random.Generator, **params: Any) -> World:
    """Build a world by name, e.g. ``make_world("bernoulli", rng, probs=[0.1, 0.2])``."""
    try:
        cls = WORLDS[name]
    except KeyError:
        raise InvalidArgument(f"unknown world {name!r}; expected one of {sorted(WORLDS)}") from None
    known = world_parameters(cls)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise InvalidArgument(
            f"world {name!r} has no parameter {unknown[0]!r}; its parameters are {sorted(known)}"
        )
    pace = params.pop("seconds_per_round", World.seconds_per_round)
    if (
        isinstance(pace, bool)
        or not isinstance(pace, (int, float))
        or not math.isfinite(pace)
        or pace <= 0
    ):
        raise InvalidArgument(f"seconds_per_round={pace!r} must be a positive finite number")
    factory: Callable[..., World] = cls  # each world has its own keywords
    world = factory(rng, **params)
    world.seconds_per_round = float(pace)
    return world


def world_parameters(cls: type[World]) -> dict[str, Any]:
    """A world's keyword parameters and their defaults."""
    sig = inspect.signature(cls.__init__)
    own = {
        n: p.default for n, p in sig.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    return {**own, "seconds_per_round": World.seconds_per_round}
