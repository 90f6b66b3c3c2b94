"""The world contract: ``World``, its rounds (``Round``) and its arms (``WorldArm``).

A world replays one fixed stream of rounds (``World.rounds``); a subclass
draws its structure in ``__init__``, calls ``_draw_stream_seed`` last, and
builds each round in ``_round``. See ``simulators.worlds`` for the model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from bandit_engine import ArmFeatures, Context, FeatureSpace, InvalidArgument
from bandit_engine.policies import FloatArray, IntArray

__all__ = ["CachedWorld", "Round", "World", "WorldArm"]

_CHUNK = 1024  # rounds of contexts drawn at once (fixed: a stream's prefix never changes)


# ------------------------------------------------------------------- rounds
@dataclass(frozen=True)
class WorldArm:
    """An arm as the world describes it: id and named attributes."""

    arm_id: str
    numeric: Mapping[str, float] = field(default_factory=dict)
    categorical: tuple[str, ...] = ()

    def features(self) -> ArmFeatures:
        """The arm's features for ``Policy.add_arm`` (the shared model crosses them)."""
        return ArmFeatures.build(self.arm_id, self.numeric, self.categorical)

    def features_dict(self) -> dict[str, Any]:
        """The arm's features as the engine's ``add_arms`` and ``AddArms`` take them."""
        return {"numeric": dict(self.numeric), "categorical": list(self.categorical)}


@dataclass(frozen=True, eq=False)
class Round:
    """One round of a world: context, eligible arms, expected and sampled rewards."""

    t: int
    context: Context
    x: FloatArray
    arms: IntArray
    means: FloatArray
    examination: FloatArray
    new_arms: tuple[int, ...]
    uniforms: FloatArray  # the reward uniform of each eligible arm

    def _check_order(self, order: IntArray) -> IntArray:
        order = np.asarray(order, dtype=np.int64)
        n = self.arms.shape[0]
        if order.ndim != 1 or not 1 <= order.shape[0] <= n:
            raise InvalidArgument(
                f"a ranking of {order.shape} positions at round {self.t}; expected 1 to {n}"
            )
        m = order.shape[0]
        if (
            order.min() < 0
            or order.max() >= n
            or (m > 1 and len(set(order.tolist())) != m)  # set: cheaper than unique for small k
        ):
            raise InvalidArgument(
                f"ranking {order.tolist()!r} at round {self.t} must be distinct positions "
                f"into the {n} eligible arms"
            )
        return order

    def value(self, order: IntArray) -> float:
        """Expected reward of showing ``arms[order]`` in slot order."""
        order = self._check_order(order)
        return float(self.examination[: order.shape[0]] @ self.means[order])

    def best_value(self, k: int) -> float:
        """Expected reward of the best list of ``k`` arms (best arm in the top slot)."""
        n = self.means.shape[0]
        if not 1 <= k <= n:
            raise InvalidArgument(f"k={k!r} must be between 1 and {n} (the eligible arms)")
        if k == 1:
            return float(self.means.max())
        # examination decreases with the slot: the best list is sorted by mean
        top = np.sort(np.partition(self.means, n - k)[n - k :])[::-1]
        return float(self.examination[:k] @ top)

    def regret(self, order: IntArray) -> float:
        """Expected regret of the list: ``best_value(k) - value(order)`` (>= 0)."""
        order = self._check_order(order)
        return max(0.0, self.best_value(order.shape[0]) - self.value(order))

    def play(self, order: IntArray) -> tuple[FloatArray, float]:
        """``(rewards(order), regret(order))`` with one check of ``order`` (for runners)."""
        order = self._check_order(order)
        e = self.examination[: order.shape[0]]
        shown = self.means[order]
        regret = max(0.0, self.best_value(order.shape[0]) - float(e @ shown))
        return (self.uniforms[order] < shown * e).astype(np.float64), regret

    def rewards(self, order: IntArray) -> FloatArray:
        """Sampled reward (0 or 1) of each shown slot; the same for the same (round, arm, slot)."""
        order = self._check_order(order)
        p = self.means[order] * self.examination[: order.shape[0]]
        return (self.uniforms[order] < p).astype(np.float64)


