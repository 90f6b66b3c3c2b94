"""Turn a request's features into the model's context vector.

Layout of a context vector of dimension ``dim``::

    x[0]                        1.0, the intercept (unless disabled)
    x[o : o + dense_dim]        the dense block, copied as given
    x[o + dense_dim : dim]      the hashed block: named features

where ``o`` is 1 with an intercept and 0 without. A named feature is either
categorical (``"country=NL"``, value 1.0) or numeric (``"nights"`` with
value 3.0). Its name is hashed with a fixed 64-bit hash (BLAKE2b, stable
across processes, unlike Python's ``hash``) to a bucket of the hashed block
and a sign, the signed feature hashing of Weinberger et al. (2009), which
keeps collisions unbiased in expectation.

Arm features (for the shared model) keep the hash ids themselves: the
shared kernel crosses them with each context coordinate (see
``kernels.joint_features``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bandit_engine import kernels
from bandit_engine._exceptions import InvalidArgument, ResourceExhausted

__all__ = ["MAX_FEATURE_NAME", "ArmFeatures", "FeatureSpace", "feature_hash"]

_HASH_CACHE: dict[str, int] = {}
_HASH_CACHE_MAX = 1 << 16

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def feature_hash(name: str) -> int:
    """A stable signed 63-bit hash of a feature name (cached)."""
    h = _HASH_CACHE.get(name)
    if h is None:
        digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
        h = int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF
        if len(_HASH_CACHE) >= _HASH_CACHE_MAX:
            _HASH_CACHE.clear()
        _HASH_CACHE[name] = h
    return h


#: Longest feature name (characters), of contexts and arms alike.
MAX_FEATURE_NAME = 1024


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{what} name {name!r} must be a non-empty string")
    if len(name) > MAX_FEATURE_NAME:
        raise InvalidArgument(
            f"{what} name {name[:40]!r}... has {len(name)} characters; the limit is "
            f"{MAX_FEATURE_NAME}"
        )
    return name


def _check_finite(value: float, what: str) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise InvalidArgument(f"{what} is {value!r}; features must be finite")
    return v


def named_items(
    numeric: Mapping[str, float] | None, categorical: Iterable[str] | None, what: str
) -> list[tuple[str, float]]:
    """Validate named features and return them as ``(name, value)`` pairs."""
    items: list[tuple[str, float]] = []
    for name, value in (numeric or {}).items():
        _check_name(name, f"{what} numeric feature")
        items.append((name, _check_finite(value, f"{what} feature {name!r}")))
    for cat in categorical or ():
        _check_name(cat, f"{what} categorical feature")
        items.append((cat, 1.0))
    return items


@dataclass(frozen=True)
class ArmFeatures:
    """An arm's attributes as hash ids and values (identity feature included)."""

    ids: IntArray
    values: FloatArray

    @classmethod
    def build(
        cls,
        arm_id: str,
        numeric: Mapping[str, float] | None = None,
        categorical: Iterable[str] | None = None,
        *,
        max_features: int = 256,
    ) -> ArmFeatures:
        items = named_items(numeric, categorical, f"arm {arm_id!r}")
        if len(items) > max_features:
            raise ResourceExhausted(
                f"arm {arm_id!r} has {len(items)} features; the limit is {max_features}"
            )
        # The identity feature lets the shared model learn a per-arm effect
        # on top of what the arm shares with similar arms.
        items.append((f"__arm__={arm_id}", 1.0))
        ids = np.array([feature_hash(n) for n, _ in items], dtype=np.int64)
        values = np.array([v for _, v in items], dtype=np.float64)
        return cls(ids, values)


