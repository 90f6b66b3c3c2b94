"""The shared linear model: hashed joint features of context and arm
attributes, updates and scores."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bandit_engine.kernels._jit import JIT, JIT_SCORE
from bandit_engine.kernels.linalg import solve_upper_transpose
from bandit_engine.kernels.updates import _decay_precision

__all__ = [
    "chol_update_upper",
    "factor_solve",
    "joint_features",
    "joint_matrix",
    "shared_draw_scores",
    "shared_scores",
    "shared_update_batch",
    "solve_upper",
    "solve_upper_t",
    "solve_upper_t_rows",
]


@njit(**JIT)
def _mix(i, h):  # type: ignore[no-untyped-def]
    # splitmix64 finaliser over (context index, arm feature hash): a stable
    # cross-feature hash, the same on every platform.
    z = np.uint64(h) ^ (np.uint64(i + 1) * np.uint64(0x9E3779B97F4A7C15))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(**JIT)
def joint_features(x, ids, vals, dim):  # type: ignore[no-untyped-def]
    """phi(x, arm): hashed crosses x_i * f_j of context and arm features."""
    phi = np.zeros(dim)
    for i in range(x.shape[0]):
        xi = x[i]
        if xi == 0.0:
            continue
        for j in range(ids.shape[0]):
            h = _mix(i, ids[j])
            bucket = np.int64(h % np.uint64(dim))
            sign = 1.0 if (h >> np.uint64(63)) == np.uint64(1) else -1.0
            phi[bucket] += sign * xi * vals[j]
    return phi


@njit(**JIT)
def joint_matrix(x, arms, ptr, ids, vals, dim):  # type: ignore[no-untyped-def]
    """Rows phi(x, a) for the arms given (CSR arm features: ptr, ids, vals)."""
    out = np.empty((arms.shape[0], dim))
    for r in range(arms.shape[0]):
        a = arms[r]
        out[r] = joint_features(x, ids[ptr[a] : ptr[a + 1]], vals[ptr[a] : ptr[a + 1]], dim)
    return out


@njit(**JIT)
def shared_update_batch(a_mat, b, pulls, rsum, arms, phis, rs, lam, gamma, ws):  # type: ignore[no-untyped-def]
    """Add events (phi rows) of weights ``ws`` to the one shared model:
    A += w phi phi', b += w r phi."""
    dim = b.shape[0]
    for e in range(arms.shape[0]):
        phi = phis[e]
        r = rs[e]
        w = ws[e]
        if gamma != 1.0:
            _decay_precision(a_mat, b, lam, gamma)
            for i in range(dim):
                b[i] *= gamma
        for i in range(dim):
            pi = phi[i]
            if pi == 0.0:
                continue
            wpi = w * pi
            for j in range(dim):
                a_mat[i, j] += wpi * phi[j]
            b[i] += r * wpi
        pulls[arms[e]] += 1
        rsum[arms[e]] += r
    return arms.shape[0]


@njit(**JIT)
def shared_scores(phi_rows, lo, mu, z, scale):  # type: ignore[no-untyped-def]
    """Scores phi_a' theta for one posterior draw theta = mu + scale * L'^-1 z."""
    theta = solve_upper_transpose(lo, z)
    for i in range(theta.shape[0]):
        theta[i] = mu[i] + scale * theta[i]
    n = phi_rows.shape[0]
    out = np.empty(n)
    for r in range(n):
        t = 0.0
        for i in range(theta.shape[0]):
            t += phi_rows[r, i] * theta[i]
        out[r] = t
    return out


# ------------------------------------------------------------- the factor
# The factor is kept as the upper triangle R = L' (A = R'R) in a C-ordered
# array: every loop below sweeps rows of R, which are contiguous, where the
# columns of a C-ordered L would be strided.


