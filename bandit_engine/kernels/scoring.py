"""Gaussian scores: packed covariance rows, posterior mean and spread,
Thompson draws and the top k."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bandit_engine.kernels._jit import JIT, JIT_SCORE, JIT_SCORE_GIL
from bandit_engine.kernels.checks import first_bad_input
from bandit_engine.kernels.propensity import first_slot_counts_gauss

__all__ = [
    "ensure_packed",
    "ensure_packed_all",
    "gauss_arm",
    "gauss_decide",
    "gauss_mean_std",
    "gauss_mean_std_exact",
    "gauss_rank",
    "gauss_sample_top_k",
    "pack_arm",
    "packed_width",
    "quad_context",
    "quad_form",
    "top_k",
]

_F32_GUARD = 5e-3


@njit(**JIT)
def top_k(scores, k):  # type: ignore[no-untyped-def]
    """Indices of the ``k`` largest scores, best first; ties go to the lower index."""
    n = scores.shape[0]
    out = np.empty(k, dtype=np.int64)
    filled = 0
    for i in range(n):
        s = scores[i]
        if filled < k:
            pos = filled
            filled += 1
        elif s > scores[out[k - 1]]:
            pos = k - 1
        else:
            continue
        while pos > 0 and s > scores[out[pos - 1]]:
            out[pos] = out[pos - 1]
            pos -= 1
        out[pos] = i
    return out


def packed_width(d: int) -> int:
    """Length of a packed row for dimension ``d``."""
    return d * (d + 1) // 2 + d


@njit(**JIT)
def pack_arm(cov, packed, a):  # type: ignore[no-untyped-def]
    """Rebuild arm ``a``'s float32 scoring row from its covariance cache."""
    d = cov.shape[1]
    row = packed[a]
    p = 0
    for i in range(d):
        row[p] = cov[a, i, i]
        p += 1
        for j in range(i + 1, d):
            row[p] = cov[a, i, j] + cov[a, j, i]
            p += 1
    for i in range(d):
        c = cov[a, i, i]
        row[p + i] = math.sqrt(c) if c > 0.0 else 0.0


@njit(**JIT)
def ensure_packed(cov, packed, stale, a):  # type: ignore[no-untyped-def]
    """Repack arm ``a``'s row if an update marked it stale (``stale[a]``):
    a learner that never scores never packs."""
    if stale[a]:
        pack_arm(cov, packed, a)
        stale[a] = 0


@njit(**JIT)
def ensure_packed_all(cov, packed, stale, arms):  # type: ignore[no-untyped-def]
    """``ensure_packed`` for each arm in ``arms``. A call of its own before
    scoring: inlined into the scoring kernel, the writes to ``packed`` slow
    the dot products down; the flags in a byte array of their own keep the
    check to a cache line or two."""
    # the test inline: a call per arm would cost the arrays' reference counts
    for j in range(arms.shape[0]):
        a = arms[j]
        if stale[a]:
            pack_arm(cov, packed, a)
            stale[a] = 0


@njit(**JIT)
def quad_context(x, out):  # type: ignore[no-untyped-def]
    """Fill float32 ``out`` with xq = [x_i x_j for i <= j, |x_i|] (the row order)."""
    d = x.shape[0]
    p = 0
    for i in range(d):
        xi = x[i]
        for j in range(i, d):
            out[p] = xi * x[j]
            p += 1
    for i in range(d):
        out[p + i] = abs(x[i])


@njit(**JIT_SCORE)
def quad_form(cov, a, x):  # type: ignore[no-untyped-def]
    """x' C_a x in float64 from the covariance cache (a full mat-vec)."""
    d = x.shape[0]
    var = 0.0
    for i in range(d):
        t = 0.0
        for c in range(d):
            t += cov[a, i, c] * x[c]
        var += x[i] * t
    return var


@njit(**JIT_SCORE)
def gauss_arm(cov, w, packed, a, x, xq, scales):  # type: ignore[no-untyped-def]
    """Mean w_a'x and std scales[a]*sqrt(x' C_a x) of arm ``a``'s score at ``x``.

    The arm's packed row must be fresh (``ensure_packed``, before the call).
    """
    d = x.shape[0]
    mu = 0.0
    for i in range(d):
        mu += w[a, i] * x[i]
    # slices, and loops from 0: a loop over range(m, n) did not vectorise
    row = packed[a]
    m = row.shape[0] - d
    q = row[:m]
    sq = row[m:]
    xx = xq[:m]
    ax = xq[m:]
    v32 = np.float32(0.0)
    for i in range(m):
        v32 += q[i] * xx[i]
    b32 = np.float32(0.0)
    for i in range(d):
        b32 += sq[i] * ax[i]
    var = float(v32)
    bound = float(b32) * float(b32)
    if not var > _F32_GUARD * bound:
        var = quad_form(cov, a, x)
    std = scales[a] * math.sqrt(var) if var > 0.0 else 0.0
    return mu, std


