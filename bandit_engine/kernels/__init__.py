"""Numba kernels: scoring, top-k, propensities and posterior updates.

Every kernel is a pure function of its array arguments: random draws come in
as arguments (standard normals drawn by the caller's seeded Generator, or an
offset into a fixed table), so a seeded run reproduces exactly.

The GIL: kernels whose run time grows with a batch (updates, refreshes, the
shared model's draws) release it (``nogil``). The short kernels a Recommend
calls (argument checks, the fused ``gauss_decide``) hold it (``_JIT_GIL``):
each release of the GIL while other server threads wait for it hands the GIL
over (a futex wake and a context switch) and costs the caller another wait to
get it back, for a kernel of ~30 us. Through the gRPC server (8 client
threads, 16 workers, 2 cores, medians of 4 paired rounds) one GIL-holding
call instead of three releasing ones, with batched event ids (engine), took
the server from ~23.5 to ~18.5 voluntary context switches and from ~710 to
~670 us of CPU per Recommend.

Notation: ``A`` is a precision matrix (state of record), ``Ainv`` its cached
inverse, ``b`` the reward-weighted feature sum, ``lam`` the prior precision,
``gamma`` the forgetting factor (1.0 = none). With forgetting, an update first
shrinks the data part of the statistics, ``A <- lam*I + gamma*(A - lam*I)`` and
``b <- gamma*b``, and then adds the event, so the statistics stay the
discounted sums of the events applied so far.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_JIT = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}
# Scoring kernels may reassociate sums (so LLVM can vectorise the d^2 dot
# products); they never feed the statistics. NaN/inf semantics stay strict.
_JIT_SCORE = {**_JIT, "fastmath": {"reassoc", "contract", "nsz", "arcp"}}
# The same, holding the GIL: for kernels of a few microseconds on the serving
# path (see the module docstring). Called from another kernel, a kernel runs
# under its caller's GIL choice: these flags only matter at the Python entry.
_JIT_GIL = {**_JIT, "nogil": False}
_JIT_SCORE_GIL = {**_JIT_SCORE, "nogil": False}

# A Sherman-Morrison step subtracts u u'/den from Ainv; in the direction of x
# it cancels about log10(den) digits, and the error stays in the cache until
# the next refresh. Past this denominator, rebuild the inverse from A instead.
_SM_MAX_DEN = 1e4

# Bound on |z| in the propensity table (policies.base.normal_table32).
_TABLE_MAX_ABS = 4.5


# --------------------------------------------------------------------- linalg
@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
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


# ------------------------------------------------------------------ checking
@njit(**_JIT_GIL)
def first_out_of_range(arms, n):  # type: ignore[no-untyped-def]
    """Position of the first arm index outside [0, n), or -1."""
    for i in range(arms.shape[0]):
        if arms[i] < 0 or arms[i] >= n:
            return i
    return -1


@njit(**_JIT_GIL)
def first_bad_feature(x, max_abs):  # type: ignore[no-untyped-def]
    """Position of the first non-finite or too large value of ``x``, or -1."""
    for i in range(x.shape[0]):
        v = x[i]
        if not (abs(v) <= max_abs):  # NaN fails every comparison
            return i
    return -1


# ------------------------------------------------------------------- ranking
@njit(**_JIT)
def first_bad_feature_bytes(b, max_abs):  # type: ignore[no-untyped-def]
    """``first_bad_feature`` over float64 bytes (native order, as x_f64 on
    little-endian hosts) without building an array in Python: -1 if all good."""
    x = np.frombuffer(b, dtype=np.float64)
    for i in range(x.shape[0]):
        if not abs(x[i]) <= max_abs:
            return i
    return -1


@njit(**_JIT)
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


@njit(**_JIT_SCORE)
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
        lo = mean[i] - _TABLE_MAX_ABS * std[i]
        if lo > floor:
            floor = lo
    live = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        if mean[i] + _TABLE_MAX_ABS * std[i] >= floor:
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


# ------------------------------------------------ per-arm Gaussian (disjoint)
# An arm's score at x has mean w_a . x and variance x' C_a x, where w_a holds
# the posterior mean weights (disjoint linear TS: the cached theta = A^-1 b;
# logistic TS: the MAP weights m) and C_a the covariance cache up to scale^2
# (A^-1, P^-1). The quadratic form is what costs: O(d^2) per arm, and at
# K = 100, d = 33 a full float64 mat-vec is memory-bound (870 KB a decision).
#
# So scoring reads a float32 row per arm, ``packed[a] = [q_a, s_a]``: the upper
# triangle of C_a with doubled off-diagonal, q_a = [C_00, 2 C_01, ...,
# 2 C_0(d-1), C_11, 2 C_12, ...], then s_a = sqrt(C_ii). With the context's
# products xq = [x_i x_j (i <= j), |x_i|] in the same order, x' C_a x = q_a . xq
# (a contiguous dot product over a quarter of the bytes), and
# B = (s_a . |x|)^2 bounds sum |C_ij x_i x_j| (|C_ij| <= sqrt(C_ii C_jj)), so
# the float32 result is off by at most ~1e-5 B. When the variance is below
# 5e-3 B, that bound is not small enough (relative error up to 2e-3) and the
# arm is scored again in float64 from C_a itself. The mean is always float64.
# The packed rows are a cache of C: an update marks its arm's row stale
# (``stale[a] = 1``) and the next draw that scores the arm repacks it; a
# refresh or a load repacks at once.

_F32_GUARD = 5e-3


def packed_width(d: int) -> int:
    """Length of a packed row for dimension ``d``."""
    return d * (d + 1) // 2 + d


@njit(**_JIT)
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


@njit(**_JIT)
def ensure_packed(cov, packed, stale, a):  # type: ignore[no-untyped-def]
    """Repack arm ``a``'s row if an update marked it stale (``stale[a]``):
    a learner that never scores never packs."""
    if stale[a]:
        pack_arm(cov, packed, a)
        stale[a] = 0


@njit(**_JIT)
def ensure_packed_all(cov, packed, stale, arms):  # type: ignore[no-untyped-def]
    """``ensure_packed`` for each arm in ``arms``. A call of its own before
    scoring: inlined into the scoring kernel, the writes to ``packed`` cost
    the dot products about 40% (measured); the flags in a byte array of their
    own keep the check to a cache line or two."""
    # the test inline: a call per arm (arrays' reference counts) cost ~35 ns
    for j in range(arms.shape[0]):
        a = arms[j]
        if stale[a]:
            pack_arm(cov, packed, a)
            stale[a] = 0


@njit(**_JIT)
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


@njit(**_JIT_SCORE)
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


@njit(**_JIT_SCORE)
def gauss_arm(cov, w, packed, a, x, xq, scale):  # type: ignore[no-untyped-def]
    """Mean w_a'x and std scale*sqrt(x' C_a x) of arm ``a``'s score at ``x``.

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
    std = scale * math.sqrt(var) if var > 0.0 else 0.0
    return mu, std


