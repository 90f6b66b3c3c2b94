"""The policy contract shared by the server and the simulators.

A policy ranks arms for a context and learns from (arm, context, reward)
events. Every policy has the same signature; non-contextual policies accept
and ignore the context, so no caller branches on the policy's type.

- Constructor arguments are the configuration and never change; learned state
  lives in private arrays. ``clone()`` builds a fresh policy from
  ``params()`` alone.
- Rewards reaching a policy are normalised to [0, 1] (the engine maps the
  experiment's reward range onto it).
- State of record is ``state_dict()``: sufficient statistics (or, for the
  logistic model, the Laplace posterior). Inverses and factors are caches that
  ``load_state_dict`` and ``refresh`` rebuild.
- Randomness comes from the ``numpy.random.Generator`` passed to each call.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from bandit_engine import kernels
from bandit_engine._exceptions import InvalidArgument
from bandit_engine.features import ArmFeatures
from bandit_engine.policies.forgetting import Forgetting

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Largest absolute feature value accepted. Beyond ~1e6 the precision matrix
#: (entries ~x^2 per event) loses the prior's diagonal to rounding.
MAX_ABS_FEATURE = 1e6


@dataclass(slots=True)  # not frozen: a frozen init costs several times more, on every draw
class Ranking:
    """Result of ``Policy.rank``: positions into the ``arms`` array, best first."""

    order: IntArray
    scores: FloatArray  # sampled score of each ranked arm, same order


#: The engine's default ``half_life_s``: evidence a day old counts half.
DEFAULT_HALF_LIFE_S = 86_400.0


class Policy(ABC):
    """Base class of every Thompson-sampling policy."""

    kind: ClassVar[str]
    contextual: ClassVar[bool] = True
    #: State arrays that are the prior plus a sum over events, whose evidence
    #: forgetting scales (``policies.merge``); empty: the state is not a sum.
    evidence_keys: ClassVar[tuple[str, ...]] = ()
    #: Whether those arrays hold a row per arm (else one model for all arms).
    evidence_per_arm: ClassVar[bool] = True

    def __init__(
        self,
        dim: int,
        *,
        decay: float = 1.0,
        half_life_s: float = 0.0,  # the engine's default: DEFAULT_HALF_LIFE_S
        refresh_every: int = 1000,
    ) -> None:
        if not isinstance(dim, int) or dim < 1:
            raise InvalidArgument(f"dim={dim!r} must be a positive integer")
        if not (0.0 < decay <= 1.0) or not math.isfinite(decay):
            raise InvalidArgument(f"decay={decay!r} must be in (0, 1]")
        if not (half_life_s >= 0.0) or not math.isfinite(half_life_s):
            raise InvalidArgument(f"half_life_s={half_life_s!r} must be a finite number >= 0")
        if refresh_every < 1:
            raise InvalidArgument(f"refresh_every={refresh_every!r} must be >= 1")
        self.dim = dim
        self.decay = float(decay)
        self.half_life_s = float(half_life_s)
        self.refresh_every = int(refresh_every)
        self._n_arms = 0
        self._capacity = 0
        self._pulls = np.zeros(0, dtype=np.int64)
        self._rsum = np.zeros(0)
        self._forget = Forgetting(self.half_life_s)

    # ---------------------------------------------------------------- config
    def params(self) -> dict[str, Any]:
        """Constructor arguments: ``type(self)(**self.params())`` is a fresh clone."""
        return {
            "dim": self.dim,
            "decay": self.decay,
            "half_life_s": self.half_life_s,
            "refresh_every": self.refresh_every,
        }

    def clone(self) -> Policy:
        """A policy with the same configuration and no learned state."""
        return type(self)(**self.params())

    # ------------------------------------------------------------------ arms
    @property
    def n_arms(self) -> int:
        return self._n_arms

    def add_arm(self, features: ArmFeatures | None = None) -> int:
        """Append an arm at its prior; return its index."""
        if self._n_arms == self._capacity:
            self._grow(max(8, 2 * self._capacity))
        idx = self._n_arms
        self._init_arm(idx, features)
        self._n_arms += 1
        return idx

    def _grow(self, capacity: int) -> None:
        self._pulls = _resized(self._pulls, capacity)
        self._rsum = _resized(self._rsum, capacity)
        self._grow_arrays(capacity)
        self._capacity = capacity

    @abstractmethod
    def _grow_arrays(self, capacity: int) -> None: ...

    @abstractmethod
    def _init_arm(self, idx: int, features: ArmFeatures | None) -> None: ...

    # ------------------------------------------------------------- decisions
    @abstractmethod
    def sample_scores(
        self, arms: IntArray, x: FloatArray | None, rng: np.random.Generator
    ) -> FloatArray:
        """One posterior draw of the score of each arm in ``arms``."""

    def rank(
        self, arms: IntArray, x: FloatArray | None, k: int, rng: np.random.Generator
    ) -> Ranking:
        """Thompson sampling: draw scores, return the top ``k`` (positions into ``arms``)."""
        arms = self._check_arms(arms)
        x = self._check_context(x)
        if not 1 <= k <= arms.shape[0]:
            raise InvalidArgument(f"k={k!r} must be between 1 and {arms.shape[0]}")
        scores = self.sample_scores(arms, x, rng)
        order = kernels.top_k(scores, k)
        return Ranking(order, scores[order])

    def decide(
        self, arms: IntArray, x: FloatArray | None, k: int, draws: int, rng: np.random.Generator
    ) -> tuple[Ranking, IntArray]:
        """``rank`` and ``first_slot_counts`` in one call (what a server does).

        Same draws from ``rng`` in the same order as calling the two.
        """
        arms = self._check_arms(arms)
        x = self._check_context(x)
        if not 1 <= k <= arms.shape[0]:
            raise InvalidArgument(f"k={k!r} must be between 1 and {arms.shape[0]}")
        if draws < 1:
            raise InvalidArgument(f"draws={draws!r} must be >= 1")
        order, scores, counts = self.decide_unchecked(arms, x, k, draws, rng)
        return Ranking(order, scores), counts

    def decide_unchecked(
        self, arms: IntArray, x: FloatArray | None, k: int, draws: int, rng: np.random.Generator
    ) -> tuple[IntArray, FloatArray, IntArray]:
        """``decide`` for arguments the caller has checked (int64 ``arms`` of
        this policy's arms, ``x`` of ``dim`` finite values within
        ``MAX_ABS_FEATURE``, 1 <= k <= len(arms), draws >= 1), as (order,
        scores of the ranked arms, first-slot counts): the engine's path,
        which checks its input once, itself. Policies override it to share
        work between the ranking and the counts."""
        scores = self.sample_scores(arms, x, rng)
        order = kernels.top_k(scores, k)
        return order, scores[order], self.first_slot_counts(arms, x, draws, rng)

    def decide_slots_unchecked(
        self, arms: IntArray, x: FloatArray | None, k: int, draws: int, rng: np.random.Generator
    ) -> tuple[IntArray, FloatArray, IntArray, IntArray]:
        """``decide_unchecked`` with per-slot counts: (order, scores of the
        ranked arms, slot counts, prefix counts), ``slot_counts`` of the
        served order."""
        scores = self.sample_scores(arms, x, rng)
        order = kernels.top_k(scores, k)
        slot, prefix = self.slot_counts(arms, x, order, draws, rng)
        return order, scores[order], slot, prefix

    def slot_counts(
        self,
        arms: IntArray,
        x: FloatArray | None,
        order: IntArray,
        draws: int,
        rng: np.random.Generator,
    ) -> tuple[IntArray, IntArray]:
        """In ``draws`` posterior draws, how often the arm at each position
        of ``order`` (positions into ``arms``, ranked) is ranked at that
        position, and how often the draw's first ``p + 1`` arms are
        ``order[:p + 1]`` (``kernels.slot_propensity``)."""
        raise NotImplementedError(f"{type(self).__name__} has no per-slot propensities")

    @abstractmethod
    def first_slot_counts(
        self, arms: IntArray, x: FloatArray | None, draws: int, rng: np.random.Generator
    ) -> IntArray:
        """In ``draws`` posterior draws, how often each arm scores highest."""

    def propensities(
        self, arms: IntArray, x: FloatArray | None, draws: int, rng: np.random.Generator
    ) -> FloatArray:
        """Monte Carlo estimate of P(arm is ranked first | x) for each arm."""
        arms = self._check_arms(arms)
        x = self._check_context(x)
        if draws < 1:
            raise InvalidArgument(f"draws={draws!r} must be >= 1")
        counts = self.first_slot_counts(arms, x, draws, rng)
        return np.asarray(counts, dtype=np.float64) / draws

    # --------------------------------------------------------------- learning
    def update(
        self,
        arm: int,
        x: FloatArray | None,
        reward: float,
        time: float | None = None,
        weight: float = 1.0,
    ) -> None:
        """Apply one event; reward normalised to [0, 1]; ``time``: when it
        was decided (seconds), for forgetting by time (``half_life_s``);
        ``weight``: how much it counts, in [0, 1] (``update_batch``)."""
        # [None, ...], not [None, :]: a 0-d context must reach the shape check
        xs = None if x is None else np.asarray(x, dtype=np.float64)[None, ...]
        times = None if time is None else np.array([time], dtype=np.float64)
        self.update_batch(
            np.array([arm], dtype=np.int64),
            xs,
            np.array([reward], dtype=float),
            times,
            None if weight == 1.0 else np.array([weight], dtype=float),
        )

    def update_batch(
        self,
        arms: IntArray,
        xs: FloatArray | None,
        rewards: FloatArray,
        times: FloatArray | None = None,
        weights: FloatArray | None = None,
    ) -> None:
        """Apply events in order, as if ``update`` were called for each.

        ``weights``: how much each event counts, in [0, 1] (a click model's
        weight, ``bandit_engine.core.click_models``; None: 1 each). An event
        of weight 0 changes no arm (its time still moves the clock).

        ``times``: when each event was decided, in seconds on any one clock
        (the engine: seconds since the Unix epoch); NaN or no ``times`` at
        all: a whole event at the policy's clock. With ``half_life_s`` > 0 an
        event counts 2^((t - clock) / half_life_s), the clock following the
        newest event time on a grid (``Forgetting``); otherwise times are not
        used.

        Everything is validated first: a bad event raises and applies nothing.
        """
        arms, xs, rewards, times, weights = check_events(self, arms, xs, rewards, times, weights)
        if times is None or self.half_life_s <= 0.0:
            self._apply_part(
                arms, xs, rewards, np.ones(arms.shape[0]) if weights is None else weights
            )
            return
        # forgetting by time: the events between two moves of the clock at a time
        cuts, ws = self._forget.plan(times)
        if weights is not None:
            ws = ws * weights
        start = 0
        for stop, factor in cuts:
            if stop > start:
                part = slice(start, stop)
                self._apply_part(arms[part], _rows(xs, part), rewards[part], ws[part])
            self._decay_all(factor)
            start = stop
        part = slice(start, arms.shape[0])
        self._apply_part(arms[part], _rows(xs, part), rewards[part], ws[part])

    def _apply_part(
        self, arms: IntArray, xs: FloatArray | None, rewards: FloatArray, weights: FloatArray
    ) -> None:
        """``_apply`` to the events of positive weight."""
        keep = weights > 0.0
        if not keep.all():
            if not keep.any():
                return
            arms, rewards, weights = arms[keep], rewards[keep], weights[keep]
            xs = None if xs is None else xs[keep]
        self._apply(arms, xs, rewards, weights)

    @abstractmethod
    def _apply(
        self, arms: IntArray, xs: FloatArray | None, rewards: FloatArray, weights: FloatArray
    ) -> None:
        """Apply checked events, each of its weight (1: a whole event)."""

    def _evidence_sums(
        self, arms: IntArray, xs: FloatArray | None, rewards: FloatArray, weights: FloatArray
    ) -> dict[str, np.ndarray]:
        """What checked events of these weights add to ``evidence_keys``
        (``policies.merge.evidence_of``), every arm's row."""
        raise NotImplementedError(f"{type(self).__name__} is not a sum of events")

    def _decay_arms(self, arms: IntArray, factors: FloatArray) -> None:
        """Scale the evidence of ``arms`` by ``factors`` (in [0, 1]), toward
        the prior: every policy that forgets by time (``half_life_s``) has it."""
        raise NotImplementedError(f"{type(self).__name__} does not forget by time")

    def _decay_all(self, factor: float) -> None:
        if factor < 1.0 and self._n_arms:
            self._decay_arms(np.arange(self._n_arms, dtype=np.int64), np.full(self._n_arms, factor))

    def advance_clock(self, time: float) -> None:
        """Move the forgetting clock to ``time`` as an event decided then
        would (a no-op without ``half_life_s``, or for a time the clock has
        passed): every arm's evidence decays to it."""
        if self.half_life_s > 0.0:
            cuts, _ = self._forget.plan(np.array([float(time)]))
            for _, factor in cuts:
                self._decay_all(factor)

    # -------------------------------------------------------------- summaries
    @abstractmethod
    def posterior(self, arm: int, x: FloatArray | None = None) -> tuple[float, float]:
        """Posterior mean and standard deviation of the arm's score at ``x``."""

    def _summary_point(self, arm: int, x: FloatArray | None) -> tuple[int, FloatArray]:
        """The checked arm and context of a ``posterior`` call; no context
        means the intercept alone (x = e_0)."""
        arm = self._check_arm(arm)
        if x is None:
            x = np.zeros(self.dim)
            x[0] = 1.0
        checked = self._check_context(x)
        assert checked is not None
        return arm, checked

    def pulls(self, arm: int) -> int:
        return int(self._pulls[self._check_arm(arm)])

    def reward_sum(self, arm: int) -> float:
        return float(self._rsum[self._check_arm(arm)])

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the state of record, trimmed to the arms in use."""
        n = self._n_arms
        out = {"pulls": self._pulls[:n].copy(), "reward_sum": self._rsum[:n].copy()}
        if self.half_life_s > 0.0 and self._forget.started:
            out["clock"] = np.array([self._forget.clock])
        out.update(self._state_arrays())
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Replace the learned state (arms included) and rebuild caches."""
        n = int(np.asarray(state["pulls"]).shape[0])
        self._n_arms = 0
        self._capacity = 0
        self._grow(max(8, n))
        self._n_arms = n
        self._pulls[:n] = state["pulls"]
        self._rsum[:n] = state["reward_sum"]
        # no clocks (a state from before forgetting by time, or without it):
        # each arm's clock starts at the next event
        self._load_arrays(state, n)
        # no clock (a state from before forgetting by time, or without it):
        # the clock starts at the next event
        self._forget.set_clock(float(state["clock"][0]) if "clock" in state else None)
        self.refresh()

    @abstractmethod
    def _state_arrays(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _load_arrays(self, state: dict[str, np.ndarray], n: int) -> None: ...

    def refresh(self) -> None:  # noqa: B027 - a policy without caches has nothing to do
        """Rebuild caches (inverses, factors) from the state of record."""

    # -------------------------------------------------------------- checking
    def _check_arm(self, arm: int) -> int:
        if not 0 <= int(arm) < self._n_arms:
            raise InvalidArgument(f"arm index {arm!r} out of range [0, {self._n_arms})")
        return int(arm)

    def _check_arms(self, arms: IntArray) -> IntArray:
        arms = np.ascontiguousarray(arms, dtype=np.int64)
        if arms.ndim != 1 or arms.shape[0] == 0:
            raise InvalidArgument("arms must be a non-empty 1-D array of arm indices")
        bad = kernels.first_out_of_range(arms, self._n_arms)
        if bad >= 0:
            raise InvalidArgument(f"arm index {int(arms[bad])} out of range [0, {self._n_arms})")
        return arms

    def _check_context(self, x: FloatArray | None) -> FloatArray | None:
        if not self.contextual:
            return None
        if x is None:
            raise InvalidArgument(f"{self.kind} needs a context vector of length {self.dim}")
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.shape != (self.dim,):
            raise InvalidArgument(f"context has shape {x.shape}; expected ({self.dim},)")
        if kernels.first_bad_feature(x, MAX_ABS_FEATURE) >= 0:
            _check_finite_features(x[None, :])  # raises, naming the value
        return x


def check_events(
    policy: Policy,
    arms: IntArray,
    xs: FloatArray | None,
    rewards: FloatArray,
    times: FloatArray | None = None,
    weights: FloatArray | None = None,
) -> tuple[IntArray, FloatArray | None, FloatArray, FloatArray | None, FloatArray | None]:
    """``policy.update_batch``'s arguments, checked and as contiguous
    arrays; ``InvalidArgument`` naming the first bad one."""
    arms = policy._check_arms(np.asarray(arms, dtype=np.int64))
    rewards = np.ascontiguousarray(rewards, dtype=np.float64)
    if rewards.shape != arms.shape:
        raise InvalidArgument(f"{rewards.shape[0]} rewards for {arms.shape[0]} arms")
    if times is not None:
        times = np.ascontiguousarray(times, dtype=np.float64)
        if times.shape != arms.shape:
            raise InvalidArgument(f"{times.shape[0]} times for {arms.shape[0]} arms")
        if np.isinf(times).any():
            i = int(np.flatnonzero(np.isinf(times))[0])
            raise InvalidArgument(f"time[{i}]={float(times[i])!r} must be finite (or NaN: unknown)")
    bad = ~np.isfinite(rewards) | (rewards < 0.0) | (rewards > 1.0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidArgument(f"reward[{i}]={float(rewards[i])!r} must be finite and in [0, 1]")
    if weights is not None:
        weights = np.ascontiguousarray(weights, dtype=np.float64)
        if weights.shape != arms.shape:
            raise InvalidArgument(f"{weights.shape[0]} weights for {arms.shape[0]} arms")
        bad = ~np.isfinite(weights) | (weights < 0.0) | (weights > 1.0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidArgument(f"weight[{i}]={float(weights[i])!r} must be finite and in [0, 1]")
    if policy.contextual:
        if xs is None:
            raise InvalidArgument(f"{policy.kind} needs a context for each event")
        xs = np.ascontiguousarray(xs, dtype=np.float64)
        if xs.ndim != 2 or xs.shape != (arms.shape[0], policy.dim):
            raise InvalidArgument(
                f"contexts have shape {xs.shape}; expected ({arms.shape[0]}, {policy.dim})"
            )
        _check_finite_features(xs)
    return arms, xs, rewards, times, weights


def _rows(xs: FloatArray | None, part: slice) -> FloatArray | None:
    return None if xs is None else xs[part]


def _check_finite_features(xs: FloatArray) -> None:
    bad = ~np.isfinite(xs) | (np.abs(xs) > MAX_ABS_FEATURE)
    if bad.any():
        r, c = (int(v[0]) for v in np.nonzero(bad))
        raise InvalidArgument(
            f"feature value {float(xs[r, c])!r} (event {r}, index {c}) must be finite with "
            f"|value| <= {MAX_ABS_FEATURE:g}"
        )


def _resized(arr: np.ndarray, capacity: int) -> np.ndarray:
    out = np.zeros((capacity, *arr.shape[1:]), dtype=arr.dtype)
    m = min(arr.shape[0], capacity)  # load_state_dict may shrink
    out[:m] = arr[:m]
    return out


def check_positive(name: str, value: float) -> float:
    v = float(value)
    if not (v > 0.0) or not math.isfinite(v):
        raise InvalidArgument(f"{name}={value!r} must be a positive finite number")
    return v