@njit(**JIT)
def chol_update_upper(r, phis, count):  # type: ignore[no-untyped-def]
    """R'R + sum phi phi' over the first ``count`` rows of ``phis``, as a
    rank-one update of R per row (Givens rotations, O(n^2) each, as in
    LINPACK's dchud; Golub & Van Loan, "Matrix Computations", 6.5.4).
    The rows of ``phis`` are overwritten."""
    n = r.shape[0]
    for e in range(count):
        x = phis[e]
        for k in range(n):
            xk = x[k]
            if xk == 0.0:
                continue  # a rotation by a zero entry is the identity
            rkk = r[k, k]
            h = math.hypot(rkk, xk)
            c = h / rkk
            s = xk / rkk
            r[k, k] = h
            inv_c = 1.0 / c
            # slices of the rows: unit-stride loops from 0, which LLVM vectorises
            row = r[k, k + 1 :]
            xs = x[k + 1 :]
            for j in range(row.shape[0]):
                rk = (row[j] + s * xs[j]) * inv_c
                xs[j] = c * xs[j] - s * rk
                row[j] = rk
    return count


@njit(**JIT_SCORE)
def solve_upper(r, z):  # type: ignore[no-untyped-def]
    """y with R y = z (back substitution: a dot product with each row of R,
    reassociated so that it vectorises)."""
    n = r.shape[0]
    y = np.empty(n)
    for i in range(n - 1, -1, -1):
        row = r[i, i + 1 :]
        tail = y[i + 1 :]
        t = 0.0
        for k in range(row.shape[0]):
            t += row[k] * tail[k]
        y[i] = (z[i] - t) / r[i, i]
    return y


@njit(**JIT)
def solve_upper_t(r, b):  # type: ignore[no-untyped-def]
    """y with R'y = b (forward substitution by rows of R: axpy form)."""
    n = r.shape[0]
    y = b.copy()
    for i in range(n):
        yi = y[i] / r[i, i]
        y[i] = yi
        if yi != 0.0:
            row = r[i, i + 1 :]
            tail = y[i + 1 :]
            for j in range(row.shape[0]):
                tail[j] -= row[j] * yi
    return y


@njit(**JIT)
def factor_solve(r, b):  # type: ignore[no-untyped-def]
    """x with R'R x = b."""
    return solve_upper(r, solve_upper_t(r, b))


@njit(**JIT)
def solve_upper_t_rows(r, rows):  # type: ignore[no-untyped-def]
    """R'^-1 rows' (n x m): column c solves R'y = rows[c]."""
    n = r.shape[0]
    m = rows.shape[0]
    y = np.empty((n, m))
    for i in range(n):
        for c in range(m):
            y[i, c] = rows[c, i]
    for i in range(n):
        yi = y[i]
        d = 1.0 / r[i, i]
        for c in range(m):
            yi[c] *= d
        for j in range(i + 1, n):
            f = r[i, j]
            if f != 0.0:
                yj = y[j]
                for c in range(m):
                    yj[c] -= f * yi[c]
    return y


@njit(**JIT_SCORE)
def shared_draw_scores(x, arms, ptr, ids, vals, r, y, z, scale):  # type: ignore[no-untyped-def]
    """Scores phi(x, a)'theta of one draw theta = mu + scale * R^-1 z =
    R^-1 (y + scale * z), with y = R'^-1 b (so mu = R^-1 y): one back
    substitution. Each score is summed over the arm's hashed crosses (phi is
    never formed)."""
    w = np.empty(y.shape[0])
    for i in range(y.shape[0]):
        w[i] = y[i] + scale * z[i]
    theta = solve_upper(r, w)
    dim = theta.shape[0]
    out = np.zeros(arms.shape[0])
    for q in range(arms.shape[0]):
        a = arms[q]
        t = 0.0
        for i in range(x.shape[0]):
            xi = x[i]
            if xi == 0.0:
                continue
            for j in range(ptr[a], ptr[a + 1]):
                h = _mix(i, ids[j])
                bucket = np.int64(h % np.uint64(dim))
                sign = 1.0 if (h >> np.uint64(63)) == np.uint64(1) else -1.0
                t += sign * xi * vals[j] * theta[bucket]
        out[q] = t
    return out