@njit(**_JIT_SCORE)
def gauss_mean_std(cov, w, packed, arms, x, scale):  # type: ignore[no-untyped-def]
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
        std[j] = scale * math.sqrt(var) if var > 0.0 else 0.0
    return mean, std


@njit(**_JIT_SCORE)
def gauss_mean_std_exact(cov, w, arms, x, scale):  # type: ignore[no-untyped-def]
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
        std[j] = scale * math.sqrt(var) if var > 0.0 else 0.0
    return mean, std


@njit(**_JIT_SCORE)
def gauss_sample_top_k(cov, w, packed, arms, x, scale, z, k):  # type: ignore[no-untyped-def]
    """Thompson draw mean + std * z for each arm, then the top ``k``, in one call."""
    mean, std = gauss_mean_std(cov, w, packed, arms, x, scale)
    scores = np.empty(arms.shape[0])
    for j in range(arms.shape[0]):
        scores[j] = mean[j] + std[j] * z[j]
    return mean, std, scores, top_k(scores, k)


@njit(**_JIT_GIL)
def first_bad_input(arms, n, x, max_abs):  # type: ignore[no-untyped-def]
    """The argument checks of a draw in one call: 0 if every arm index is in
    [0, n) and every value of ``x`` finite with |value| <= max_abs; 1 if an
    arm is out of range; 2 if a value is bad (the caller then names it)."""
    if first_out_of_range(arms, n) >= 0:
        return 1
    if first_bad_feature(x, max_abs) >= 0:
        return 2
    return 0


