"""``RankingWorld``: ranked lists with position bias, under a position-based or a
cascade click model, and a logistic attractiveness over a dense context.

The two click models (Chuklin, Markov & de Rijke 2015, "Click Models for Web
Search"):

- ``clicks="pbm"`` (position-based model; Richardson et al. 2007): slot ``p``
  is examined with probability ``examination[p]``, independently of the other
  slots, and an examined arm is clicked with its attractiveness. The rounds
  are the plain ``Round``: the value of a list is ``sum_p examination[p] *
  a[order[p]]``, and the best list puts the most attractive arm on top.
- ``clicks="cascade"`` (Craswell et al. 2008): the user scans the list from
  the top, clicks the first attractive arm and stops. With ``continuation``
  > 0 (a dependent click model, a DBN without satisfaction variables) the
  user goes on scanning after a click with that probability. The rounds are
  ``CascadeRound``: slot ``j`` is examined with probability ``prod_{i<j} (1 -
  a_i (1 - continuation))``, the value of a list is ``sum_j a_j prod_{i<j}
  (1 - a_i (1 - continuation))`` (expected clicks; ``1 - prod (1 - a_j)`` for
  the pure cascade) and it depends on the shown set only, not on its order:
  the best list is any ordering of the ``k`` most attractive arms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bandit_engine import Context, FeatureSpace, InvalidArgument
from bandit_engine.policies import FloatArray, IntArray
from simulators._simkernels import reward_uniforms
from simulators.worlds.base import Round, World, WorldArm

__all__ = ["CLICKS", "CascadeRound", "RankingWorld", "harmonic_examination"]

#: The click models of the world, by ``RankingWorld(clicks=...)``.
CLICKS = ("pbm", "cascade")


def harmonic_examination(n: int) -> FloatArray:
    """The default examination curve ``1 / (p + 1)`` of slots 0..n-1."""
    out: FloatArray = 1.0 / (1.0 + np.arange(n, dtype=np.float64))
    return out


def _sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-z))
    return out


@dataclass(frozen=True, eq=False)
class CascadeRound(Round):
    """A round whose clicks follow the cascade model (see the module docstring).

    ``means`` are the arms' attractiveness; ``examination`` is all ones (the
    chance a slot is examined depends on the arms above it, not on the slot
    alone). The click at slot ``j`` is ``uniforms[arm] < means[arm]`` when the
    slot is examined; after a click the user goes on when
    ``continue_uniforms[arm] < continuation``.
    """

    continuation: float
    continue_uniforms: FloatArray

    def _examined(self, attract: FloatArray) -> FloatArray:
        """P(slot j examined) for a list of attractiveness ``attract``."""
        stay = 1.0 - attract[:-1] * (1.0 - self.continuation)
        out: FloatArray = np.concatenate([[1.0], np.cumprod(stay)])
        return out

    def _value_of(self, attract: FloatArray) -> float:
        return float(self._examined(attract) @ attract)

    def value(self, order: IntArray) -> float:
        """Expected clicks on ``arms[order]`` shown in slot order."""
        order = self._check_order(order)
        return self._value_of(self.means[order])

    def best_value(self, k: int) -> float:
        """Expected clicks of the ``k`` most attractive arms (in any order)."""
        n = self.means.shape[0]
        if not 1 <= k <= n:
            raise InvalidArgument(f"k={k!r} must be between 1 and {n} (the eligible arms)")
        return self._value_of(np.sort(np.partition(self.means, n - k)[n - k :])[::-1])

    def _clicks(self, order: IntArray) -> FloatArray:
        attracted = self.uniforms[order] < self.means[order]
        stops = attracted & (self.continue_uniforms[order] >= self.continuation)
        before: IntArray = np.cumsum(stops) - stops  # stops strictly above each slot
        out: FloatArray = (attracted & (before == 0)).astype(np.float64)
        return out

    def play(self, order: IntArray) -> tuple[FloatArray, float]:
        order = self._check_order(order)
        regret = max(0.0, self.best_value(order.shape[0]) - self._value_of(self.means[order]))
        return self._clicks(order), regret

    def rewards(self, order: IntArray) -> FloatArray:
        """Clicks (0 or 1) of each shown slot; the same for the same (round, list)."""
        return self._clicks(self._check_order(order))


class RankingWorld(World):
    """K arms shown as ranked lists; clicks by a position-based or cascade model.

    The attractiveness of arm ``a`` for a context ``z`` (``context_dim`` i.i.d.
    standard normal values, a fresh draw each round) is::

        sigmoid(base + popularity[a] + theta[a] . z)

    with ``popularity[a] ~ N(0, popularity_scale^2)`` and ``theta[a] ~ N(0,
    context_scale^2 / context_dim)`` per coordinate (so ``theta[a] . z`` has
    standard deviation ``context_scale``), drawn once from the world's
    generator. The request context is ``Context(dense=z)``; the model context is
    the intercept and ``z`` (``dim = 1 + context_dim``). Every arm is eligible
    every round.

    ``clicks``: ``"pbm"`` (slot ``p`` examined with probability
    ``examination[p]``; default ``1 / (p + 1)``; a shorter curve repeats its
    last value) or ``"cascade"`` (scan from the top, stop after a click unless
    the user continues, with probability ``continuation``). The examination
    curve is for ``pbm`` and ``continuation`` for ``cascade``.
    """

    name = "ranking"

    def __init__(
        self,
        rng: np.random.Generator,
        *,
        n_arms: int = 30,
        context_dim: int = 5,
        clicks: str = "pbm",
        examination: Sequence[float] | None = None,
        continuation: float = 0.0,
        base: float = -2.0,
        popularity_scale: float = 1.0,
        context_scale: float = 1.0,
    ) -> None:
        if isinstance(n_arms, bool) or not isinstance(n_arms, int) or n_arms < 2:
            raise InvalidArgument(f"n_arms={n_arms!r} must be an integer >= 2")
        if isinstance(context_dim, bool) or not isinstance(context_dim, int) or context_dim < 0:
            raise InvalidArgument(f"context_dim={context_dim!r} must be a non-negative integer")
        if clicks not in CLICKS:
            raise InvalidArgument(f"clicks={clicks!r} unknown; expected one of {list(CLICKS)}")
        for nm, v in (
            ("continuation", continuation),
            ("base", base),
            ("popularity_scale", popularity_scale),
            ("context_scale", context_scale),
        ):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InvalidArgument(f"{nm}={v!r} must be a finite number")
        if not 0.0 <= continuation < 1.0:
            raise InvalidArgument(f"continuation={continuation!r} must be in [0, 1)")
        if clicks != "cascade" and continuation != 0.0:
            raise InvalidArgument(
                f"continuation={continuation!r} is for clicks='cascade'; clicks={clicks!r}"
            )
        for nm, v in (("popularity_scale", popularity_scale), ("context_scale", context_scale)):
            if v < 0.0:
                raise InvalidArgument(f"{nm}={v!r} must be >= 0")
        if clicks == "cascade" and examination is not None:
            raise InvalidArgument(
                "examination is for clicks='pbm'; a cascade examines a slot when no click "
                "above it stopped the scan"
            )
        self.clicks = clicks
        self.continuation = float(continuation)
        self.context_dim = context_dim
        self.base = float(base)
        self._exam = _check_curve(examination, n_arms) if clicks == "pbm" else np.ones(n_arms)
        self.params: dict[str, Any] = {
            "n_arms": n_arms, "context_dim": context_dim, "clicks": clicks,
            "examination": self._exam.tolist() if clicks == "pbm" else None,
            "continuation": self.continuation, "base": self.base,
            "popularity_scale": float(popularity_scale), "context_scale": float(context_scale),
        }  # fmt: skip
        self.space = FeatureSpace(1 + context_dim, dense_dim=context_dim)
        self.popularity = rng.normal(0.0, popularity_scale, n_arms)
        scale = context_scale / math.sqrt(context_dim) if context_dim else 0.0
        self.theta = rng.normal(0.0, scale, (n_arms, context_dim))
        self._arms = [WorldArm(f"item{i:03d}") for i in range(n_arms)]
        self._all = np.arange(n_arms, dtype=np.int64)
        self._draw_stream_seed(rng)
        # the continuation uniforms: a third stream, independent of contexts and clicks
        cont = np.random.SeedSequence(self._stream_seed, spawn_key=(2,))
        self._continue_key = int(cont.generate_state(1, np.uint64)[0] >> np.uint64(1))

    @property
    def examination(self) -> FloatArray:
        """The true examination curve of slots 0..n_arms-1 (ones for a cascade)."""
        return self._exam.copy()

    def attractiveness(self, z: FloatArray) -> FloatArray:
        """The attractiveness of every arm for the dense context ``z``."""
        out: FloatArray = _sigmoid(self.base + self.popularity + self.theta @ z)
        return out

    def _draw_chunk(self, rng: np.random.Generator, size: int) -> Any:
        return rng.standard_normal((size, self.context_dim))

    def _round(self, t: int, chunk: Any, i: int, key: int) -> Round:
        z = chunk[i]
        x = np.empty(self.space.dim)
        x[0] = 1.0
        x[1:] = z
        ctx = Context(dense=tuple(z.tolist()))
        new = tuple(range(self._all.shape[0])) if t == 0 else ()
        means = self.attractiveness(z)
        u = reward_uniforms(key, t, self._all)
        if self.clicks == "pbm":
            return Round(t, ctx, x, self._all, means, self._exam, new, u)
        v = (
            reward_uniforms(self._continue_key, t, self._all)
            if self.continuation > 0.0
            else np.zeros(self._all.shape[0])  # 0 >= continuation: every click stops
        )
        return CascadeRound(t, ctx, x, self._all, means, self._exam, new, u, self.continuation, v)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}


def _check_curve(curve: Sequence[float] | None, n: int) -> FloatArray:
    """The examination curve over ``n`` slots: given (non-increasing values in
    (0, 1], extended with the last) or ``1 / (p + 1)``."""
    if curve is None:
        return harmonic_examination(n)
    if isinstance(curve, (str, bytes)) or not isinstance(curve, (Sequence, np.ndarray)):
        raise InvalidArgument(f"examination={curve!r:.200} must be a list of probabilities")
    values = list(curve)
    if not values:
        raise InvalidArgument("examination=[] needs at least one slot")
    for p, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise InvalidArgument(f"examination[{p}]={v!r} must be a number")
        if not (math.isfinite(float(v)) and 0.0 < float(v) <= 1.0):
            raise InvalidArgument(f"examination[{p}]={v!r} must be in (0, 1]")
        if p and float(v) > float(values[p - 1]):
            raise InvalidArgument(
                f"examination[{p}]={v!r} exceeds examination[{p - 1}]={values[p - 1]!r}: "
                "the curve must not increase down the list"
            )
    e = np.asarray(values[:n], dtype=np.float64)
    if e.shape[0] < n:
        e = np.concatenate([e, np.full(n - e.shape[0], e[-1])])
    return e
