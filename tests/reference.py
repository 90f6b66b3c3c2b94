"""Plain-numpy reference implementations of the policies' posteriors.

Written from the math, not from the kernels: closed-form (discounted) sums for
the conjugate models, a bisection fold of the one-event Laplace step for the
logistic model, and quadrature for first-slot probabilities. Nothing here
imports bandit_engine except where the definition itself lives there (the
shared model's joint feature map phi is passed in by the caller).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


# ----------------------------------------------------------------- discounts
def discount_weights(group: np.ndarray, gamma: float) -> np.ndarray:
    """Weight gamma^(number of later events in the same group) of each event.

    With forgetting applied before each event of a group, an event that is
    followed by k more events of its group has been shrunk k times.
    """
    group = np.asarray(group)
    w = np.empty(group.shape[0])
    later: dict[int, int] = {}
    for e in range(group.shape[0] - 1, -1, -1):
        g = int(group[e])
        k = later.get(g, 0)
        w[e] = gamma**k
        later[g] = k + 1
    return w


# ------------------------------------------------------------------- models
def beta_stats(
    n_arms: int, arms: np.ndarray, rewards: np.ndarray, a0: float, b0: float, gamma: float
) -> tuple[np.ndarray, np.ndarray]:
    """alpha = a0 + sum w r, beta = b0 + sum w (1 - r) per arm."""
    w = discount_weights(arms, gamma)
    alpha = np.full(n_arms, a0)
    beta = np.full(n_arms, b0)
    for a in range(n_arms):
        sel = arms == a
        alpha[a] += np.sum(w[sel] * rewards[sel])
        beta[a] += np.sum(w[sel] * (1.0 - rewards[sel]))
    return alpha, beta


def linear_stats(
    xs: np.ndarray, rewards: np.ndarray, weights: np.ndarray, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """A = lam*I + sum w x x', b = sum w r x (one model)."""
    d = xs.shape[1]
    a_mat = lam * np.eye(d) + (xs * weights[:, None]).T @ xs
    b = xs.T @ (weights * rewards)
    return a_mat, b