@njit(**_JIT_SCORE_GIL)
def gauss_rank(cov, w, packed, stale, arms, x, scale, zbuf, zpos, k, n_arms, max_abs):  # type: ignore[no-untyped-def]
    """``rank`` in one call that holds the GIL: the value checks
    (``first_bad_input``), repack stale rows, the Thompson draw with the
    normals ``zbuf[zpos:]``, its top ``k``. Returns (order, scores of the
    ranked arms), what ``ensure_packed_all`` then ``gauss_sample_top_k``
    give; two empty arrays, having changed nothing, if a value is bad."""
    if first_bad_input(arms, n_arms, x, max_abs):
        return np.empty(0, dtype=np.int64), np.empty(0)
    ensure_packed_all(cov, packed, stale, arms)
    z = zbuf[zpos : zpos + arms.shape[0]]
    _, _, scores, order = gauss_sample_top_k(cov, w, packed, arms, x, scale, z, k)
    return order, scores[order]


@njit(**_JIT_SCORE_GIL)
def gauss_decide(cov, w, packed, stale, arms, x, scale, z, k, table, offset, draws):  # type: ignore[no-untyped-def]
    """What a Recommend computes, in one call that holds the GIL: repack stale
    rows (``ensure_packed_all``), the Thompson draw and its top ``k``
    (``gauss_sample_top_k``), the first-slot counts (``first_slot_counts_gauss``).

    Returns (order, scores of the ranked arms, counts): exactly what the three
    kernels give when called one after the other.
    """
    ensure_packed_all(cov, packed, stale, arms)
    mean, std, scores, order = gauss_sample_top_k(cov, w, packed, arms, x, scale, z, k)
    counts = first_slot_counts_gauss(mean, std, table, offset, draws)
    return order, scores[order], counts


@njit(**_JIT)
def refresh_theta(ainv, b, theta, a):  # type: ignore[no-untyped-def]
    """theta_a = A_a^-1 b_a (the posterior mean cache of disjoint linear TS)."""
    d = b.shape[1]
    for i in range(d):
        t = 0.0
        for j in range(d):
            t += ainv[a, i, j] * b[a, j]
        theta[a, i] = t


@njit(**_JIT)
def _decay_precision(a_mat, vec, lam, gamma):  # type: ignore[no-untyped-def]
    d = vec.shape[0]
    for r in range(d):
        for c in range(d):
            a_mat[r, c] *= gamma
        a_mat[r, r] += (1.0 - gamma) * lam


@njit(**_JIT)
def _refresh(a_mat, ainv_out):  # type: ignore[no-untyped-def]
    inv, ok = spd_inverse(a_mat)
    if ok:
        ainv_out[:, :] = inv
    return ok


@njit(**_JIT)
def lin_update_one(
    a_all, b_all, ainv_all, theta, stale, pulls, rsum, since, arm, x, r, lam, gamma, refresh_every
):  # type: ignore[no-untyped-def]
    """Apply one event to arm ``arm`` of a disjoint linear model; False if A lost SPD.

    Updates the statistics (A, b), the cached inverse and the cached
    posterior mean theta = A^-1 b, and marks the packed scoring row stale.
    """
    ok = _lin_step(a_all, b_all, ainv_all, pulls, rsum, since, arm, x, r, lam, gamma, refresh_every)
    if ok:
        refresh_theta(ainv_all, b_all, theta, arm)
        stale[arm] = 1  # the packed row: repacked by the next draw that scores it
    return ok


