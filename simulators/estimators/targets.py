"""Target policies as action probabilities on each row of a log (``TargetProbs``).

``uniform_target`` and ``matrix_target`` give them directly; ``policy_target``
asks an engine policy's own propensity machinery, fixed or progressive (see
``simulators.estimators``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

from bandit_engine import InvalidArgument
from bandit_engine.policies import FloatArray, IntArray, Policy
from simulators.estimators.rowseed import RowGenerators, choice_uniforms, row_keys
from simulators.logs import BanditLog

__all__ = ["Progress", "TargetProbs", "matrix_target", "policy_target", "uniform_target"]

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TargetProbs:
    """A target policy's action probabilities on each row of a log.

    Flat CSR aligned with the log's candidate sets: ``p[ptr[i]:ptr[i+1]]`` are
    the probabilities of arms ``idx[ptr[i]:ptr[i+1]]`` on row ``i``.
    ``logged[i]`` = pi(a_i | x_i); ``choice[i]`` is one draw from pi(. | x_i)
    (what replay compares with the logged arm).
    """

    name: str
    ptr: IntArray
    idx: IntArray
    p: FloatArray
    logged: FloatArray
    choice: IntArray

    @property
    def n(self) -> int:
        return int(self.logged.shape[0])


def _logged_and_choice(
    log: BanditLog, ptr: IntArray, idx: IntArray, p: FloatArray, seed: int
) -> tuple[FloatArray, IntArray]:
    u = choice_uniforms(row_keys(log.event_id, seed))
    logged, choice = _logged_choice_kernel(ptr, idx, p, log.action, u)
    return np.asarray(logged, dtype=np.float64), np.asarray(choice, dtype=np.int64)


@njit(cache=True, nogil=True)
def _logged_choice_kernel(ptr, idx, p, action, u):  # type: ignore[no-untyped-def]
    n = action.shape[0]
    logged = np.zeros(n)
    choice = np.empty(n, dtype=np.int64)
    for i in range(n):
        lo = ptr[i]
        hi = ptr[i + 1]
        total = 0.0
        for j in range(lo, hi):
            total += p[j]
            if idx[j] == action[i]:
                logged[i] = p[j]
        # inverse CDF on the row's (possibly unnormalised) probabilities
        target = u[i] * total
        acc = 0.0
        choice[i] = idx[hi - 1]
        for j in range(lo, hi):
            acc += p[j]
            if target < acc:
                choice[i] = idx[j]
                break
    return logged, choice


def uniform_target(log: BanditLog, *, seed: int = 0) -> TargetProbs:
    """The uniform policy over each row's candidates."""
    ptr, idx = log.candidate_csr()
    sizes = np.diff(ptr)
    p = np.repeat(1.0 / sizes, sizes)
    logged, choice = _logged_and_choice(log, ptr, idx, p, seed)
    return TargetProbs("uniform", ptr, idx, p, logged, choice)


def matrix_target(
    log: BanditLog, pi: FloatArray, *, name: str = "target", seed: int = 0
) -> TargetProbs:
    """A target given as an (n, n_arms) matrix of probabilities, one row per log row."""
    pi = np.asarray(pi, dtype=np.float64)
    if pi.shape != (log.n, log.n_arms):
        raise InvalidArgument(f"pi has shape {pi.shape}; expected ({log.n}, {log.n_arms})")
    ptr, idx = log.candidate_csr()
    rows = np.repeat(np.arange(log.n), np.diff(ptr))
    p = pi[rows, idx]
    logged, choice = _logged_and_choice(log, ptr, idx, p, seed)
    return TargetProbs(name, ptr, idx, p, logged, choice)


def policy_target(
    policy: Policy,
    log: BanditLog,
    *,
    draws: int = 1000,
    seed: int = 0,
    learn: bool = False,
    name: str | None = None,
    progress: Progress | None = None,
) -> TargetProbs:
    """pi(. | x_i) from the policy's own propensities (Monte Carlo, ``draws`` draws).

    Row i's draws come from a generator keyed by ``seed`` and the row's
    event id (``simulators.estimators.rowseed``): a row gets the same
    probabilities in any slice of the log.

    ``learn=True`` is the progressive mode (module docstring): the policy is
    updated in place with each row's rewarded shown arms after scoring it.
    The policy's arm indices must be the log's (``simulators.replay.policy_for_log``).
    """
    if policy.n_arms != log.n_arms:
        raise InvalidArgument(f"policy has {policy.n_arms} arms; the log has {log.n_arms}")
    if policy.contextual and policy.dim != log.dim:
        raise InvalidArgument(f"policy dim={policy.dim} but the log's contexts have {log.dim}")
    keys = row_keys(log.event_id, seed)
    gen = RowGenerators()
    ptr, idx = log.candidate_csr()
    p = np.empty(idx.shape[0])
    x = log.x
    has_r = ~np.isnan(log.reward) & (log.shown >= 0)
    step = max(1, log.n // 100)
    for i in range(log.n):
        lo, hi = ptr[i], ptr[i + 1]
        p[lo:hi] = policy.propensities(idx[lo:hi], x[i], draws, gen(keys[i]))
        if learn and has_r[i].any():
            slots = np.flatnonzero(has_r[i])
            policy.update_batch(
                log.shown[i, slots],
                np.repeat(x[i][None, :], slots.shape[0], 0),
                log.reward[i, slots],
            )
        if progress is not None and (i + 1) % step == 0:
            progress(i + 1, log.n)
    logged, choice = _logged_and_choice(log, ptr, idx, p, seed)
    label = name or (policy.kind + (" (progressive)" if learn else ""))
    return TargetProbs(label, ptr, idx, p, logged, choice)
