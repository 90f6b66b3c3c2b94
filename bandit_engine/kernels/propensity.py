"""First-slot propensities: how often each arm wins the first slot over many posterior draws."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bandit_engine.kernels._jit import JIT, JIT_GIL, JIT_SCORE

__all__ = [
    "TABLE_MAX_ABS",
    "argmax_counts",
    "beta_draw_setup",
    "beta_first_counts",
    "first_slot_counts_gauss",
    "first_slot_propensities",
    "gamma_bounds",
    "gamma_draw",
]

# Bound on |z| in the propensity table (policies.base.normal_table32).
TABLE_MAX_ABS = 4.5


@njit(**JIT_SCORE)
def first_slot_counts_gauss(mean, std, table, offset, draws):  # type: ignore[no-untyped-def]
    """How often each arm wins ``draws`` independent draws of N(mean, std^2).

    Standard normals come from ``table`` starting at ``offset`` (wrapping);
    the caller draws the offset from its seeded Generator. No table value
    exceeds 4.5 in absolute value (``normal_table32`` stops at 4.33), so an
    arm whose mean + 4.5 std lies below the best mean - 4.5 std cannot win a
    draw and is skipped: exact for the table, and it makes a trained model's
    propensities cheap.

    ``table`` is float32 and small enough to stay in cache (``normal_table32``).
    The loops run arm-major over blocks of draws: for one arm, the running
    best of every draw in the block is updated with a branch-free select,
    which vectorises (a draw-by-draw argmax does not: 6x slower here).
    Ties go to the earlier arm, as in a draw-by-draw argmax.
    """
    n = mean.shape[0]
    size = table.shape[0]
    counts = np.zeros(n, dtype=np.int64)
    floor = -np.inf
    for i in range(n):
        lo = mean[i] - TABLE_MAX_ABS * std[i]
        if lo > floor:
            floor = lo
    live = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        if mean[i] + TABLE_MAX_ABS * std[i] >= floor:
            live[m] = i
            m += 1
    if m == 1:
        counts[live[0]] = draws
        return counts
    # float32 halves the memory traffic and doubles the SIMD width; scores
    # are centred on the best mean first, so rounding is relative to the gaps
    # between arms, not to the scores' magnitude.
    centre = -np.inf
    for j in range(m):
        if mean[live[j]] > centre:
            centre = mean[live[j]]
    # windows of the table for different arms in one block never share an
    # offset: m * nb <= size - nb + 1
    block = max(1, min(1024, size // (m + 1)))
    best = np.empty(block, dtype=np.float32)
    win = np.empty(block, dtype=np.float32)
    pos = offset % size
    done = 0
    while done < draws:
        nb = min(block, draws - done)
        span = size - nb + 1
        for r in range(nb):
            best[r] = -np.inf
            win[r] = 0.0
        for j in range(m):
            mu = np.float32(mean[live[j]] - centre)
            sd = np.float32(std[live[j]])
            fj = np.float32(j)
            base = (pos + j * nb) % span
            window = table[base : base + nb]
            for r in range(nb):
                s = mu + sd * window[r]
                b = best[r]
                better = s > b
                best[r] = s if better else b
                win[r] = fj if better else win[r]
        for r in range(nb):
            counts[live[int(win[r])]] += 1
        pos = (pos + m * nb) % size
        done += nb
    return counts


@njit(**JIT)
def argmax_counts(scores, counts):  # type: ignore[no-untyped-def]
    """Add, per column, how often it holds the row's maximum (first on ties)."""
    m, n = scores.shape
    for r in range(m):
        best = 0
        best_s = scores[r, 0]
        for i in range(1, n):
            if scores[r, i] > best_s:
                best_s = scores[r, i]
                best = i
        counts[best] += 1
    return counts


@njit(**JIT)
def gamma_draw(d, c, boost, normals, uniforms, pos_n, pos_u):  # type: ignore[no-untyped-def]
    """One Gamma(a) draw by Marsaglia & Tsang (2000), d = a' - 1/3 and
    c = 1/sqrt(9 d) for a' = max(a, a + 1 if a < 1), boosted by U^(1/a) when
    a < 1 (``boost`` = 1/a, else 0); normals and uniforms are read from the
    tables at the given positions. Returns (draw, pos_n, pos_u)."""
    nn = normals.shape[0]
    nu = uniforms.shape[0]
    while True:
        x = normals[pos_n]
        pos_n += 1
        if pos_n == nn:
            pos_n = 0
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = uniforms[pos_u]
        pos_u += 1
        if pos_u == nu:
            pos_u = 0
        x2 = x * x
        if u < 1.0 - 0.0331 * x2 * x2 or math.log(u) < 0.5 * x2 + d * (1.0 - v + math.log(v)):
            g = d * v
            break
    if boost > 0.0:
        u = uniforms[pos_u]
        pos_u += 1
        if pos_u == nu:
            pos_u = 0
        g *= u**boost
    return g, pos_n, pos_u


