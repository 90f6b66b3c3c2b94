"""Dense linear algebra for small SPD matrices: Cholesky, inverse, triangular solves."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bandit_engine.kernels._jit import JIT

__all__ = [
    "cholesky_lower",
    "solve_lower_rows",
    "solve_upper_transpose",
    "spd_inverse",
    "spd_solve",
]


@njit(**JIT)
def cholesky_lower(a):  # type: ignore[no-untyped-def]
    """Lower Cholesky factor of SPD ``a``; ``ok`` is False if not SPD."""
    n = a.shape[0]
    lo = np.zeros((n, n))
    for j in range(n):
        s = a[j, j]
        for k in range(j):
            s -= lo[j, k] * lo[j, k]
        if not (s > 0.0) or not math.isfinite(s):
            return lo, False
        d = math.sqrt(s)
        lo[j, j] = d
        for i in range(j + 1, n):
            t = a[i, j]
            for k in range(j):
                t -= lo[i, k] * lo[j, k]
            lo[i, j] = t / d
    return lo, True


@njit(**JIT)
def spd_inverse(a):  # type: ignore[no-untyped-def]
    """Inverse of SPD ``a`` through its Cholesky factor; exactly symmetric."""
    n = a.shape[0]
    lo, ok = cholesky_lower(a)
    inv = np.zeros((n, n))
    if not ok:
        return inv, False
    # linv = L^-1 (lower triangular), then a^-1 = linv' linv.
    linv = np.zeros((n, n))
    for j in range(n):
        linv[j, j] = 1.0 / lo[j, j]
        for i in range(j + 1, n):
            t = 0.0
            for k in range(j, i):
                t -= lo[i, k] * linv[k, j]
            linv[i, j] = t / lo[i, i]
    for i in range(n):
        for j in range(i + 1):
            t = 0.0
            for k in range(i, n):
                t += linv[k, i] * linv[k, j]
            inv[i, j] = t
            inv[j, i] = t
    return inv, True


@njit(**JIT)
def solve_upper_transpose(lo, z):  # type: ignore[no-untyped-def]
    """Solve ``L' y = z`` for lower-triangular ``L``: y ~ N(0, A^-1) if z ~ N(0, I)."""
    n = lo.shape[0]
    y = np.empty(n)
    for i in range(n - 1, -1, -1):
        t = z[i]
        for k in range(i + 1, n):
            t -= lo[k, i] * y[k]
        y[i] = t / lo[i, i]
    return y


@njit(**JIT)
def spd_solve(lo, b):  # type: ignore[no-untyped-def]
    """Solve ``L L' x = b`` given the lower Cholesky factor ``L``."""
    n = lo.shape[0]
    y = np.empty(n)
    for i in range(n):
        t = b[i]
        for k in range(i):
            t -= lo[i, k] * y[k]
        y[i] = t / lo[i, i]
    return solve_upper_transpose(lo, y)


@njit(**JIT)
def solve_lower_rows(lo, b):  # type: ignore[no-untyped-def]
    """``L^-1 b'`` for lower-triangular ``L``: column ``c`` solves ``L y = b[c]``."""
    n = lo.shape[0]
    m = b.shape[0]
    y = np.empty((n, m))
    for i in range(n):  # row by row, each a contiguous sweep over the columns
        for c in range(m):
            y[i, c] = b[c, i]
        for k in range(i):
            f = lo[i, k]
            if f != 0.0:
                for c in range(m):
                    y[i, c] -= f * y[k, c]
        d = lo[i, i]
        for c in range(m):
            y[i, c] /= d
    return y
