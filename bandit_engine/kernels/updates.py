"""Posterior updates: linear (Sherman-Morrison with periodic rebuilds),
Beta, and logistic (Laplace steps)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bandit_engine.kernels._jit import JIT
from bandit_engine.kernels.linalg import spd_inverse

__all__ = [
    "NOISE_A0",
    "NOISE_B0",
    "NOISE_CENTER",
    "NOISE_EXPLORATION",
    "NOISE_FIXED",
    "beta_update_batch",
    "laplace_step",
    "lin_decay_arms",
    "lin_noise_scale",
    "lin_update_batch",
    "lin_update_one",
    "logistic_decay_arms",
    "logistic_update_batch",
    "logistic_update_one",
    "refresh_theta",
]

# A Sherman-Morrison step subtracts u u'/den from Ainv; in the direction of x
# it cancels about log10(den) digits, and the error stays in the cache until
# the next refresh. Past this denominator, rebuild the inverse from A instead.
_SM_MAX_DEN = 1e4


@njit(**JIT)
def refresh_theta(ainv, b, theta, a):  # type: ignore[no-untyped-def]
    """theta_a = A_a^-1 b_a (the posterior mean cache of disjoint linear TS)."""
    d = b.shape[1]
    for i in range(d):
        t = 0.0
        for j in range(d):
            t += ainv[a, i, j] * b[a, j]
        theta[a, i] = t


@njit(**JIT)
def _decay_precision(a_mat, vec, lam, gamma):  # type: ignore[no-untyped-def]
    d = vec.shape[0]
    for r in range(d):
        for c in range(d):
            a_mat[r, c] *= gamma
        a_mat[r, r] += (1.0 - gamma) * lam


@njit(**JIT)
def _refresh(a_mat, ainv_out):  # type: ignore[no-untyped-def]
    inv, ok = spd_inverse(a_mat)
    if ok:
        ainv_out[:, :] = inv
    return ok


#: ``noise_prior`` of the linear model: [a0, b0, exploration, fixed noise
#: scale (0: learned), prior mean of a reward] (``LinTSDisjoint``).
NOISE_A0, NOISE_B0, NOISE_EXPLORATION, NOISE_FIXED, NOISE_CENTER = 0, 1, 2, 3, 4


@njit(**JIT)
def lin_noise_scale(b_all, theta, noise, scales, arm, prior):  # type: ignore[no-untyped-def]
    """The score scale of arm ``arm``: exploration * sigma_a, where sigma_a is
    the fixed noise scale, or the one learned from the arm's rewards.

    Learned: the normal-inverse-gamma posterior of the noise variance
    (Riquelme, Tucker & Snoek 2018), a_n = a0 + n/2 and
    b_n = b0 + (sum r^2 - b' A^-1 b) / 2 over the centred, discounted rewards
    (``noise[arm]`` = [sum r^2, n]); sigma_a^2 = b_n / (a_n - 1), the variance
    of the posterior predictive Student t, so that a Gaussian draw with it
    has the t's spread.
    """
    expl = prior[NOISE_EXPLORATION]
    fixed = prior[NOISE_FIXED]
    if fixed > 0.0:
        scales[arm] = expl * fixed
        return
    fit = 0.0
    for i in range(b_all.shape[1]):
        fit += b_all[arm, i] * theta[arm, i]
    sse = noise[arm, 0] - fit
    if not sse > 0.0:
        sse = 0.0
    bn = prior[NOISE_B0] + 0.5 * sse
    an = prior[NOISE_A0] + 0.5 * noise[arm, 1]
    scales[arm] = expl * math.sqrt(bn / (an - 1.0))


@njit(**JIT)
def lin_update_one(
    a_all,
    b_all,
    ainv_all,
    theta,
    stale,
    pulls,
    rsum,
    since,
    noise,
    scales,
    arm,
    x,
    r,
    lam,
    gamma,
    refresh_every,
    prior,
    w=1.0,
):  # type: ignore[no-untyped-def]
    """Apply one event of weight ``w`` to arm ``arm`` of a disjoint linear
    model; False if A lost SPD.

    Updates the statistics (A, b over rewards centred on
    ``prior[NOISE_CENTER]``, and the noise sums), the cached inverse, the
    cached posterior mean theta = A^-1 b and the arm's score scale, and marks
    the packed scoring row stale.
    """
    ok = _lin_step(
        a_all, b_all, ainv_all, pulls, rsum, since, noise, arm, x, r, lam, gamma, refresh_every,
        prior[NOISE_CENTER], w,
    )  # fmt: skip
    if ok:
        refresh_theta(ainv_all, b_all, theta, arm)
        lin_noise_scale(b_all, theta, noise, scales, arm, prior)
        stale[arm] = 1  # the packed row: repacked by the next draw that scores it
    return ok


@njit(**JIT)
def _lin_step(
    a_all, b_all, ainv_all, pulls, rsum, since, noise, arm, x, r, lam, gamma, refresh_every, center,
    w,
):  # type: ignore[no-untyped-def]  # fmt: skip
    d = x.shape[0]
    a_mat = a_all[arm]
    b = b_all[arm]
    ainv = ainv_all[arm]
    rc = r - center
    if gamma != 1.0:
        _decay_precision(a_mat, b, lam, gamma)
        for i in range(d):
            b[i] *= gamma
        noise[arm, 0] *= gamma
        noise[arm, 1] *= gamma
    for i in range(d):
        xi = x[i]
        wxi = w * xi
        for j in range(d):
            # w * (x_i x_j): the same rounding for (i, j) and (j, i)
            a_mat[i, j] += w * (xi * x[j])
        b[i] += rc * wxi
    noise[arm, 0] += w * rc * rc
    noise[arm, 1] += w
    pulls[arm] += 1
    rsum[arm] += r
    since[arm] += 1
    if gamma != 1.0 or since[arm] >= refresh_every:
        since[arm] = 0
        return _refresh(a_mat, ainv)
    # Sherman-Morrison: (A + w xx')^-1 = Ainv - w (Ainv x)(Ainv x)' / (1 + w x'Ainv x)
    u = np.empty(d)
    for i in range(d):
        t = 0.0
        for j in range(d):
            t += ainv[i, j] * x[j]
        u[i] = t
    den = 0.0
    for i in range(d):
        den += u[i] * x[i]
    den = 1.0 + w * den
    if not (den > 0.0) or not math.isfinite(den) or den > _SM_MAX_DEN:
        since[arm] = 0
        return _refresh(a_mat, ainv)
    for i in range(d):
        ui = w * u[i] / den
        for j in range(d):
            ainv[i, j] -= ui * u[j]
    # keep exact symmetry whatever the rounding did
    for i in range(d):
        for j in range(i):
            s = 0.5 * (ainv[i, j] + ainv[j, i])
            ainv[i, j] = s
            ainv[j, i] = s
    return True


@njit(**JIT)
def lin_update_batch(
    a_all,
    b_all,
    ainv_all,
    theta,
    stale,
    pulls,
    rsum,
    since,
    noise,
    scales,
    arms,
    xs,
    rs,
    lam,
    gamma,
    refresh_every,
    prior,
    ws,
):  # type: ignore[no-untyped-def]
    """Apply events of weights ``ws`` in order; returns how many applied
    before any failure."""
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
            noise,
            scales,
            arms[i],
            xs[i],
            rs[i],
            lam,
            gamma,
            refresh_every,
            prior,
            ws[i],
        )
        if not ok:
            return i
    return arms.shape[0]


@njit(**JIT)
def lin_decay_arms(
    a_all, b_all, ainv_all, theta, stale, since, noise, scales, arms, factors, lam, prior
):  # type: ignore[no-untyped-def]
    """Scale the evidence of each arm ``arms[k]`` by ``factors[k]`` toward the
    prior (A <- lam I + f (A - lam I), b <- f b, noise sums <- f sums) and
    rebuild its caches; returns how many before any lost SPD."""
    d = b_all.shape[1]
    for k in range(arms.shape[0]):
        a = arms[k]
        g = factors[k]
        _decay_precision(a_all[a], b_all[a], lam, g)
        for i in range(d):
            b_all[a, i] *= g
        noise[a, 0] *= g
        noise[a, 1] *= g
        since[a] = 0
        if not _refresh(a_all[a], ainv_all[a]):
            return k
        refresh_theta(ainv_all, b_all, theta, a)
        lin_noise_scale(b_all, theta, noise, scales, a, prior)
        stale[a] = 1
    return arms.shape[0]


@njit(**JIT)
def beta_update_batch(alpha, beta, pulls, rsum, arms, rs, a0, b0, gamma, ws):  # type: ignore[no-untyped-def]
    """Fractional Beta-Bernoulli update of weight w: alpha += w r,
    beta += w (1 - r) (r in [0, 1])."""
    for i in range(arms.shape[0]):
        a = arms[i]
        r = rs[i]
        w = ws[i]
        if gamma != 1.0:
            alpha[a] = a0 + gamma * (alpha[a] - a0)
            beta[a] = b0 + gamma * (beta[a] - b0)
        alpha[a] += w * r
        beta[a] += w * (1.0 - r)
        pulls[a] += 1
        rsum[a] += r
    return arms.shape[0]


@njit(**JIT)
def _sigmoid(z):  # type: ignore[no-untyped-def]
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(**JIT)
def laplace_step(mx, s, y, w=1.0):  # type: ignore[no-untyped-def]
    """Solve c = w (y - sigmoid(mx + c*s)) for the one-event Laplace update
    of an event of weight ``w`` > 0 (its log-likelihood counted ``w`` times).

    With prior N(m, P^-1) and one observation (x, y), the MAP lies on
    m + c * P^-1 x (the likelihood gradient is along x), so the d-dimensional
    Newton problem is one-dimensional. f(c) = c - y + sigmoid(mx + c s) is
    increasing and has its root in (y - 1, y): safeguarded Newton (for
    weight w, f(c) = c - w (y - sigmoid(mx + c s)), root in (w (y - 1), w y)).

    Newton can bounce between the two ends of the bracket while shrinking it
    only slowly (large s); as in Numerical Recipes' rtsafe, a Newton step
    longer than half the step before last is replaced by bisection, so the
    steps shrink at least geometrically.
    """
    lo = w * (y - 1.0)
    hi = w * y
    c = w * (y - _sigmoid(mx))
    step = hi - lo
    step_old = step
    for _ in range(200):
        p = _sigmoid(mx + c * s)
        f = c - w * (y - p)
        if f > 0.0:
            hi = c
        else:
            lo = c
        fp = 1.0 + w * s * p * (1.0 - p)
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


@njit(**JIT)
def logistic_update_one(
    m_all, p_all, pinv_all, stale, pulls, rsum, since, arm, x, y, lam, gamma, refresh_every, w=1.0
):  # type: ignore[no-untyped-def]
    """One-event Laplace update of arm ``arm`` (Chapelle & Li 2011, full
    covariance), the event's log-likelihood weighted by ``w``.

    Also marks the arm's packed scoring row stale; False if P lost SPD.
    """
    ok = _logistic_step(
        m_all, p_all, pinv_all, pulls, rsum, since, arm, x, y, lam, gamma, refresh_every, w
    )
    if ok:
        stale[arm] = 1  # the packed row: repacked by the next draw that scores it
    return ok


@njit(**JIT)
def _logistic_step(
    m_all, p_all, pinv_all, pulls, rsum, since, arm, x, y, lam, gamma, refresh_every, w
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
    c = laplace_step(mx, s, y, w)
    for i in range(d):
        m[i] += c * u[i]
    z = mx + c * s
    pz = _sigmoid(z)
    h = w * (pz * (1.0 - pz))
    for i in range(d):
        xi = x[i]
        for j in range(d):
            # h * (x_i x_j), not (h x_i) x_j: the same rounding for (i, j) and
            # (j, i), so P stays exactly symmetric
            p_mat[i, j] += h * (xi * x[j])
    pulls[arm] += 1
    rsum[arm] += y
    since[arm] += 1
    if since[arm] >= refresh_every:
        since[arm] = 0
        return _refresh(p_mat, pinv)
    den = 1.0 + h * s
    if not (den > 0.0) or not math.isfinite(den) or den > _SM_MAX_DEN:
        since[arm] = 0
        return _refresh(p_mat, pinv)
    for i in range(d):
        ui = h * u[i] / den
        for j in range(d):
            pinv[i, j] -= ui * u[j]
    for i in range(d):
        for j in range(i):
            t = 0.5 * (pinv[i, j] + pinv[j, i])
            pinv[i, j] = t
            pinv[j, i] = t
    return True


@njit(**JIT)
def logistic_decay_arms(m_all, p_all, pinv_all, stale, since, arms, factors, lam):  # type: ignore[no-untyped-def]
    """Temper the evidence of each arm ``arms[k]`` by ``factors[k]`` = f toward
    the prior N(0, I/lam): the likelihood's natural parameters scale by f,
    P <- lam I + f (P - lam I) and P m <- f P m (the prior's own P m is 0).
    Returns how many before any lost SPD."""
    d = m_all.shape[1]
    eta = np.empty(d)
    for k in range(arms.shape[0]):
        a = arms[k]
        g = factors[k]
        p_mat = p_all[a]
        m = m_all[a]
        for i in range(d):
            t = 0.0
            for j in range(d):
                t += p_mat[i, j] * m[j]
            eta[i] = g * t
        _decay_precision(p_mat, m, lam, g)
        since[a] = 0
        if not _refresh(p_mat, pinv_all[a]):
            return k
        pinv = pinv_all[a]
        for i in range(d):
            t = 0.0
            for j in range(d):
                t += pinv[i, j] * eta[j]
            m[i] = t
        stale[a] = 1
    return arms.shape[0]


@njit(**JIT)
def logistic_update_batch(
    m_all, p_all, pinv_all, stale, pulls, rsum, since, arms, xs, ys, lam, gamma, refresh_every, ws
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
            ws[i],
        ):
            return i
    return arms.shape[0]