@njit(**_JIT)
def _lin_step(a_all, b_all, ainv_all, pulls, rsum, since, arm, x, r, lam, gamma, refresh_every):  # type: ignore[no-untyped-def]
    d = x.shape[0]
    a_mat = a_all[arm]
    b = b_all[arm]
    ainv = ainv_all[arm]
    if gamma != 1.0:
        _decay_precision(a_mat, b, lam, gamma)
        for i in range(d):
            b[i] *= gamma
    for i in range(d):
        xi = x[i]
        for j in range(d):
            a_mat[i, j] += xi * x[j]
        b[i] += r * xi
    pulls[arm] += 1
    rsum[arm] += r
    since[arm] += 1
    if gamma != 1.0 or since[arm] >= refresh_every:
        since[arm] = 0
        return _refresh(a_mat, ainv)
    # Sherman-Morrison: (A + xx')^-1 = Ainv - (Ainv x)(Ainv x)' / (1 + x'Ainv x)
    u = np.empty(d)
    for i in range(d):
        t = 0.0
        for j in range(d):
            t += ainv[i, j] * x[j]
        u[i] = t
    den = 1.0
    for i in range(d):
        den += u[i] * x[i]
    if not (den > 0.0) or not math.isfinite(den) or den > _SM_MAX_DEN:
        since[arm] = 0
        return _refresh(a_mat, ainv)
    for i in range(d):
        ui = u[i] / den
        for j in range(d):
            ainv[i, j] -= ui * u[j]
    # keep exact symmetry whatever the rounding did
    for i in range(d):
        for j in range(i):
            s = 0.5 * (ainv[i, j] + ainv[j, i])
            ainv[i, j] = s
            ainv[j, i] = s
    return True


@njit(**_JIT)
def lin_update_batch(
    a_all,
    b_all,
    ainv_all,
    theta,
    stale,
    pulls,
    rsum,
    since,
    arms,
    xs,
    rs,
    lam,
    gamma,
    refresh_every,
):  # type: ignore[no-untyped-def]
    """Apply events in order; returns how many applied before any failure."""
    for i in range(arms.shape[0]):
        ok = lin_update_one(
            a_all,
            b_all,
            ainv_all,
            theta,
            stale,
            pulls,
            rsum,
            since,
            arms[i],
            xs[i],
            rs[i],
            lam,
            gamma,
            refresh_every,
        )
        if not ok:
            return i
    return arms.shape[0]


# --------------------------------------------------------------- beta kernel
@njit(**_JIT)
def beta_update_batch(alpha, beta, pulls, rsum, arms, rs, a0, b0, gamma):  # type: ignore[no-untyped-def]
    """Fractional Beta-Bernoulli update: alpha += r, beta += 1 - r (r in [0, 1])."""
    for i in range(arms.shape[0]):
        a = arms[i]
        r = rs[i]
        if gamma != 1.0:
            alpha[a] = a0 + gamma * (alpha[a] - a0)
            beta[a] = b0 + gamma * (beta[a] - b0)
        alpha[a] += r
        beta[a] += 1.0 - r
        pulls[a] += 1
        rsum[a] += r
    return arms.shape[0]


