"""Synthetic worlds: a stream of rounds with known expected rewards.

A world is built from an explicit ``numpy.random.Generator`` (its structure:
arm attributes, true weights) and then replays one fixed stream of rounds,
as often as asked: ``world.rounds(n)`` yields the same contexts, the same
eligible arms and the same reward draws every time. Running several policies
on one world therefore compares them on paired data.

Each ``Round`` carries

- ``context``: the request's features as a caller would send them
  (``bandit_engine.core.engine.Context``: dense vector and/or named features),
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
world's reward uniform for (round, arm) (see ``_simkernels``).

Worlds: ``BernoulliWorld`` (K arms, fixed success rates),
``DestinationsWorld`` (travellers x destinations, logistic click model over
feature crosses, position bias, drift, arriving arms) and
``SupervisedWorld`` (a labelled dataset as a bandit: arms are classes,
reward 1 for the true label).
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from bandit_engine import ArmFeatures, Context, FeatureSpace, InvalidArgument
from simulators._simkernels import reward_uniforms

__all__ = [
    "WORLDS",
    "BernoulliWorld",
    "DestinationsWorld",
    "Round",
    "SupervisedWorld",
    "World",
    "WorldArm",
    "bernoulli_kl",
    "lai_robbins_constant",
    "make_labelled",
    "make_world",
    "sklearn_dataset",
    "world_parameters",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

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


def _examination(n: int, position_bias: float) -> FloatArray:
    return (1.0 + np.arange(n, dtype=np.float64)) ** -position_bias


def _sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-z))
    return out


# --------------------------------------------------------------- Bernoulli
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
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim != 1 or p.shape[0] < 2:
            raise InvalidArgument(f"probs={list(p.ravel())!r} must list at least 2 arms")
        bad = ~np.isfinite(p) | (p < 0.0) | (p > 1.0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidArgument(f"probs[{i}]={float(p[i])!r} must be in [0, 1]")
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


# ------------------------------------------------------------- destinations
HOME_COUNTRIES = ("NL", "DE", "FR", "GB", "US", "ES", "IT", "JP")
HOME_WEIGHTS = (0.16, 0.2, 0.14, 0.16, 0.12, 0.08, 0.08, 0.06)
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_WEIGHTS = (0.6, 0.32, 0.08)
PARTIES = ("solo", "couple", "family", "friends")
PARTY_WEIGHTS = (0.25, 0.35, 0.28, 0.12)
TRIPS = ("weekend", "week", "long")  # nights 1-3, 4-8, 9+
DEST_COUNTRIES = (
    "NL", "DE", "FR", "GB", "US", "ES", "IT", "JP", "PT", "GR",
    "HR", "AT", "CH", "NO", "TH", "MX", "MA", "TR", "IS", "AU",
)  # fmt: skip
DEST_TYPES = ("beach", "city", "mountain", "countryside", "ski", "island")
PRICE_LEVELS = 4


def _trip_bucket(nights: IntArray) -> IntArray:
    out: IntArray = np.where(nights <= 3, 0, np.where(nights <= 8, 1, 2)).astype(np.int64)
    return out


class DestinationsWorld(World):
    """Travellers x destinations with a logistic click model over feature crosses.

    A traveller has a home country, a device, a party (solo, couple...) and a
    trip length (nights, bucketed weekend / week / long). A destination has a
    country, a type (beach, city...) and a price level 1-4. The click
    probability of destination ``a`` at the top slot is::

        sigmoid(base + popularity[a] + domestic * [home == country(a)]
                + sum over traveller features f, destination attributes g of W_t[f, g])

    where ``W_t = cos(theta_t) W0 + sin(theta_t) W1`` turns from one random
    preference matrix to another independent one as ``theta_t = (pi/2) t /
    drift_period`` grows (no drift when ``drift_period`` is None); both have
    i.i.d. N(0, ``cross_scale``^2) entries, so the spread of preferences stays
    the same while their direction changes. Slot ``j`` is examined with
    probability ``(j + 1) ** -position_bias``.

    ``n_arms`` destinations exist at round 0; ``new_arms`` more arrive, one
    every ``arrival_every`` rounds. Each round offers ``candidates`` random
    destinations among those present (all of them when None).

    The context is categorical features ``home=NL``, ``device=mobile``,
    ``party=couple``, ``trip=week`` and the numeric ``nights`` (divided by
    7), hashed into a ``FeatureSpace(dim)``. Arms carry ``country=FR``,
    ``type=beach``, ``price=3`` (for the shared model).
    """

    name = "destinations"

    def __init__(
        self,
        rng: np.random.Generator,
        *,
        n_arms: int = 100,
        dim: int = 32,
        candidates: int | None = None,
        new_arms: int = 0,
        arrival_every: int = 100,
        drift_period: int | None = None,
        position_bias: float = 1.0,
        base: float = -3.0,
        cross_scale: float = 0.3,
        popularity_scale: float = 0.5,
        domestic: float = 0.7,
    ) -> None:
        if not isinstance(n_arms, int) or n_arms < 2:
            raise InvalidArgument(f"n_arms={n_arms!r} must be an integer >= 2")
        if not isinstance(new_arms, int) or new_arms < 0:
            raise InvalidArgument(f"new_arms={new_arms!r} must be a non-negative integer")
        if not isinstance(arrival_every, int) or arrival_every < 1:
            raise InvalidArgument(f"arrival_every={arrival_every!r} must be a positive integer")
        if candidates is not None and not (isinstance(candidates, int) and 1 <= candidates):
            raise InvalidArgument(f"candidates={candidates!r} must be a positive integer or None")
        if candidates is not None and candidates > n_arms:
            raise InvalidArgument(
                f"candidates={candidates!r} is larger than the {n_arms} initial arms"
            )
        if drift_period is not None and not (isinstance(drift_period, int) and drift_period > 0):
            raise InvalidArgument(
                f"drift_period={drift_period!r} must be a positive integer or None"
            )
        if not (math.isfinite(position_bias) and position_bias >= 0.0):
            raise InvalidArgument(f"position_bias={position_bias!r} must be finite and >= 0")
        for nm, v in (("cross_scale", cross_scale), ("popularity_scale", popularity_scale)):
            if not (math.isfinite(v) and v >= 0.0):
                raise InvalidArgument(f"{nm}={v!r} must be finite and >= 0")
        self.params: dict[str, Any] = {
            "n_arms": n_arms, "dim": dim, "candidates": candidates,
            "new_arms": new_arms, "arrival_every": arrival_every, "drift_period": drift_period,
            "position_bias": float(position_bias), "base": float(base),
            "cross_scale": float(cross_scale), "popularity_scale": float(popularity_scale),
            "domestic": float(domestic),
        }  # fmt: skip
        self.space = FeatureSpace(dim)  # validates dim
        total = n_arms + new_arms
        self.n_initial = n_arms
        self.candidates = candidates
        self.arrival_every = arrival_every
        self.drift_period = drift_period
        self.base = float(base)
        self.domestic = float(domestic)

        # destinations
        nc, nt = len(DEST_COUNTRIES), len(DEST_TYPES)
        self.dest_country = rng.integers(0, nc, total).astype(np.int64)
        self.dest_type = rng.integers(0, nt, total).astype(np.int64)
        self.dest_price = rng.integers(0, PRICE_LEVELS, total).astype(np.int64)
        self.popularity = rng.normal(0.0, popularity_scale, total)
        self._arms = [
            WorldArm(
                f"d{i:04d}-{DEST_COUNTRIES[c]}-{DEST_TYPES[ty]}",
                categorical=(
                    f"country={DEST_COUNTRIES[c]}",
                    f"type={DEST_TYPES[ty]}",
                    f"price={p + 1}",
                ),
            )
            for i, (c, ty, p) in enumerate(
                zip(self.dest_country, self.dest_type, self.dest_price, strict=True)
            )
        ]
        # home country of each destination country, for the domestic effect (-1: none)
        self._home_of_dest = np.array(
            [HOME_COUNTRIES.index(c) if c in HOME_COUNTRIES else -1 for c in DEST_COUNTRIES]
        )
        # preference crosses: traveller one-hot rows x destination one-hot columns
        self._t_sizes = (len(HOME_COUNTRIES), len(DEVICES), len(PARTIES), len(TRIPS))
        self._d_sizes = (nc, nt, PRICE_LEVELS)
        n_t, n_d = sum(self._t_sizes), sum(self._d_sizes)
        self._w0 = rng.normal(0.0, cross_scale, (n_t, n_d))
        self._w1 = rng.normal(0.0, cross_scale, (n_t, n_d))
        self._dcol = np.stack(
            [self.dest_country, nc + self.dest_type, nc + nt + self.dest_price], axis=1
        )
        self._exam = _examination(max(total, 1), position_bias)
        self._draw_stream_seed(rng)

    # ------------------------------------------------------------ stream
    def present(self, t: int) -> int:
        """Number of destinations present at round ``t``."""
        extra = min(self.n_arms - self.n_initial, t // self.arrival_every)
        return self.n_initial + extra

    def _draw_chunk(self, rng: np.random.Generator, size: int) -> Any:
        home = rng.choice(len(HOME_COUNTRIES), size, p=HOME_WEIGHTS)
        device = rng.choice(len(DEVICES), size, p=DEVICE_WEIGHTS)
        party = rng.choice(len(PARTIES), size, p=PARTY_WEIGHTS)
        nights = 1 + rng.poisson(4.0, size)
        cand_seed = int(rng.integers(0, 2**63 - 1))
        return home, device, party, nights.astype(np.int64), cand_seed

    def preference_weights(self, t: int) -> FloatArray:
        """``W_t``, the cross weights at round ``t``."""
        if self.drift_period is None:
            return self._w0
        theta = 0.5 * math.pi * t / self.drift_period
        out: FloatArray = math.cos(theta) * self._w0 + math.sin(theta) * self._w1
        return out

    def click_probs(self, t: int, traveller: Sequence[int], arms: IntArray) -> FloatArray:
        """Top-slot click probability of ``arms`` for a traveller (home, device, party, trip)."""
        offsets = np.cumsum((0, *self._t_sizes[:-1]))
        rows = [int(o + v) for o, v in zip(offsets, traveller, strict=True)]
        w = self.preference_weights(t)[rows].sum(axis=0)  # one weight per destination attribute
        cols = self._dcol[arms]
        logit = self.base + self.popularity[arms] + w[cols].sum(axis=1)
        home = int(traveller[0])
        logit = logit + self.domestic * (self._home_of_dest[self.dest_country[arms]] == home)
        return _sigmoid(logit)

    def _round(self, t: int, chunk: Any, i: int, key: int) -> Round:
        home, device, party, nights, cand_seed = chunk
        n_present = self.present(t)
        present = np.arange(n_present, dtype=np.int64)
        if self.candidates is None or self.candidates >= n_present:
            arms = present
        else:
            # random candidate set: the arms with the smallest hashed priorities
            prio = reward_uniforms(cand_seed, i, present)
            arms = np.sort(np.argpartition(prio, self.candidates)[: self.candidates])
        trip = int(_trip_bucket(nights[i : i + 1])[0])
        traveller = (int(home[i]), int(device[i]), int(party[i]), trip)
        ctx = Context(
            numeric={"nights": float(nights[i]) / 7.0},
            categorical=(
                f"home={HOME_COUNTRIES[traveller[0]]}",
                f"device={DEVICES[traveller[1]]}",
                f"party={PARTIES[traveller[2]]}",
                f"trip={TRIPS[trip]}",
            ),
        )
        x = self.space.vector(None, ctx.numeric, ctx.categorical)
        if t == 0:
            new: tuple[int, ...] = tuple(range(n_present))
        elif n_present > self.present(t - 1):
            new = tuple(range(self.present(t - 1), n_present))
        else:
            new = ()
        return Round(
            t, ctx, x, arms, self.click_probs(t, traveller, arms), self._exam, new,
            reward_uniforms(key, t, arms),
        )  # fmt: skip

    def min_eligible(self) -> int:
        return self.n_initial if self.candidates is None else self.candidates

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}


# --------------------------------------------------------------- supervised
def make_labelled(
    rng: np.random.Generator,
    n_samples: int = 2000,
    n_features: int = 8,
    n_classes: int = 5,
    separation: float = 1.5,
) -> tuple[FloatArray, IntArray]:
    """A synthetic labelled dataset: Gaussian classes around random centres.

    ``X = centre[y] + N(0, I)`` with centres ~ N(0, separation^2 I) and
    balanced random labels; larger ``separation`` makes the classes easier
    to tell apart (and a linear policy's job easier).
    """
    for nm, v, lo in (("n_samples", n_samples, 1), ("n_features", n_features, 1),
                      ("n_classes", n_classes, 2)):  # fmt: skip
        if not isinstance(v, int) or v < lo:
            raise InvalidArgument(f"{nm}={v!r} must be an integer >= {lo}")
    centres = rng.normal(0.0, separation, (n_classes, n_features))
    y = rng.integers(0, n_classes, n_samples).astype(np.int64)
    x = centres[y] + rng.standard_normal((n_samples, n_features))
    return x, y


SKLEARN_DATASETS = ("iris", "wine", "digits", "breast_cancer")


def sklearn_dataset(name: str) -> tuple[FloatArray, IntArray]:
    """(X, y) of one of scikit-learn's bundled datasets (needs scikit-learn installed)."""
    if name not in SKLEARN_DATASETS:
        raise InvalidArgument(f"dataset {name!r} unknown; expected one of {SKLEARN_DATASETS}")
    try:
        from sklearn import datasets
    except ImportError as exc:
        raise InvalidArgument(
            f"dataset {name!r} needs scikit-learn (pip install scikit-learn), or pass X and y"
        ) from exc
    bunch = getattr(datasets, f"load_{name}")()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


class SupervisedWorld(World):
    """A labelled dataset as a bandit (supervised-to-bandit conversion).

    Arms are the classes; each round shows one row of ``X`` (sampled with
    replacement) as a dense context, and an arm pays 1 exactly when it is
    the row's label. Give ``X`` and ``y`` directly, or ``dataset``: one of
    ``"synthetic"`` (``make_labelled``) or scikit-learn's bundled
    ``iris``, ``wine``, ``digits``, ``breast_cancer`` when it is installed.
    Features are standardised (zero mean, unit variance per column) unless
    ``standardise`` is False. The model context is intercept + the row
    (``dim = 1 + n_features``, all dense).
    """

    name = "supervised"

    def __init__(
        self,
        rng: np.random.Generator,
        *,
        X: npt.ArrayLike | None = None,
        y: npt.ArrayLike | None = None,
        dataset: str = "synthetic",
        n_samples: int = 2000,
        n_features: int = 8,
        n_classes: int = 5,
        separation: float = 1.5,
        standardise: bool = True,
    ) -> None:
        if (X is None) != (y is None):
            raise InvalidArgument("give both X and y, or neither")
        if X is None:
            if dataset == "synthetic":
                xs, ys = make_labelled(rng, n_samples, n_features, n_classes, separation)
                self._desc: dict[str, Any] = {
                    "dataset": "synthetic", "n_samples": n_samples, "n_features": n_features,
                    "n_classes": n_classes, "separation": separation,
                }  # fmt: skip
            else:
                xs, ys = sklearn_dataset(dataset)
                self._desc = {"dataset": dataset}
        else:
            xs = np.asarray(X, dtype=np.float64)
            ys = np.asarray(y)
            self._desc = {"dataset": "custom"}
        if xs.ndim != 2 or xs.shape[0] < 1 or xs.shape[1] < 1:
            raise InvalidArgument(f"X has shape {xs.shape}; expected (n_samples, n_features)")
        if ys.shape != (xs.shape[0],):
            raise InvalidArgument(f"y has shape {ys.shape}; expected ({xs.shape[0]},)")
        if not np.all(np.isfinite(xs)):
            raise InvalidArgument("X has non-finite values")
        classes, labels = np.unique(ys, return_inverse=True)
        if classes.shape[0] < 2:
            raise InvalidArgument(f"y has {classes.shape[0]} class; a bandit needs at least 2")
        if standardise:
            sd = xs.std(axis=0)
            xs = (xs - xs.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        self.X = xs
        self.y = labels.astype(np.int64)
        self.classes = classes
        self._desc.update(
            n_samples=int(xs.shape[0]), n_features=int(xs.shape[1]),
            n_classes=int(classes.shape[0]), standardise=bool(standardise),
        )  # fmt: skip
        p = xs.shape[1]
        self.space = FeatureSpace(1 + p, dense_dim=p)
        self._arms = [WorldArm(f"class-{c}") for c in classes.tolist()]
        self._all = np.arange(classes.shape[0], dtype=np.int64)
        self._onehot = np.eye(classes.shape[0])
        self._exam = np.ones(classes.shape[0])
        self._draw_stream_seed(rng)

    def _draw_chunk(self, rng: np.random.Generator, size: int) -> Any:
        return rng.integers(0, self.X.shape[0], size)

    def _round(self, t: int, chunk: Any, i: int, key: int) -> Round:
        row = int(chunk[i])
        dense = self.X[row]
        x = np.empty(self.space.dim)
        x[0] = 1.0
        x[1:] = dense
        return Round(
            t, Context(dense=tuple(dense.tolist())), x, self._all, self._onehot[self.y[row]],
            self._exam, tuple(range(self._all.shape[0])) if t == 0 else (),
            reward_uniforms(key, t, self._all),
        )  # fmt: skip

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self._desc}


# ----------------------------------------------------------------- registry
WORLDS: dict[str, type[World]] = {
    w.name: w for w in (BernoulliWorld, DestinationsWorld, SupervisedWorld)
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
    factory: Callable[..., World] = cls  # each world has its own keywords
    return factory(rng, **params)


def world_parameters(cls: type[World]) -> dict[str, Any]:
    """A world's keyword parameters and their defaults."""
    sig = inspect.signature(cls.__init__)
    return {
        n: p.default for n, p in sig.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
