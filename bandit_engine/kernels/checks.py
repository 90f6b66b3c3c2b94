"""Argument checks run in one kernel call: the first bad index or feature value."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bandit_engine.kernels._jit import JIT, JIT_GIL

__all__ = [
    "copy_checked",
    "first_bad_feature",
    "first_bad_feature_bytes",
    "first_bad_input",
    "first_out_of_range",
]


@njit(**JIT_GIL)
def first_out_of_range(arms, n):  # type: ignore[no-untyped-def]
    """Position of the first arm index outside [0, n), or -1."""
    for i in range(arms.shape[0]):
        if arms[i] < 0 or arms[i] >= n:
            return i
    return -1


@njit(**JIT_GIL)
def first_bad_feature(x, max_abs):  # type: ignore[no-untyped-def]
    """Position of the first non-finite or too large value of ``x``, or -1."""
    for i in range(x.shape[0]):
        v = x[i]
        if not (math.isfinite(v) and abs(v) <= max_abs):
            return i
    return -1


@njit(**JIT)
def first_bad_feature_bytes(b, max_abs):  # type: ignore[no-untyped-def]
    """``first_bad_feature`` over float64 bytes (native order, as x_f64 on
    little-endian hosts) without building an array in Python: -1 if all good."""
    x = np.frombuffer(b, dtype=np.float64)
    for i in range(x.shape[0]):
        if not abs(x[i]) <= max_abs:
            return i
    return -1


@njit(**JIT_GIL)
def first_bad_input(arms, n, x, max_abs):  # type: ignore[no-untyped-def]
    """The argument checks of a draw in one call: 0 if every arm index is in
    [0, n) and every value of ``x`` finite with |value| <= max_abs; 1 if an
    arm is out of range; 2 if a value is bad (the caller then names it)."""
    if first_out_of_range(arms, n) >= 0:
        return 1
    if first_bad_feature(x, max_abs) >= 0:
        return 2
    return 0


@njit(**JIT_GIL)
def copy_checked(dst, start, src, max_abs):  # type: ignore[no-untyped-def]
    """Copy ``src`` into ``dst[start:]``; the position in ``src`` of the first
    value that is not finite or exceeds ``max_abs`` in magnitude (the copy
    stops there), or -1."""
    for i in range(src.shape[0]):
        v = src[i]
        if not (math.isfinite(v) and abs(v) <= max_abs):
            return i
        dst[start + i] = v
    return -1