# -------------------------------------------------------------------- base
class World(ABC):
    """A replayable stream of rounds; see the module docstring."""

    name: ClassVar[str]

    space: FeatureSpace
    _arms: list[WorldArm]
    _stream_seed: int
    #: the world's pace: round t is decided at t * seconds_per_round seconds
    #: (forgetting by time, ``half_life_s``, counts those seconds); any
    #: world takes it as a parameter (``make_world``). The default, 100
    #: decisions a second, is one experiment's traffic on a modest site; at
    #: one decision a second the default one-day half-life forgets within a
    #: 10^6-round run (docs/performance.md, forgetting against stationary regret)
    seconds_per_round: float = 0.01

    def _draw_stream_seed(self, rng: np.random.Generator) -> None:
        """Call last in ``__init__``: the stream's seed, after the structure."""
        self._stream_seed = int(rng.integers(0, 2**63 - 1))

    @property
    def n_arms(self) -> int:
        """Arms the world will ever have (arriving ones included)."""
        return len(self._arms)

    def arm(self, index: int) -> WorldArm:
        if not 0 <= index < len(self._arms):
            raise InvalidArgument(f"arm index {index!r} out of range [0, {len(self._arms)})")
        return self._arms[index]

    def rounds(self, n: int) -> Iterator[Round]:
        """The first ``n`` rounds of the stream (the same ones on every call)."""
        if not isinstance(n, int) or n < 1:
            raise InvalidArgument(f"rounds={n!r} must be a positive integer")
        rng = np.random.default_rng(self._stream_seeds()[0])
        key = self.reward_key()
        t = 0
        while t < n:
            chunk = self._draw_chunk(rng, _CHUNK)
            for i in range(min(_CHUNK, n - t)):
                yield self._round(t, chunk, i, key)
                t += 1

    def _stream_seeds(self) -> list[np.random.SeedSequence]:
        return np.random.SeedSequence(self._stream_seed).spawn(2)  # contexts, rewards

    def reward_key(self) -> int:
        """The key of the reward stream: ``_simkernels.reward_uniform(key, t, arm)``."""
        return int(self._stream_seeds()[1].generate_state(1, np.uint64)[0] >> np.uint64(1))

    def _draw_chunk(self, rng: np.random.Generator, size: int) -> Any:
        """Random inputs of ``size`` consecutive rounds (contexts), drawn at once."""
        return None

    @abstractmethod
    def _round(self, t: int, chunk: Any, i: int, key: int) -> Round: ...

    def min_eligible(self) -> int:
        """The fewest eligible arms any round has (the largest usable ``k``)."""
        return len(self._arms)

    def regret_lower_bound(self, t: FloatArray, k: int) -> FloatArray | None:
        """An asymptotic lower bound on expected cumulative regret at rounds ``t``, if known."""
        return None

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The world's parameters, JSON-ready."""


class CachedWorld(World):
    """The first ``n`` rounds of another world, built once and kept in memory.

    Runs that replay one stream many times (several contenders on the same
    world and seed) then pay for building each round once: ``rounds(m)``
    for ``m <= n`` yields the very ``Round`` objects of ``world.rounds(n)``.
    Arms, feature space, eligibility and description are the wrapped world's.
    """

    name = "cached"

    def __init__(self, world: World, n: int) -> None:
        self.world = world
        self.seconds_per_round = world.seconds_per_round
        self.space = world.space
        self._arms = [world.arm(i) for i in range(world.n_arms)]
        self._cached = list(world.rounds(n))
        self._stream_seed = 0  # unused: rounds come from the cache

    def rounds(self, n: int) -> Iterator[Round]:
        if not isinstance(n, int) or not 1 <= n <= len(self._cached):
            raise InvalidArgument(
                f"rounds={n!r} must be a positive integer of at most {len(self._cached)} "
                "(the rounds this cache holds)"
            )
        return iter(self._cached[:n])

    def reward_key(self) -> int:
        return self.world.reward_key()

    def _round(self, t: int, chunk: Any, i: int, key: int) -> Round:
        return self._cached[t]

    def min_eligible(self) -> int:
        return self.world.min_eligible()

    def regret_lower_bound(self, t: FloatArray, k: int) -> FloatArray | None:
        return self.world.regret_lower_bound(t, k)

    def describe(self) -> dict[str, Any]:
        return self.world.describe()