class FeatureSpace:
    """Maps request features to a context vector of dimension ``dim``."""

    def __init__(
        self, dim: int, dense_dim: int = 0, intercept: bool = True, max_features: int = 1024
    ) -> None:
        offset = 1 if intercept else 0
        if dim < 1:
            raise InvalidArgument(f"dim={dim!r} must be at least 1")
        if dense_dim < 0 or offset + dense_dim > dim:
            raise InvalidArgument(
                f"dense_dim={dense_dim!r} does not fit in dim={dim!r}"
                + (" with the intercept" if intercept else "")
            )
        self.dim = dim
        self.dense_dim = dense_dim
        self.intercept = intercept
        self.max_features = max_features
        self._dense_start = offset
        self._hashed_start = offset + dense_dim
        self._hashed_size = dim - self._hashed_start

    @property
    def dense_start(self) -> int:
        """Index of the dense block's first value in the context vector."""
        return self._dense_start

    @property
    def hashed_size(self) -> int:
        return self._hashed_size

    def baseline(self) -> FloatArray:
        """The context with no features: intercept only (or zeros)."""
        x = np.zeros(self.dim)
        if self.intercept:
            x[0] = 1.0
        return x

    def vector(
        self,
        dense: Sequence[float] | None = None,
        numeric: Mapping[str, float] | None = None,
        categorical: Iterable[str] | None = None,
        max_abs: float = math.inf,
    ) -> FloatArray:
        """Build the context vector; raise on a bad value, naming it. Every
        value of the result is finite with magnitude at most ``max_abs``."""
        # materialise first: a set or generator of categories counts toward the limit too
        categorical = None if categorical is None or not categorical else list(categorical)
        n_named = (len(numeric) if numeric else 0) + (len(categorical) if categorical else 0)
        n_dense = len(dense) if dense is not None else 0
        if n_named + n_dense > self.max_features:
            raise ResourceExhausted(
                f"context has {n_named + n_dense} features; the limit is {self.max_features}"
            )
        x = np.zeros(self.dim)
        if self.intercept:
            x[0] = 1.0
        if n_dense:
            if n_dense != self.dense_dim:
                raise InvalidArgument(
                    f"dense context has length {n_dense}; this experiment expects "
                    f"dense_dim={self.dense_dim}"
                )
            # fromiter: half the time of asarray on a protobuf repeated field
            arr = np.fromiter(dense, dtype=np.float64, count=n_dense)  # type: ignore[arg-type]
            bad = kernels.copy_checked(x, self._dense_start, arr, max_abs)
            if bad >= 0:
                raise InvalidArgument(
                    f"context dense feature dense[{bad}] is {float(arr[bad])!r}; "
                    f"features must be finite{_bound(max_abs)}"
                )
        if not n_named:
            return x
        items = named_items(numeric, categorical, "context")
        if self._hashed_size == 0:
            raise InvalidArgument(
                f"named feature {items[0][0]!r} given, but this experiment has no hashed "
                f"block (dim={self.dim}, dense_dim={self.dense_dim})"
            )
        m = self._hashed_size
        base = self._hashed_start
        for name, value in items:
            if not abs(value) <= max_abs:
                raise InvalidArgument(
                    f"context feature {name!r} is {value!r}; features must be finite"
                    f"{_bound(max_abs)}"
                )
            h = feature_hash(name)
            sign = 1.0 if (h >> 62) & 1 else -1.0
            x[base + h % m] += sign * value
        bad = kernels.first_bad_feature(x, max_abs)
        if bad >= 0:  # features hashed into one bucket add up past the bound
            names = [n for n, _ in items if base + feature_hash(n) % m == bad]
            raise InvalidArgument(
                f"context features {', '.join(map(repr, names))} hash into one bucket "
                f"(x[{bad}]) and add up to {float(x[bad])!r}; the sum must be finite"
                f"{_bound(max_abs)}"
            )
        return x

    def check_vector(self, x: FloatArray, max_abs: float = math.inf) -> FloatArray:
        """A ready context vector, checked like a built one: ``dim`` values,
        each finite with magnitude at most ``max_abs``; raises, naming a bad one."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.shape != (self.dim,):
            raise InvalidArgument(f"context vector has shape {x.shape}; expected ({self.dim},)")
        bad = kernels.first_bad_feature(x, max_abs)
        if bad >= 0:
            raise InvalidArgument(
                f"context vector x[{bad}] ({self.describe(bad)}) is {float(x[bad])!r}; "
                f"features must be finite{_bound(max_abs)}"
            )
        return x

    def describe(self, i: int) -> str:
        """What position ``i`` of a context vector holds, in the request's terms."""
        if self.intercept and i == 0:
            return "the intercept"
        if i < self._hashed_start:
            return f"dense feature dense[{i - self._dense_start}]"
        return f"hashed feature bucket {i - self._hashed_start}"


def _bound(max_abs: float) -> str:
    return "" if math.isinf(max_abs) else f" with |value| <= {max_abs:g}"
