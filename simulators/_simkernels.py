# mypy: ignore-errors
# (Numba kernels are typed by Numba when compiled, as bandit_engine.kernels is.)
"""Numba kernels of the simulators: the reward stream and the fast Beta-TS loop.

Two sources of randomness, both explicit and seeded:

- **Reward uniforms** are counter-based: the uniform that decides the reward
  of arm ``a`` at round ``t`` is a hash (two SplitMix64 finalisers) of
  ``(key, t, a)``, where ``key`` is drawn once from the world's
  ``numpy.random.Generator``. Any runner, in Python or inside a Numba loop,
  sees the same draw for the same (round, arm), whatever it chose before:
  that is what makes comparisons between policies *paired*.
- **Posterior draws** of the fast loop come from the kernel's own
  xoshiro256** generator, seeded from the ``seed`` argument through
  SplitMix64 (the seeding Vigna recommends). It is local to the call: no
  global state (neither NumPy's nor Numba's ``np.random``) is read or
  changed, and the same seed gives the same run bit for bit. Gamma variates
  use Marsaglia & Tsang (2000), normals the polar method; this is several
  times faster than Numba's ``np.random.beta`` (a Mersenne Twister behind a
  thread-local state).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "beta_samples",
    "beta_ts_bernoulli",
    "reward_uniform",
    "reward_uniforms",
]

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_JIT_INLINE = {**_JIT, "inline": "always"}

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


# ------------------------------------------------------------- reward stream
@njit(**_JIT_INLINE)
def _mix64(z):  # type: ignore[no-untyped-def]
    """The SplitMix64 finaliser: a bijection of uint64 with full avalanche."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(**_JIT_INLINE)
def reward_uniform(key, t, arm):  # type: ignore[no-untyped-def]
    """The uniform in [0, 1) deciding arm ``arm``'s reward at round ``t``."""
    z = _mix64(np.uint64(key) + np.uint64(t) * _GOLDEN)
    z = _mix64(z ^ (np.uint64(arm) * _GOLDEN + np.uint64(1)))
    return np.float64(z >> np.uint64(11)) * _TO_UNIT


@njit(**_JIT)
def reward_uniforms(key, t, arms):  # type: ignore[no-untyped-def]
    """``reward_uniform(key, t, a)`` for each ``a`` in ``arms`` (int64 array)."""
    out = np.empty(arms.shape[0])
    for i in range(arms.shape[0]):
        out[i] = reward_uniform(key, t, arms[i])
    return out


# ---------------------------------------------------------- xoshiro256** rng
@njit(**_JIT_INLINE)
def _rotl(x, k):  # type: ignore[no-untyped-def]
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(**_JIT)
def _seed_state(seed):  # type: ignore[no-untyped-def]
    s = np.empty(4, dtype=np.uint64)
    z = np.uint64(seed)
    for i in range(4):
        z = z + _GOLDEN
        s[i] = _mix64(z)
    return s


@njit(**_JIT_INLINE)
def _next(s):  # type: ignore[no-untyped-def]
    result = _rotl(s[1] * np.uint64(5), 7) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@njit(**_JIT_INLINE)
def _uniform(s):  # type: ignore[no-untyped-def]
    return np.float64(_next(s) >> np.uint64(11)) * _TO_UNIT


@njit(**_JIT)
def _normal(s, spare):  # type: ignore[no-untyped-def]
    """Standard normal, polar method; the pair's second value waits in ``spare``."""
    if spare[0] != 0.0:
        spare[0] = 0.0
        return spare[1]
    while True:
        u = 2.0 * _uniform(s) - 1.0
        v = 2.0 * _uniform(s) - 1.0
        q = u * u + v * v
        if 0.0 < q < 1.0:
            break
    f = math.sqrt(-2.0 * math.log(q) / q)
    spare[0] = 1.0
    spare[1] = v * f
    return u * f


