"""``DestinationsWorld``: travellers x destinations, a logistic click model over
feature crosses, position bias, drift and arriving arms."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bandit_engine import Context, FeatureSpace, InvalidArgument
from bandit_engine.policies import FloatArray, IntArray
from simulators._simkernels import reward_uniforms
from simulators.worlds.base import Round, World, WorldArm

__all__ = [
    "DEST_COUNTRIES",
    "DEST_TYPES",
    "DEVICES",
    "HOME_COUNTRIES",
    "PARTIES",
    "PRICE_LEVELS",
    "TRIPS",
    "DestinationsWorld",
]

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


def _examination(n: int, position_bias: float) -> FloatArray:
    return (1.0 + np.arange(n, dtype=np.float64)) ** -position_bias


def _sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-z))
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
