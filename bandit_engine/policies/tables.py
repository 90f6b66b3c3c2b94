"""Seeded tables of normals and uniforms that the propensity kernels read."""

from __future__ import annotations

import statistics

import numpy as np
import numpy.typing as npt

__all__ = ["normal_table", "normal_table32", "uniform_table"]

FloatArray = npt.NDArray[np.float64]

_NORMAL_TABLE: FloatArray | None = None
_NORMAL_TABLE_SIZE = 1 << 20


def normal_table() -> FloatArray:
    """A fixed table of 2^20 standard normals (seeded), for propensity draws.

    Propensity estimation needs many draws per request; reading a window of
    a pre-drawn table at a random offset (drawn from the caller's Generator)
    costs a load instead of a Box-Muller transform and keeps runs seeded.
    """
    global _NORMAL_TABLE
    if _NORMAL_TABLE is None:
        _NORMAL_TABLE = np.random.default_rng(0x5EED_BA4D17).standard_normal(_NORMAL_TABLE_SIZE)
    return _NORMAL_TABLE


_UNIFORM_TABLE: FloatArray | None = None


def uniform_table() -> FloatArray:
    """A fixed table of 2^20 uniforms in (0, 1] (seeded), read like
    ``normal_table`` by the Beta first-slot kernel's Gamma draws."""
    global _UNIFORM_TABLE
    if _UNIFORM_TABLE is None:
        _UNIFORM_TABLE = 1.0 - np.random.default_rng(0x5EED_0A1F).random(_NORMAL_TABLE_SIZE)
    return _UNIFORM_TABLE


_NORMAL_TABLE32: np.ndarray | None = None
_NORMAL_TABLE32_SIZE = 1 << 16


def normal_table32() -> np.ndarray:
    """2^16 float32 standard normals: 256 KiB, so it stays in cache.

    The table holds the normal quantiles at (i + 1/2) / 2^16 in a seeded
    random order, so its empirical distribution matches N(0, 1) to 1.5e-5 in
    probability, where 2^16 random draws would be off by up to ~4e-3. The
    Gaussian first-slot kernel reads one window per arm at offsets drawn
    from the caller's Generator.
    """
    global _NORMAL_TABLE32
    if _NORMAL_TABLE32 is None:
        inv = statistics.NormalDist().inv_cdf
        n = _NORMAL_TABLE32_SIZE
        q = np.array([inv((i + 0.5) / n) for i in range(n)], dtype=np.float32)
        _NORMAL_TABLE32 = np.random.default_rng(0x5EED_BA4D32).permutation(q)
    assert _NORMAL_TABLE32 is not None
    return _NORMAL_TABLE32