@njit(**_JIT)
def _gamma_consts(shape):  # type: ignore[no-untyped-def]
    """(d, c, boost) of Marsaglia-Tsang for Gamma(shape, 1); shape < 1 is boosted."""
    boost = shape < 1.0
    a = shape + 1.0 if boost else shape
    d = a - 1.0 / 3.0
    return d, 1.0 / math.sqrt(9.0 * d), boost


@njit(**_JIT)
def _gamma(shape, d, c, boost, s, spare):  # type: ignore[no-untyped-def]
    """Gamma(shape, 1) from its precomputed constants (Marsaglia & Tsang 2000)."""
    while True:
        x = _normal(s, spare)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = _uniform(s)
        x2 = x * x
        if u < 1.0 - 0.0331 * x2 * x2 or math.log(u) < 0.5 * x2 + d * (1.0 - v + math.log(v)):
            g = d * v
            break
    if boost:  # Gamma(a) = Gamma(a + 1) * U^(1/a)
        g *= _uniform(s) ** (1.0 / shape)
    return g


@njit(**_JIT)
def beta_samples(alpha, beta, n, seed):  # type: ignore[no-untyped-def]
    """``n`` Beta(alpha, beta) draws from the kernel generator (for tests)."""
    s = _seed_state(seed)
    spare = np.zeros(2)
    da, ca, ba = _gamma_consts(alpha)
    db, cb, bb = _gamma_consts(beta)
    out = np.empty(n)
    for i in range(n):
        x = _gamma(alpha, da, ca, ba, s, spare)
        y = _gamma(beta, db, cb, bb, s, spare)
        out[i] = x / (x + y)
    return out


# ---------------------------------------------------------- fast Beta-TS loop
@njit(**_JIT)
def beta_ts_bernoulli(probs, rounds, seed, key, prior_alpha, prior_beta):  # type: ignore[no-untyped-def]
    """Beta-Bernoulli Thompson sampling on a K-armed Bernoulli world, one loop.

    Each round draws Beta(alpha_a, beta_a) for every arm, plays the argmax
    (ties to the lower index), observes ``reward_uniform(key, t, arm) <
    probs[arm]`` (the world's reward stream) and updates that arm. Posterior
    draws come from xoshiro256** seeded with ``seed``.

    Returns (rewards, regrets, pulls): the 0/1 reward and the expected regret
    ``max(probs) - probs[arm]`` of each round, and the pulls of each arm.
    """
    s = _seed_state(seed)
    spare = np.zeros(2)
    n = probs.shape[0]
    alpha = np.full(n, prior_alpha)
    beta = np.full(n, prior_beta)
    da = np.empty(n)
    ca = np.empty(n)
    ba = np.empty(n, dtype=np.bool_)
    db = np.empty(n)
    cb = np.empty(n)
    bb = np.empty(n, dtype=np.bool_)
    for i in range(n):
        da[i], ca[i], ba[i] = _gamma_consts(alpha[i])
        db[i], cb[i], bb[i] = _gamma_consts(beta[i])
    best = probs.max()
    rewards = np.empty(rounds)
    regrets = np.empty(rounds)
    pulls = np.zeros(n, dtype=np.int64)
    for t in range(rounds):
        arm = 0
        top = -1.0
        for i in range(n):
            x = _gamma(alpha[i], da[i], ca[i], ba[i], s, spare)
            y = _gamma(beta[i], db[i], cb[i], bb[i], s, spare)
            score = x / (x + y)
            if score > top:
                top = score
                arm = i
        pulls[arm] += 1
        if reward_uniform(key, t, arm) < probs[arm]:
            rewards[t] = 1.0
            alpha[arm] += 1.0
            da[arm], ca[arm], ba[arm] = _gamma_consts(alpha[arm])
        else:
            rewards[t] = 0.0
            beta[arm] += 1.0
            db[arm], cb[arm], bb[arm] = _gamma_consts(beta[arm])
        regrets[t] = best - probs[arm]
    return rewards, regrets, pulls