# ------------------------------------------------------- logistic (Laplace)
@njit(**_JIT)
def _sigmoid(z):  # type: ignore[no-untyped-def]
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(**_JIT)
def laplace_step(mx, s, y):  # type: ignore[no-untyped-def]
    """Solve c = y - sigmoid(mx + c*s) for the one-event Laplace update.

    With prior N(m, P^-1) and one observation (x, y), the MAP lies on
    m + c * P^-1 x (the likelihood gradient is along x), so the d-dimensional
    Newton problem is one-dimensional. f(c) = c - y + sigmoid(mx + c s) is
    increasing and has its root in (y - 1, y): safeguarded Newton.

    Newton can bounce between the two ends of the bracket while shrinking it
    only slowly (large s); as in Numerical Recipes' rtsafe, a Newton step
    longer than half the step before last is replaced by bisection, so the
    steps shrink at least geometrically.
    """
    lo = y - 1.0
    hi = y
    c = y - _sigmoid(mx)
    step = hi - lo
    step_old = step
    for _ in range(200):
        p = _sigmoid(mx + c * s)
        f = c - y + p
        if f > 0.0:
            hi = c
        else:
            lo = c
        fp = 1.0 + s * p * (1.0 - p)
        nc = c - f / fp
        if not (lo < nc < hi) or abs(2.0 * f) > abs(step_old * fp):
            nc = 0.5 * (lo + hi)
        step_old = step
        step = nc - c
        if abs(nc - c) <= 1e-15 * (1.0 + abs(c)):
            c = nc
            break
        c = nc
    return c


@njit(**_JIT)
def logistic_update_one(
    m_all, p_all, pinv_all, stale, pulls, rsum, since, arm, x, y, lam, gamma, refresh_every
):  # type: ignore[no-untyped-def]
    """One-event Laplace update of arm ``arm`` (Chapelle & Li 2011, full covariance).

    Also marks the arm's packed scoring row stale; False if P lost SPD.
    """
    ok = _logistic_step(
        m_all, p_all, pinv_all, pulls, rsum, since, arm, x, y, lam, gamma, refresh_every
    )
    if ok:
        stale[arm] = 1  # the packed row: repacked by the next draw that scores it
    return ok


@njit(**_JIT)
def _logistic_step(
    m_all, p_all, pinv_all, pulls, rsum, since, arm, x, y, lam, gamma, refresh_every
):  # type: ignore[no-untyped-def]
    d = x.shape[0]
    m = m_all[arm]
    p_mat = p_all[arm]
    pinv = pinv_all[arm]
    if gamma != 1.0:
        _decay_precision(p_mat, m, lam, gamma)
        if not _refresh(p_mat, pinv):
            return False
    u = np.empty(d)
    for i in range(d):
        t = 0.0
        for j in range(d):
            t += pinv[i, j] * x[j]
        u[i] = t
    s = 0.0
    mx = 0.0
    for i in range(d):
        s += u[i] * x[i]
        mx += m[i] * x[i]
    c = laplace_step(mx, s, y)
    for i in range(d):
        m[i] += c * u[i]
    z = mx + c * s
    pz = _sigmoid(z)
    w = pz * (1.0 - pz)
    for i in range(d):
        xi = x[i]
        for j in range(d):
            # w * (x_i x_j), not (w x_i) x_j: the same rounding for (i, j) and
            # (j, i), so P stays exactly symmetric
            p_mat[i, j] += w * (xi * x[j])
    pulls[arm] += 1
    rsum[arm] += y
    since[arm] += 1
    if since[arm] >= refresh_every:
        since[arm] = 0
        return _refresh(p_mat, pinv)
    den = 1.0 + w * s
    if not (den > 0.0) or not math.isfinite(den) or den > _SM_MAX_DEN:
        since[arm] = 0
        return _refresh(p_mat, pinv)
    for i in range(d):
        ui = w * u[i] / den
        for j in range(d):
            pinv[i, j] -= ui * u[j]
    for i in range(d):
        for j in range(i):
            t = 0.5 * (pinv[i, j] + pinv[j, i])
            pinv[i, j] = t
            pinv[j, i] = t
    return True