def disjoint_stats(
    n_arms: int,
    dim: int,
    arms: np.ndarray,
    xs: np.ndarray,
    rewards: np.ndarray,
    lam: float,
    gamma: float,
    center: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-arm A, b over the rewards centred on ``center``, the magnitude
    sum |w r| |x| of each b (for tolerances), and the noise sums
    [sum w (r - center)^2, sum w] of each arm."""
    w = discount_weights(arms, gamma)
    rc = rewards - center
    a_all = np.empty((n_arms, dim, dim))
    b_all = np.empty((n_arms, dim))
    b_scale = np.zeros(n_arms)
    noise = np.zeros((n_arms, 2))
    for a in range(n_arms):
        sel = arms == a
        a_all[a], b_all[a] = linear_stats(xs[sel].reshape(-1, dim), rc[sel], w[sel], lam)
        b_scale[a] = np.sum(np.abs(w[sel] * rc[sel]) * np.linalg.norm(xs[sel], axis=1))
        noise[a] = np.sum(w[sel] * rc[sel] ** 2), np.sum(w[sel])
    return a_all, b_all, b_scale, noise


def nig_noise_var(
    a_mat: np.ndarray, b: np.ndarray, noise: np.ndarray, a0: float, sigma0: float
) -> float:
    """The noise variance of the normal-inverse-gamma posterior's predictive t:
    b_n / (a_n - 1) with a_n = a0 + n/2, b_n = (a0 - 1) sigma0^2 + (sum r^2 - b'A^-1 b)/2."""
    sse = max(float(noise[0] - b @ np.linalg.solve(a_mat, b)), 0.0)
    b_n = (a0 - 1.0) * sigma0**2 + 0.5 * sse
    a_n = a0 + 0.5 * float(noise[1])
    return b_n / (a_n - 1.0)


def shared_stats(
    phis: np.ndarray, rewards: np.ndarray, lam: float, gamma: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Shared model: every event decays the one model (one group)."""
    w = discount_weights(np.zeros(phis.shape[0], dtype=np.int64), gamma)
    a_mat, b = linear_stats(phis, rewards, w, lam)
    scale = float(np.sum(np.abs(w * rewards) * np.linalg.norm(phis, axis=1)))
    return a_mat, b, scale


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def laplace_root(mx: float, s: float, y: float) -> float:
    """Root of g(c) = c - y + sigmoid(mx + c s) on [y - 1, y] by plain bisection."""
    lo, hi = y - 1.0, y
    for _ in range(2000):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if mid - y + sigmoid(mx + mid * s) > 0.0:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


@dataclass
class LaplaceState:
    P: np.ndarray  # (n_arms, d, d)
    m: np.ndarray  # (n_arms, d)
    m_scale: np.ndarray  # sum (|c| + 1) |P^-1 x| per arm: magnitude of the terms of m


def laplace_fold(
    n_arms: int,
    dim: int,
    arms: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    lam: float,
    gamma: float,
) -> LaplaceState:
    """Fold of the exact one-event Laplace step, in event order.

    Prior N(m, P^-1), event (x, y): the MAP of 0.5 (w-m)'P(w-m) + logloss(y, w'x)
    is m + c P^-1 x with c = y - sigmoid(m'x + c x'P^-1 x); the new precision
    is P + p(1-p) x x' with p the fitted probability at the MAP.

    Forgetting (gamma < 1) shrinks the data part of the precision before the
    step, P <- lam*I + gamma*(P - lam*I), and keeps the mean m: the Laplace
    posterior's covariance is inflated toward the prior, its centre kept.
    """
    eye = np.eye(dim)
    P = np.repeat(lam * eye[None], n_arms, axis=0)
    m = np.zeros((n_arms, dim))
    scale = np.zeros(n_arms)
    for a, x, y in zip(arms, xs, ys, strict=True):
        if gamma != 1.0:
            P[a] = lam * eye + gamma * (P[a] - lam * eye)
        u = np.linalg.solve(P[a], x)
        s = float(x @ u)
        mx = float(m[a] @ x)
        c = laplace_root(mx, s, float(y))
        m[a] = m[a] + c * u
        # c = y - p is a difference of O(1) numbers: its rounding is O(eps), not O(eps |c|)
        scale[a] += (abs(c) + 1.0) * np.linalg.norm(u)
        p = sigmoid(mx + c * s)
        P[a] = P[a] + p * (1.0 - p) * np.outer(x, x)
    return LaplaceState(P, m, scale)


# ---------------------------------------------------------------- posteriors
def gauss_score(
    a_mat: np.ndarray, center: np.ndarray, x: np.ndarray, scale: float, center_is_b: bool
) -> tuple[float, float]:
    """Mean and std of x'theta with theta ~ N(mean, scale^2 A^-1)."""
    w = np.linalg.solve(a_mat, x)
    mean = float(w @ center) if center_is_b else float(x @ center)
    return mean, scale * math.sqrt(max(float(x @ w), 0.0))


def beta_mean_std(a: float, b: float) -> tuple[float, float]:
    s = a + b
    return a / s, math.sqrt(a * b / (s * s * (s + 1.0)))


# ----------------------------------------------------- first-slot probability
_erf = np.vectorize(math.erf, otypes=[float])


def normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(np.asarray(z) / math.sqrt(2.0)))


def first_slot_gauss(mean: np.ndarray, std: np.ndarray, n_grid: int = 20001) -> np.ndarray:
    """P(arm i has the largest of independent N(mean_i, std_i^2) draws).

    P_i = int phi_i(t) prod_{j != i} Phi_j(t) dt, by the trapezoid rule on a
    common grid of scores t spanning every arm's mean +- 10 sd, the product
    taken in logs once for all arms (prod_{j != i} = prod_j / Phi_i): O(n) cdf
    evaluations per grid point instead of O(n^2).
    """
    lo = float(np.min(mean - 10.0 * std))
    hi = float(np.max(mean + 10.0 * std))
    t = np.linspace(lo, hi, n_grid * max(1, int(np.ceil((hi - lo) / (20.0 * np.min(std))))))
    log_cdf = np.log(np.maximum(normal_cdf((t[None, :] - mean[:, None]) / std[:, None]), 1e-300))
    total = log_cdf.sum(axis=0)
    out = np.empty(mean.shape[0])
    for i in range(mean.shape[0]):
        z = (t - mean[i]) / std[i]
        dens = np.exp(-0.5 * z * z) / (math.sqrt(2.0 * math.pi) * std[i])
        out[i] = np.trapezoid(dens * np.exp(total - log_cdf[i]), t)
    return out


def first_slot_beta(alpha: np.ndarray, beta: np.ndarray, n_grid: int = 200001) -> np.ndarray:
    """P(arm i has the largest of independent Beta(alpha_i, beta_i) draws), alpha, beta >= 1."""
    t = np.linspace(0.0, 1.0, n_grid)
    inner = t[1:-1]
    pdfs = np.zeros((alpha.shape[0], n_grid))
    for i in range(alpha.shape[0]):
        a, b = float(alpha[i]), float(beta[i])
        lbeta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
        pdfs[i, 1:-1] = np.exp((a - 1) * np.log(inner) + (b - 1) * np.log1p(-inner) - lbeta)
        pdfs[i, 0] = 1.0 / math.exp(lbeta) if a == 1.0 else 0.0
        pdfs[i, -1] = 1.0 / math.exp(lbeta) if b == 1.0 else 0.0
    dt = t[1] - t[0]
    cdfs = np.concatenate(
        [np.zeros((alpha.shape[0], 1)), np.cumsum(0.5 * (pdfs[:, 1:] + pdfs[:, :-1]) * dt, axis=1)],
        axis=1,
    )
    cdfs /= cdfs[:, -1:]
    out = np.empty(alpha.shape[0])
    for i in range(alpha.shape[0]):
        others = np.prod(np.delete(cdfs, i, axis=0), axis=0)
        out[i] = np.trapezoid(pdfs[i] * others, t)
    return out


def first_slot_mvn(mean: np.ndarray, cov: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """P(coordinate i is the largest of one N(mean, cov) draw), by plain Monte Carlo."""
    rng = np.random.default_rng(seed)
    w, v = np.linalg.eigh(cov)
    root = v * np.sqrt(np.clip(w, 0.0, None))
    s = mean + rng.standard_normal((draws, mean.shape[0])) @ root.T
    return np.bincount(np.argmax(s, axis=1), minlength=mean.shape[0]) / draws


# ------------------------------------------------------------- exact algebra
def exact_inverse(a: np.ndarray) -> np.ndarray:
    """Inverse of a small float matrix in exact rational arithmetic, rounded once.

    The reference for cached inverses at any conditioning: it carries no
    rounding error of its own beyond the final rounding to float.
    """
    from fractions import Fraction

    n = a.shape[0]
    rows = [
        [Fraction(float(a[i, j])) for j in range(n)] + [Fraction(int(i == j)) for j in range(n)]
        for i in range(n)
    ]
    for c in range(n):
        piv = max(range(c, n), key=lambda r: abs(rows[r][c]))
        if rows[piv][c] == 0:
            raise ZeroDivisionError("singular matrix")
        rows[c], rows[piv] = rows[piv], rows[c]
        pv = rows[c][c]
        rows[c] = [v / pv for v in rows[c]]
        for r in range(n):
            if r != c and rows[r][c] != 0:
                f = rows[r][c]
                rows[r] = [vr - f * vc for vr, vc in zip(rows[r], rows[c], strict=True)]
    return np.array([[float(v) for v in row[n:]] for row in rows])
