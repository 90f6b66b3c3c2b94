"""``BernoulliWorld``: K arms with fixed success rates, and the Lai-Robbins bound;
``SwitchingBernoulliWorld``: the same arms with rates that change once."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bandit_engine import Context, FeatureSpace, InvalidArgument
from bandit_engine.policies import FloatArray
from simulators._simkernels import reward_uniforms
from simulators.worlds.base import Round, World, WorldArm

__all__ = ["BernoulliWorld", "SwitchingBernoulliWorld", "bernoulli_kl", "lai_robbins_constant"]


def bernoulli_kl(p: float, q: float) -> float:
    """KL(Bernoulli(p) || Bernoulli(q)); infinite when q is 0 or 1 and p differs."""
    if not (0.0 <= p <= 1.0 and 0.0 <= q <= 1.0):
        raise InvalidArgument(f"bernoulli_kl({p!r}, {q!r}): both must be in [0, 1]")

    def term(a: float, b: float) -> float:
        if a == 0.0:
            return 0.0
        if b == 0.0:
            return math.inf
        return a * math.log(a / b)

    return term(p, q) + term(1.0 - p, 1.0 - q)


def lai_robbins_constant(means: Sequence[float]) -> float:
    """``sum over suboptimal a of (mu* - mu_a) / KL(mu_a, mu*)``; regret >= this * log t.

    Lai & Robbins (1985): any consistent policy on Bernoulli arms has
    ``liminf E[R_t] / log t >= `` this constant. Arms tied with the best
    contribute nothing; so does every arm when ``mu* = 1`` (KL is infinite).
    """
    mu = [float(m) for m in means]
    best = max(mu)
    total = 0.0
    for m in mu:
        if m < best:
            total += (best - m) / bernoulli_kl(m, best)
    return total


def _check_probs(name: str, probs: Sequence[float]) -> FloatArray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 1 or p.shape[0] < 2:
        raise InvalidArgument(f"{name}={list(p.ravel())!r} must list at least 2 arms")
    bad = ~np.isfinite(p) | (p < 0.0) | (p > 1.0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidArgument(f"{name}[{i}]={float(p[i])!r} must be in [0, 1]")
    return p


class BernoulliWorld(World):
    """K arms; arm ``a`` pays 1 with probability ``probs[a]``. No context.

    Without ``probs``, the ``n_arms`` rates are evenly spaced from 0.1 to
    0.5, so seeds differ only in their streams (draws), not in the arms.

    Every arm is eligible in every round; slots are all examined (a list of
    ``k`` arms is ``k`` plays). The model context is the intercept alone
    (``dim`` 1).
    """

    name = "bernoulli"

    def __init__(
        self,
        rng: np.random.Generator,
        *,
        probs: Sequence[float] | None = None,
        n_arms: int = 10,
    ) -> None:
        if probs is None:
            if not isinstance(n_arms, int) or n_arms < 2:
                raise InvalidArgument(f"n_arms={n_arms!r} must be an integer >= 2")
            probs = np.linspace(0.1, 0.5, n_arms).tolist()
        p = _check_probs("probs", probs)
        self.probs = p
        self.space = FeatureSpace(1)
        self._arms = [WorldArm(f"arm{i}") for i in range(p.shape[0])]
        self._all = np.arange(p.shape[0], dtype=np.int64)
        self._x = self.space.baseline()
        self._exam = np.ones(p.shape[0])
        self._context = Context()
        self._draw_stream_seed(rng)

    def _round(self, t: int, chunk: Any, i: int, key: int) -> Round:
        return Round(
            t,
            self._context,
            self._x,
            self._all,
            self.probs,
            self._exam,
            tuple(range(self._all.shape[0])) if t == 0 else (),
            reward_uniforms(key, t, self._all),
        )

    def regret_lower_bound(self, t: FloatArray, k: int) -> FloatArray | None:
        if k != 1:
            return None
        out: FloatArray = lai_robbins_constant(self.probs.tolist()) * np.log(
            np.maximum(np.asarray(t, dtype=np.float64), 1.0)
        )
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "n_arms": int(self.probs.shape[0]), "probs": self.probs.tolist()}


class SwitchingBernoulliWorld(World):
    """Bernoulli arms whose success rates change once (a non-stationary world).

    Arm ``a`` pays 1 with probability ``probs[a]`` before round ``switch_at``
    and ``probs_after[a]`` from it on. The defaults are an unplayed arm that
    improves: arm 1 is the worse arm (0.3 against 0.6) until the switch and
    the better one (0.8) after it, so a policy that stopped playing it must
    explore again to notice. ``probs_after=(0.3, 0.6)`` swaps the arms. No
    context (``dim`` 1); every arm is eligible in every round.
    """

    name = "bernoulli_switch"

    def __init__(
        self,
        rng: np.random.Generator,
        *,
        probs: Sequence[float] = (0.6, 0.3),
        probs_after: Sequence[float] = (0.6, 0.8),
        switch_at: int = 10_000,
    ) -> None:
        before = _check_probs("probs", probs)
        after = _check_probs("probs_after", probs_after)
        if after.shape != before.shape:
            raise InvalidArgument(
                f"probs_after has {after.shape[0]} arms; probs has {before.shape[0]}"
            )
        if not isinstance(switch_at, int) or switch_at < 0:
            raise InvalidArgument(f"switch_at={switch_at!r} must be a non-negative integer")
        self.probs = before
        self.probs_after = after
        self.switch_at = switch_at
        self.space = FeatureSpace(1)
        self._arms = [WorldArm(f"arm{i}") for i in range(before.shape[0])]
        self._all = np.arange(before.shape[0], dtype=np.int64)
        self._x = self.space.baseline()
        self._exam = np.ones(before.shape[0])
        self._context = Context()
        self._draw_stream_seed(rng)

    def probs_at(self, t: int) -> FloatArray:
        """The arms' success rates at round ``t``."""
        return self.probs if t < self.switch_at else self.probs_after

    def _round(self, t: int, chunk: Any, i: int, key: int) -> Round:
        return Round(
            t, self._context, self._x, self._all, self.probs_at(t), self._exam,
            tuple(range(self._all.shape[0])) if t == 0 else (),
            reward_uniforms(key, t, self._all),
        )  # fmt: skip

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "probs": self.probs.tolist(),
            "probs_after": self.probs_after.tolist(),
            "switch_at": self.switch_at,
        }