@njit(**_JIT)
def logistic_update_batch(
    m_all, p_all, pinv_all, stale, pulls, rsum, since, arms, xs, ys, lam, gamma, refresh_every
):  # type: ignore[no-untyped-def]
    for i in range(arms.shape[0]):
        if not logistic_update_one(
            m_all,
            p_all,
            pinv_all,
            stale,
            pulls,
            rsum,
            since,
            arms[i],
            xs[i],
            ys[i],
            lam,
            gamma,
            refresh_every,
        ):
            return i
    return arms.shape[0]


# --------------------------------------------------------- shared linear TS
@njit(**_JIT)
def _mix(i, h):  # type: ignore[no-untyped-def]
    # splitmix64 finaliser over (context index, arm feature hash): a stable
    # cross-feature hash, the same on every platform.
    z = np.uint64(h) ^ (np.uint64(i + 1) * np.uint64(0x9E3779B97F4A7C15))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(**_JIT)
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


@njit(**_JIT)
def joint_matrix(x, arms, ptr, ids, vals, dim):  # type: ignore[no-untyped-def]
    """Rows phi(x, a) for the arms given (CSR arm features: ptr, ids, vals)."""
    out = np.empty((arms.shape[0], dim))
    for r in range(arms.shape[0]):
        a = arms[r]
        out[r] = joint_features(x, ids[ptr[a] : ptr[a + 1]], vals[ptr[a] : ptr[a + 1]], dim)
    return out


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
def _gamma_draw(d, c, boost, normals, uniforms, pos_n, pos_u):  # type: ignore[no-untyped-def]
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


@njit(**_JIT)
def _gamma_setup(a, d, c, boost):  # type: ignore[no-untyped-def]
    """Per shape a[i], the constants of ``_gamma_draw``."""
    for i in range(a.shape[0]):
        a1 = a[i] + 1.0 if a[i] < 1.0 else a[i]
        d[i] = a1 - 1.0 / 3.0
        c[i] = 1.0 / math.sqrt(9.0 * d[i])
        boost[i] = 1.0 / a[i] if a[i] < 1.0 else 0.0


@njit(**_JIT)
def _gamma_bounds(d, c, boost, zmin, zmax, umin):  # type: ignore[no-untyped-def]
    """Smallest and largest value ``_gamma_draw`` can return when the normal
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


@njit(**_JIT)
def beta_first_counts(alpha, beta, normals, uniforms, off_n, off_u, draws, zmin, zmax, umin):  # type: ignore[no-untyped-def]
    """In ``draws`` joint draws of independent Beta(alpha[i], beta[i]), how
    often each i is the largest (first on ties). Beta = X / (X + Y) with X,
    Y Gamma draws (``_gamma_draw``) from the seeded tables, read from the
    offsets the caller drew from its Generator.

    An arm whose largest possible draw (tables in [zmin, zmax] and [umin, 1])
    is below another arm's smallest possible draw wins no draw whatever the
    tables hold: it is not drawn at all (exactly as the Gaussian kernel skips
    arms), which is most arms once the posteriors are narrow."""
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
    floor = 0.0
    for i in range(n):
        xlo, xhi = _gamma_bounds(da[i], ca[i], ba[i], zmin, zmax, umin)
        ylo, yhi = _gamma_bounds(db[i], cb[i], bb[i], zmin, zmax, umin)
        s_hi[i] = xhi / (xhi + ylo)
        s_lo[i] = xlo / (xlo + yhi)
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
            x, pos_n, pos_u = _gamma_draw(d1, c1, b1, normals, uniforms, pos_n, pos_u)
            y, pos_n, pos_u = _gamma_draw(d2, c2, b2, normals, uniforms, pos_n, pos_u)
            s = x / (x + y) if x + y > 0.0 else 0.5
            if s > best_s[r]:
                best_s[r] = s
                best[r] = i
    counts = np.zeros(n, dtype=np.int64)
    for r in range(draws):
        counts[best[r]] += 1
    return counts
