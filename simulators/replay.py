"""Replay (Li, Chu, Langford, Wang 2011): how a learning policy would have done.

On a uniformly logged stream, walk the events in order; at each event the
policy chooses among the event's candidates; if its choice is the logged
arm, the event "happened" to the policy: its reward counts, and (``learn``)
the policy learns from it. Otherwise the event is skipped. With uniform
logging the accepted events are distributed exactly as an online run of the
policy, so the mean accepted reward estimates its online CTR (about n / K
events are accepted).

Two paths give identical results for the same seed:

- ``replay_slow``: ``policy.rank(candidates, x, 1, rng)`` and
  ``policy.update`` event by event; any policy.
- the fast path (``LinTSDisjoint``, ``LogisticTS``): a Numba kernel on the
  policy's own arrays. The standard normal draws are the same
  (``rng.standard_normal`` of the candidate count per event, drawn in chunks,
  which is the same stream). To decide whether the logged arm wins, the
  kernel computes its sampled score, then other arms' scores only until one
  beats it (checking first the arm that beat the last event): a non-matching
  event, the common case, costs a handful of O(d^2) scores instead of K.
  Updates use the engine's own ``kernels.lin_update_one`` /
  ``logistic_update_one``.

The interval (``ReplayResult.estimate``) is a bootstrap over the accepted
rewards: it covers the reward noise of the accepted events, not the
variability of the policy's learning path (rerun with other seeds for that).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from bandit_engine import ArmFeatures, ExperimentConfig, InvalidArgument
from bandit_engine.kernels import (
    ensure_packed,
    gauss_arm,
    lin_update_one,
    logistic_update_one,
    quad_context,
)
from bandit_engine.policies import LinTSDisjoint, LogisticTS, Policy, make_policy
from simulators.estimators import Estimate, estimate
from simulators.estimators import OPETerms as _Terms
from simulators.logs import BanditLog

__all__ = ["ReplayResult", "fast_path_supported", "policy_for_log", "replay", "replay_slow"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Progress = Callable[[int, int], None]

_EXACT: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": False}


# ----------------------------------------------------------------- policies
def policy_for_log(
    log: BanditLog,
    kind: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Policy:
    """A fresh policy whose arm ``j`` is the log's arm ``j``.

    ``kind=None`` rebuilds the policy the log was served with (the
    experiment config in the log's header) with ``params`` overriding its
    settings; otherwise ``make_policy(kind, dim=log.dim, **params)``.
    Arms get their logged features (the shared model needs them).
    """
    params = dict(params or {})
    cfg = log.meta.get("config")
    if kind is None and cfg:
        settings = {**cfg, **params}
        policy = ExperimentConfig.from_dict(settings).make_policy()
    else:
        kind = kind or "lin_ts_disjoint"
        if kind != "beta_ts":
            params.setdefault("dim", log.dim)
        policy = make_policy(kind, **params)
    if policy.contextual and policy.dim != log.dim:
        raise InvalidArgument(f"policy dim={policy.dim} but the log's contexts have {log.dim}")
    feats = log.arm_features or ({},) * log.n_arms
    for j, arm_id in enumerate(log.arm_ids):
        f = feats[j] or {}
        policy.add_arm(ArmFeatures.build(arm_id, f.get("numeric"), f.get("categorical")))
    return policy


def fast_path_supported(policy: Policy) -> bool:
    return isinstance(policy, (LinTSDisjoint, LogisticTS))


# ------------------------------------------------------------------ result
@dataclass(frozen=True)
class ReplayResult:
    """Accepted events of one replay and what the policy earned on them."""

    policy: str
    learn: bool
    seed: int
    n_events: int
    matched: IntArray  # row indices of accepted events, in order
    rewards: FloatArray  # their logged rewards
    elapsed_s: float
    fast: bool
    timestamps: FloatArray = field(default_factory=lambda: np.zeros(0))

    @property
    def n_matched(self) -> int:
        return int(self.matched.shape[0])

    @property
    def value(self) -> float:
        return float(self.rewards.mean()) if self.n_matched else math.nan

    @property
    def events_per_s(self) -> float:
        return self.n_events / self.elapsed_s if self.elapsed_s > 0 else math.inf

    def estimate(self, *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> Estimate:
        one = np.ones(self.n_matched)
        terms = _Terms(self.rewards, one, one)
        (e,) = estimate(
            terms, ["logged"], policy=self.policy, n_boot=n_boot, alpha=alpha, seed=seed
        )
        return Estimate(
            self.policy, "replay", e.value, e.ci_low, e.ci_high, self.n_matched, n_boot, alpha
        )

    def curve(self) -> tuple[IntArray, FloatArray]:
        """(event index, running mean reward) after each accepted event."""
        if not self.n_matched:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return self.matched, np.cumsum(self.rewards) / np.arange(1, self.n_matched + 1)


# --------------------------------------------------------------- slow path
def _prepare(log: BanditLog, allow_nonuniform: bool) -> None:
    if np.isnan(log.logged_reward).any():
        raise InvalidArgument("the log has rows without rewards; use log.complete()")
    if not allow_nonuniform and not log.is_uniform():
        raise InvalidArgument(
            "replay needs a uniformly logged stream (first-slot propensity = 1 / candidates); "
            "this log is not: use the IPS/SNIPS/DR estimators (evaluate), or allow it knowingly"
        )


def replay_slow(
    policy: Policy,
    log: BanditLog,
    *,
    seed: int = 0,
    learn: bool = True,
    allow_nonuniform: bool = False,
    progress: Progress | None = None,
) -> ReplayResult:
    """Reference replay through the public ``Policy`` API, one event at a time."""
    _prepare(log, allow_nonuniform)
    rng = np.random.default_rng(seed)
    actions, rewards, x = log.action, log.logged_reward, log.x
    matched: list[int] = []
    step = max(1, log.n // 100)
    t0 = time.perf_counter()
    for t in range(log.n):
        cands = log.candidates(t)
        ranking = policy.rank(cands, x[t], 1, rng)
        if cands[ranking.order[0]] == actions[t]:
            matched.append(t)
            if learn:
                policy.update(int(actions[t]), x[t], float(rewards[t]))
        if progress is not None and (t + 1) % step == 0:
            progress(t + 1, log.n)
    elapsed = time.perf_counter() - t0
    idx = np.asarray(matched, dtype=np.int64)
    return ReplayResult(
        policy.kind, learn, seed, log.n, idx, rewards[idx], elapsed, False, log.timestamp[idx]
    )


# --------------------------------------------------------------- fast path
@njit(**_EXACT)
def _score(cov, wts, packed, stale, a, x, xq, scales, z):  # type: ignore[no-untyped-def]
    ensure_packed(cov, packed, stale, a)
    mu, sd = gauss_arm(cov, wts, packed, a, x, xq, scales)
    # numpy's mean + std * z: a product and a sum, each rounded (no FMA here)
    return mu + sd * z


@njit(**_EXACT)
def _find(cidx, lo, m, arm):  # type: ignore[no-untyped-def]
    for j in range(m):
        if cidx[lo + j] == arm:
            return j
    return -1


@njit(**_EXACT)
def _replay_chunk(  # type: ignore[no-untyped-def]
    prec,
    center,
    cov,
    wts,
    packed,
    stale,
    pulls,
    rsum,
    since,
    noise,
    scales,
    prior,
    logistic,
    lam,
    gamma,
    refresh_every,
    xs,
    actions,
    rewards,
    cptr,
    cidx,
    k_all,
    z,
    row0,
    row1,
    learn,
    matched,
    n_matched,
    hint,
):
    """Replay rows [row0, row1); z holds their draws back to back.

    Returns (n_matched, status, hint): status 0, or -(t + 1) if the update at
    row t lost positive definiteness.
    """
    zpos = 0
    every = cptr.shape[0] == 0
    xq = np.empty(packed.shape[1], dtype=np.float32)
    for t in range(row0, row1):
        x = xs[t]
        quad_context(x, xq)
        a = actions[t]
        lo = 0
        m = k_all
        use_all = every
        if not every:
            lo = cptr[t]
            m = cptr[t + 1] - lo
            if m == 0:
                m = k_all
                use_all = True
        p = a if use_all else _find(cidx, lo, m, a)
        if p < 0:  # the logged arm was not a candidate: it cannot be chosen
            zpos += m
            continue
        s_a = _score(cov, wts, packed, stale, a, x, xq, scales, z[zpos + p])
        win = True
        hp = -1
        if hint >= 0 and hint != a:
            hp = hint if use_all and hint < m else (-1 if use_all else _find(cidx, lo, m, hint))
            if hp >= 0:
                s = _score(cov, wts, packed, stale, hint, x, xq, scales, z[zpos + hp])
                # top_k keeps the first of equal scores: a lower position wins ties
                if s > s_a or (hp < p and s == s_a):
                    win = False
        if win:
            for j in range(m):
                if j == p or j == hp:
                    continue
                arm = j if use_all else cidx[lo + j]
                s = _score(cov, wts, packed, stale, arm, x, xq, scales, z[zpos + j])
                if s > s_a or (j < p and s == s_a):
                    win = False
                    hint = arm
                    break
        zpos += m
        if win:
            matched[n_matched] = t
            n_matched += 1
            if learn:
                # same state arrays, different roles: (m, P, P^-1) vs (A, b, A^-1)
                # fmt: off
                if logistic:
                    ok = logistic_update_one(
                        center, prec, cov, stale, pulls, rsum, since, a, x, rewards[t], lam, gamma,
                        refresh_every)
                else:
                    ok = lin_update_one(
                        prec, center, cov, wts, stale, pulls, rsum, since, noise, scales, a, x,
                        rewards[t], lam, gamma, refresh_every, prior)
                # fmt: on
                if not ok:
                    return n_matched, -(t + 1), hint
    return n_matched, 0, hint


def _replay_fast(
    policy: Policy,
    log: BanditLog,
    seed: int,
    learn: bool,
    chunk: int,
    progress: Progress | None,
) -> ReplayResult:
    assert isinstance(policy, (LinTSDisjoint, LogisticTS))
    if policy.n_arms != log.n_arms:
        raise InvalidArgument(f"policy has {policy.n_arms} arms; the log has {log.n_arms}")
    if policy.dim != log.dim:
        raise InvalidArgument(f"policy dim={policy.dim} but the log's contexts have {log.dim}")
    xs = np.ascontiguousarray(log.x, dtype=np.float64)
    if not np.isfinite(xs).all():
        raise InvalidArgument("contexts must be finite")
    actions = np.ascontiguousarray(log.action, dtype=np.int64)
    rewards = np.ascontiguousarray(log.logged_reward, dtype=np.float64)
    if ((rewards < 0) | (rewards > 1)).any():
        raise InvalidArgument("rewards must be in [0, 1]")
    if log.cand_ptr is None or log.cand_idx is None:
        cptr = np.zeros(0, dtype=np.int64)
        cidx = np.zeros(0, dtype=np.int64)
    else:
        cptr, cidx = log.cand_ptr, log.cand_idx
    sizes = log.n_candidates()
    rng = np.random.default_rng(seed)
    matched = np.empty(log.n, dtype=np.int64)
    n_matched = 0
    hint = -1
    logistic = isinstance(policy, LogisticTS)
    arr = policy.arrays()
    # the linear model's noise sums and prior (unused by the logistic one)
    if isinstance(policy, LinTSDisjoint):
        noise, prior = policy.noise_arrays()
    else:
        noise, prior = np.zeros((1, 2)), np.zeros(5)
    t0 = time.perf_counter()
    for row0 in range(0, log.n, chunk):
        row1 = min(log.n, row0 + chunk)
        z = rng.standard_normal(int(sizes[row0:row1].sum()))
        n_matched, status, hint = _replay_chunk(
            arr.prec,
            arr.center,
            arr.cov,
            arr.weights,
            arr.packed,
            arr.stale,
            arr.pulls,
            arr.reward_sum,
            arr.since_refresh,
            noise,
            arr.scales,
            prior,
            logistic,
            policy.prior_precision,
            policy.decay,
            policy.refresh_every,
            xs,
            actions,
            rewards,
            cptr,
            cidx,
            log.n_arms,
            z,
            row0,
            row1,
            learn,
            matched,
            n_matched,
            hint,
        )
        if status < 0:
            raise ValueError(f"precision of arm {int(actions[-status - 1])} lost definiteness")
        if progress is not None:
            progress(row1, log.n)
    elapsed = time.perf_counter() - t0
    idx = matched[:n_matched].copy()
    return ReplayResult(
        policy.kind, learn, seed, log.n, idx, rewards[idx], elapsed, True, log.timestamp[idx]
    )


def replay(
    policy: Policy,
    log: BanditLog,
    *,
    seed: int = 0,
    learn: bool = True,
    fast: bool | None = None,
    allow_nonuniform: bool = False,
    chunk: int = 4096,
    progress: Progress | None = None,
) -> ReplayResult:
    """Replay ``policy`` (changed in place if ``learn``) over ``log``.

    ``fast=None`` takes the Numba path when the policy supports it; both
    paths give the same result for the same seed.
    """
    _prepare(log, allow_nonuniform)
    use_fast = fast_path_supported(policy) if fast is None else fast
    if use_fast and not fast_path_supported(policy):
        raise InvalidArgument(f"no fast replay path for {policy.kind}")
    if not use_fast:
        return replay_slow(
            policy, log, seed=seed, learn=learn, allow_nonuniform=True, progress=progress
        )
    if chunk < 1:
        raise InvalidArgument(f"chunk={chunk!r} must be >= 1")
    return _replay_fast(policy, log, seed, learn, chunk, progress)
