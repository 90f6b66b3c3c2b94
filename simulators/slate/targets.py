"""Target slate policies with exact probabilities on real logs.

Two kinds, each defined on a row's candidate set of m arms and K slots:

``uniform``
    a uniformly random ordered slate without repetition: P(a at slot k) =
    1/m, P(the logged items at slots 0..k) = prod_{j<=k} 1/(m - j).
``ranking`` (``order``, ``epsilon``)
    with probability 1 - epsilon the fixed ranking ``order`` (restricted to
    the row's candidates, first K), else a uniform slate: P(a at slot k) =
    epsilon/m + (1 - epsilon) 1[a = order_k], and the prefix likewise.
``popular`` (OBD) is a ``ranking`` whose order is the items by clicks in the
other behaviour policy's log of the same campaign (not the evaluated log).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bandit_engine import InvalidArgument
from simulators.slate.estimators import FloatArray
from simulators.slate.logs import Impressions, LoggedSlates
from simulators.slate.pseudo_inverse import IntArray

__all__ = [
    "SlateTarget",
    "parse_target",
    "popular_order",
    "ranking_impressions",
    "ranking_slates",
    "uniform_impressions",
    "uniform_slates",
]


@dataclass(frozen=True, eq=False)
class SlateTarget:
    """A target policy's probabilities of each logged (cut) slate, slot by slot."""

    name: str
    marginal: FloatArray  # (n, K) P(logged item at slot k)
    prefix: FloatArray  # (n, K) P(logged items at slots 0..k)

    @property
    def joint(self) -> FloatArray:
        out: FloatArray = self.prefix[:, -1].copy()
        return out


def _sizes(data: LoggedSlates) -> IntArray:
    sizes = []
    for i, c in enumerate(data.candidates):
        if c is None:
            raise InvalidArgument(
                f"row {i} ({data.event_id[i]}): its candidate set is unknown (null candidates "
                f"and no header listing the arms); a target over candidates needs it"
            )
        if len(c) < data.n_slots:
            raise InvalidArgument(f"row {i}: {len(c)} candidates for {data.n_slots} slots")
        sizes.append(len(c))
    return np.asarray(sizes, dtype=np.int64)


def _uniform_prefix(m: IntArray, k: int) -> FloatArray:
    steps: FloatArray = 1.0 / (m[:, None] - np.arange(k)[None, :]).astype(np.float64)
    return np.cumprod(steps, axis=1, dtype=np.float64)


def uniform_slates(data: LoggedSlates) -> SlateTarget:
    """The uniform random slate over each row's candidates."""
    m = _sizes(data)
    marg = np.repeat((1.0 / m)[:, None], data.n_slots, axis=1)
    return SlateTarget("uniform", marg, _uniform_prefix(m, data.n_slots))


def _check_epsilon(epsilon: float) -> float:
    if not 0.0 <= epsilon <= 1.0:
        raise InvalidArgument(f"epsilon={epsilon!r} must be in [0, 1]")
    return float(epsilon)


def ranking_slates(data: LoggedSlates, order: Sequence[str], epsilon: float = 0.1) -> SlateTarget:
    """The fixed ranking ``order`` (arm ids), mixed with a uniform slate w.p. ``epsilon``."""
    eps = _check_epsilon(epsilon)
    index = {a: i for i, a in enumerate(data.arm_ids)}
    unknown = [a for a in order if a not in index]
    if unknown:
        raise InvalidArgument(f"ranking: arm(s) {unknown} are not in the log")
    ranked = [index[a] for a in order]
    m = _sizes(data)
    k = data.n_slots
    top = np.empty((data.n, k), dtype=np.int64)
    for i, c in enumerate(data.candidates):
        cs = set(c or ())
        mine = [a for a in ranked if a in cs][:k]
        if len(mine) < k:
            raise InvalidArgument(
                f"row {i}: only {len(mine)} of the ranking's arms are candidates; it must "
                f"rank at least {k} of every row's candidates"
            )
        top[i] = mine
    hit = data.slates == top
    marg = eps / m[:, None] + (1.0 - eps) * hit
    pref = eps * _uniform_prefix(m, k) + (1.0 - eps) * np.cumprod(hit, axis=1)
    return SlateTarget(f"ranking(epsilon={eps:g})", marg, pref)


def uniform_impressions(imp: Impressions) -> FloatArray:
    """P(item at its slot) under the uniform random slate over every item."""
    return np.full(imp.n, 1.0 / imp.n_items)


def ranking_impressions(imp: Impressions, order: Sequence[int], epsilon: float = 0.1) -> FloatArray:
    """P(item at its slot) under the ranking ``order`` (item indices) mixed with a
    uniform slate with probability ``epsilon``."""
    eps = _check_epsilon(epsilon)
    if len(order) < imp.n_slots:
        raise InvalidArgument(f"the ranking lists {len(order)} items; it needs {imp.n_slots}")
    bad = [a for a in order if not 0 <= a < imp.n_items]
    if bad:
        raise InvalidArgument(f"ranking: items {bad} are not in 0..{imp.n_items - 1}")
    top = np.asarray(order[: imp.n_slots], dtype=np.int64)
    out: FloatArray = eps / imp.n_items + (1.0 - eps) * (imp.item == top[imp.position])
    return out


def popular_order(imp: Impressions, k: int) -> list[int]:
    """The ``k`` items with the most clicks in ``imp`` (ties: more impressions, then lower id)."""
    clicks = np.bincount(imp.item, weights=imp.reward, minlength=imp.n_items)
    shows = np.bincount(imp.item, minlength=imp.n_items)
    order = np.lexsort((np.arange(imp.n_items), -shows, -clicks))
    return [int(a) for a in order[:k]]


def parse_target(spec: str) -> tuple[str, dict[str, Any]]:
    """``KIND[:key=value,...]``: ``uniform``, ``ranking:order=a|b|c,epsilon=0.1``,
    ``popular:epsilon=0.1`` (OBD only)."""
    kind, _, rest = spec.strip().partition(":")
    params: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise InvalidArgument(f"target {spec!r}: {part!r} must be key=value")
        if key == "epsilon":
            try:
                params[key] = float(value)
            except ValueError:
                raise InvalidArgument(
                    f"target {spec!r}: epsilon={value!r} is not a number"
                ) from None
        elif key == "order":
            params[key] = [a for a in value.split("|") if a]
        else:
            raise InvalidArgument(f"target {spec!r}: unknown key {key!r} (epsilon, order)")
    if kind not in ("uniform", "ranking", "popular"):
        raise InvalidArgument(f"target kind {kind!r} must be uniform, ranking or popular")
    if kind == "ranking" and not params.get("order"):
        raise InvalidArgument(f"target {spec!r}: ranking needs order=ARM|ARM|...")
    return kind, params