@njit(**JIT)
def _gamma_setup(a, d, c, boost):  # type: ignore[no-untyped-def]
    """Per shape a[i], the constants of ``gamma_draw``."""
    for i in range(a.shape[0]):
        a1 = a[i] + 1.0 if a[i] < 1.0 else a[i]
        d[i] = a1 - 1.0 / 3.0
        c[i] = 1.0 / math.sqrt(9.0 * d[i])
        boost[i] = 1.0 / a[i] if a[i] < 1.0 else 0.0


@njit(**JIT)
def gamma_bounds(d, c, boost, zmin, zmax, umin):  # type: ignore[no-untyped-def]
    """Smallest and largest value ``gamma_draw`` can return when the normal
    table lies in [zmin, zmax] and the uniforms in [umin, 1]: the same
    arithmetic at the extremes (each step is monotone, so rounding keeps the
    order)."""
    hi = 1.0 + c * zmax
    hi = d * (hi * hi * hi)
    lo = 1.0 + c * zmin
    lo = d * (lo * lo * lo) if lo > 0.0 else 0.0
    if boost > 0.0:
        lo *= umin**boost
    return lo, hi


@njit(**JIT)
def beta_draw_setup(alpha, beta, zmin, zmax, umin):  # type: ignore[no-untyped-def]
    """The Gamma constants (``gamma_draw``) of each arm's X and Y draws, and
    the smallest and largest Beta draw each arm can make from the tables
    (``gamma_bounds``): (da, ca, ba, db, cb, bb, s_lo, s_hi)."""
    n = alpha.shape[0]
    da = np.empty(n)
    ca = np.empty(n)
    ba = np.empty(n)
    db = np.empty(n)
    cb = np.empty(n)
    bb = np.empty(n)
    _gamma_setup(alpha, da, ca, ba)
    _gamma_setup(beta, db, cb, bb)
    s_lo = np.empty(n)
    s_hi = np.empty(n)
    for i in range(n):
        xlo, xhi = gamma_bounds(da[i], ca[i], ba[i], zmin, zmax, umin)
        ylo, yhi = gamma_bounds(db[i], cb[i], bb[i], zmin, zmax, umin)
        s_hi[i] = xhi / (xhi + ylo)
        s_lo[i] = xlo / (xlo + yhi)
    return da, ca, ba, db, cb, bb, s_lo, s_hi


@njit(**JIT)
def beta_first_counts(alpha, beta, normals, uniforms, off_n, off_u, draws, zmin, zmax, umin):  # type: ignore[no-untyped-def]
    """In ``draws`` joint draws of independent Beta(alpha[i], beta[i]), how
    often each i is the largest (first on ties). Beta = X / (X + Y) with X,
    Y Gamma draws (``gamma_draw``) from the seeded tables, read from the
    offsets the caller drew from its Generator.

    An arm whose largest possible draw (tables in [zmin, zmax] and [umin, 1])
    is below another arm's smallest possible draw wins no draw whatever the
    tables hold: it is not drawn at all (exactly as the Gaussian kernel skips
    arms), which is most arms once the posteriors are narrow."""
    n = alpha.shape[0]
    da, ca, ba, db, cb, bb, s_lo, s_hi = beta_draw_setup(alpha, beta, zmin, zmax, umin)
    floor = 0.0
    for i in range(n):
        floor = max(floor, s_lo[i])
    live = np.empty(n, dtype=np.int64)
    n_live = 0
    for i in range(n):
        if s_hi[i] >= floor:
            live[n_live] = i
            n_live += 1
    # Arm by arm, all draws of one arm in a row (its constants stay in
    # registers), keeping the best score of each draw so far.
    best = np.full(draws, live[0], dtype=np.int64)
    best_s = np.full(draws, -1.0)
    pos_n = off_n % normals.shape[0]
    pos_u = off_u % uniforms.shape[0]
    for j in range(n_live):
        i = live[j]
        d1, c1, b1, d2, c2, b2 = da[i], ca[i], ba[i], db[i], cb[i], bb[i]
        for r in range(draws):
            x, pos_n, pos_u = gamma_draw(d1, c1, b1, normals, uniforms, pos_n, pos_u)
            y, pos_n, pos_u = gamma_draw(d2, c2, b2, normals, uniforms, pos_n, pos_u)
            s = x / (x + y) if x + y > 0.0 else 0.5
            if s > best_s[r]:
                best_s[r] = s
                best[r] = i
    counts = np.zeros(n, dtype=np.int64)
    for r in range(draws):
        counts[best[r]] += 1
    return counts


@njit(**JIT_GIL)
def first_slot_propensities(slots, order, counts, draws):  # type: ignore[no-untyped-def]
    """The ranked arms' slots and first-slot propensities.

    ``order``: positions into ``slots`` of the ranked arms, best first;
    ``counts``: how often each candidate won the first slot in ``draws``
    posterior draws. The served draw is one more draw of the same posterior:
    counting it keeps the served top arm's propensity above zero, so the
    propensity of the arm at rank j is (count + [j == 0]) / (draws + 1).
    """
    k = order.shape[0]
    shown = np.empty(k, dtype=np.int64)
    props = np.empty(k)
    for j in range(k):
        shown[j] = slots[order[j]]
        props[j] = (float(counts[order[j]]) + (1.0 if j == 0 else 0.0)) / (draws + 1)
    return shown, props