@njit(**JIT_SCORE)
def gauss_mean_std(cov, w, packed, arms, x, scales):  # type: ignore[no-untyped-def]
    """``gauss_arm`` for each arm in ``arms`` (rows made fresh by ``ensure_packed_all``).

    The same arithmetic as ``gauss_arm``, written out in the loop: a call per
    arm (with the arrays' reference counts) cost about 11% here.
    """
    xq = np.empty(packed.shape[1], dtype=np.float32)
    quad_context(x, xq)
    n = arms.shape[0]
    d = x.shape[0]
    m = packed.shape[1] - d
    xx = xq[:m]
    ax = xq[m:]
    mean = np.empty(n)
    std = np.empty(n)
    for j in range(n):
        a = arms[j]
        mu = 0.0
        for i in range(d):
            mu += w[a, i] * x[i]
        row = packed[a]
        q = row[:m]
        sq = row[m:]
        v32 = np.float32(0.0)
        for i in range(m):
            v32 += q[i] * xx[i]
        b32 = np.float32(0.0)
        for i in range(d):
            b32 += sq[i] * ax[i]
        var = float(v32)
        bound = float(b32) * float(b32)
        if not var > _F32_GUARD * bound:
            var = quad_form(cov, a, x)
        mean[j] = mu
        std[j] = scales[a] * math.sqrt(var) if var > 0.0 else 0.0
    return mean, std


@njit(**JIT_SCORE)
def gauss_mean_std_exact(cov, w, arms, x, scales):  # type: ignore[no-untyped-def]
    """Mean and std of each arm's score in float64 from C itself (a full
    mat-vec per arm): the posterior summary, where ``gauss_mean_std`` is the
    Thompson draw's fast path."""
    d = x.shape[0]
    n = arms.shape[0]
    mean = np.empty(n)
    std = np.empty(n)
    for j in range(n):
        a = arms[j]
        mu = 0.0
        for i in range(d):
            mu += w[a, i] * x[i]
        var = quad_form(cov, a, x)
        mean[j] = mu
        std[j] = scales[a] * math.sqrt(var) if var > 0.0 else 0.0
    return mean, std


@njit(**JIT_SCORE)
def gauss_sample_top_k(cov, w, packed, arms, x, scales, z, k):  # type: ignore[no-untyped-def]
    """Thompson draw mean + std * z for each arm, then the top ``k``, in one call."""
    mean, std = gauss_mean_std(cov, w, packed, arms, x, scales)
    scores = np.empty(arms.shape[0])
    for j in range(arms.shape[0]):
        scores[j] = mean[j] + std[j] * z[j]
    return mean, std, scores, top_k(scores, k)


@njit(**JIT_SCORE_GIL)
def gauss_rank(cov, w, packed, stale, arms, x, scales, zbuf, zpos, k, n_arms, max_abs):  # type: ignore[no-untyped-def]
    """``rank`` in one call that holds the GIL: the value checks
    (``first_bad_input``), repack stale rows, the Thompson draw with the
    normals ``zbuf[zpos:]``, its top ``k``. Returns (order, scores of the
    ranked arms), what ``ensure_packed_all`` then ``gauss_sample_top_k``
    give; two empty arrays, having changed nothing, if a value is bad."""
    if first_bad_input(arms, n_arms, x, max_abs):
        return np.empty(0, dtype=np.int64), np.empty(0)
    ensure_packed_all(cov, packed, stale, arms)
    z = zbuf[zpos : zpos + arms.shape[0]]
    _, _, scores, order = gauss_sample_top_k(cov, w, packed, arms, x, scales, z, k)
    return order, scores[order]


@njit(**JIT_SCORE_GIL)
def gauss_decide(cov, w, packed, stale, arms, x, scales, z, k, table, offset, draws):  # type: ignore[no-untyped-def]
    """What a Recommend computes, in one call that holds the GIL: repack stale
    rows (``ensure_packed_all``), the Thompson draw and its top ``k``
    (``gauss_sample_top_k``), the first-slot counts (``first_slot_counts_gauss``).

    Returns (order, scores of the ranked arms, counts): exactly what the three
    kernels give when called one after the other.
    """
    ensure_packed_all(cov, packed, stale, arms)
    mean, std, scores, order = gauss_sample_top_k(cov, w, packed, arms, x, scales, z, k)
    counts = first_slot_counts_gauss(mean, std, table, offset, draws)
    return order, scores[order], counts
