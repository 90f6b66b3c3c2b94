"""The shared linear model: hashed joint features of context and arm
attributes, updates and scores."""

from __future__ import annotations

import numpy as np
from numba import njit

from bandit_engine.kernels._jit import JIT
from bandit_engine.kernels.linalg import solve_upper_transpose
from bandit_engine.kernels.updates import _decay_precision

__all__ = ["joint_features", "joint_matrix", "shared_scores", "shared_update_batch"]


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
def shared_update_batch(a_mat, b, pulls, rsum, arms, phis, rs, lam, gamma):  # type: ignore[no-untyped-def]
    """Add events (phi rows) to the one shared model."""
    dim = b.shape[0]
    for e in range(arms.shape[0]):
        phi = phis[e]
        r = rs[e]
        if gamma != 1.0:
            _decay_precision(a_mat, b, lam, gamma)
            for i in range(dim):
                b[i] *= gamma
        for i in range(dim):
            pi = phi[i]
            if pi == 0.0:
                continue
            for j in range(dim):
                a_mat[i, j] += pi * phi[j]
            b[i] += r * pi
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
