"""The pseudo-inverse (PI) estimator of Swaminathan et al. 2017.

"Off-policy evaluation for slate recommendation" (NeurIPS 2017,
arXiv:1605.04812). Assumption: the expected slate reward is *additive* over
(slot, item) pairs given the context,
``E[R | x, s] = sum_k phi_x(k, s_k)`` for some unknown ``phi_x``
(here ``R = sum_k r_k``, so it holds when each slot's expected reward depends
only on the item at it: the "independent" structure). Then
``V(pi) = E_x q_pi(x)' phi_x`` with ``q_pi(x) = E_pi[1_s | x]`` the target's
slot x item marginals (length K*m), and phi can be estimated from one logged
slate through the logging policy's second moments
``Gamma_mu(x) = E_mu[1_s 1_s' | x]`` (a (K*m) x (K*m) matrix of pair
probabilities P(s_j = a, s_k = b | x)):

    V_PI = (1/n) sum_i R_i * q_pi(x_i)' Gamma_mu(x_i)^+ 1_{s_i}

``Gamma^+`` is the Moore-Penrose pseudo-inverse: Gamma is singular (each
slot's indicators sum to one). The estimator is unbiased under additivity when
``q_pi(x)`` lies in the range of ``Gamma_mu(x)``, which holds when the target
shows only slates the logging policy can show; ``slate_pi`` checks it.

When the logging policy fills its slots independently (``mu(s|x) = prod_k
mu_k(s_k|x)``, the paper's example 4: items may repeat) the coefficient
reduces to ``sum_k pi_k(s_k|x) / mu_k(s_k|x) - (K - 1)``, which needs only the
marginals: ``slate_pi_independent``. A ranking without repetition (Plackett-
Luce, top-K of sampled scores, uniform over orderings) does *not* have
independent slots; ``slate_pi_independent`` refuses such a log when the joint
slate probability differs from the product of the marginals.

Also in Open Bandit Pipeline's vocabulary: ``pscore_item_position`` are the
marginals; OBP ships no PI estimator for slates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from bandit_engine import InvalidArgument
from simulators.slate.estimators import (
    FloatArray,
    SlateEstimate,
    check_probabilities,
    check_rewards,
    ratio_estimate,
)

__all__ = [
    "pair_marginals",
    "pi_coefficients",
    "slate_indicators",
    "slate_pi",
    "slate_pi_independent",
    "slot_item_marginals",
]

IntArray = npt.NDArray[np.int64]

#: singular values below this share of the largest are treated as zero
PINV_RCOND = 1e-10


def _slates(value: Any, n_items: int | None = None) -> IntArray:
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidArgument(f"slates has shape {arr.shape}; expected (rows, slots)")
    if not np.issubdtype(arr.dtype, np.integer):
        raise InvalidArgument(f"slates must hold item indices (integers), not {arr.dtype}")
    out = arr.astype(np.int64)
    hi = n_items if n_items is not None else int(out.max()) + 1
    bad = (out < 0) | (out >= hi)
    if bad.any():
        i, k = (int(v) for v in np.argwhere(bad)[0])
        raise InvalidArgument(f"slates[{i}, {k}] = {out[i, k]} is not an item index in 0..{hi - 1}")
    return out


def slate_indicators(slates: Any, n_items: int) -> FloatArray:
    """(S, K*m) 0/1 matrix: row s has a one at ``k * m + slates[s, k]`` for each slot k."""
    s = _slates(slates, n_items)
    n, k = s.shape
    out = np.zeros((n, k * n_items))
    out[np.arange(n)[:, None], np.arange(k) * n_items + s] = 1.0
    return out


def slot_item_marginals(slates: Any, probs: Any, n_items: int) -> FloatArray:
    """(C, K, m) marginals P(item a at slot k | context c) of a policy given
    as probabilities ``probs`` (C, S) over the enumerated ``slates`` (S, K)."""
    phi = slate_indicators(slates, n_items)
    p = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    k = phi.shape[1] // n_items
    out: FloatArray = (p @ phi).reshape(p.shape[0], k, n_items)
    return out


def pair_marginals(slates: Any, probs: Any, n_items: int) -> FloatArray:
    """(C, K*m, K*m) matrices Gamma(c) = sum_s probs[c, s] 1_s 1_s': entry
    (j*m + a, k*m + b) is P(s_j = a, s_k = b | c); the diagonal holds the marginals."""
    phi = slate_indicators(slates, n_items)
    p = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    out: FloatArray = np.einsum("cs,si,sj->cij", p, phi, phi)
    return out


def pi_coefficients(
    slates: Any, target_slot_item: Any, logging_pairs: Any, context: Any = None
) -> FloatArray:
    """Per-row PI weights ``c_i = q_pi(x_i)' Gamma_mu(x_i)^+ 1_{s_i}``.

    ``slates`` (n, K) item indices; ``target_slot_item`` (C, K, m) the
    target's slot x item marginals; ``logging_pairs`` (C, K*m, K*m) the
    logging policy's Gamma; ``context`` (n,) indices into C (``None``: one
    matrix per row, C = n). One pseudo-inverse per context.
    """
    q = check_probabilities("target_slot_item", target_slot_item, 3, logging=False)
    n_ctx, k, m = q.shape
    s = _slates(slates, m)
    n = s.shape[0]
    if s.shape[1] != k:
        raise InvalidArgument(f"slates have {s.shape[1]} slots but target_slot_item has {k}")
    sums = q.sum(axis=2)
    bad = np.abs(sums - 1.0) > 1e-6
    if bad.any():
        c, j = (int(v) for v in np.argwhere(bad)[0])
        raise InvalidArgument(
            f"target_slot_item[{c}, {j}] sums to {float(sums[c, j])!r}; each slot shows one "
            f"item (1.0)"
        )
    g = check_probabilities(
        "logging_pairs", logging_pairs, 3, logging=False, shape=(n_ctx, k * m, k * m)
    )
    asym = np.abs(g - g.transpose(0, 2, 1)) > 1e-9
    if asym.any():
        c, a, b = (int(v) for v in np.argwhere(asym)[0])
        raise InvalidArgument(f"logging_pairs[{c}] is not symmetric at ({a}, {b})")
    if context is None:
        if n_ctx != n:
            raise InvalidArgument(
                f"without context, target_slot_item and logging_pairs need one entry per row "
                f"({n}); they have {n_ctx}"
            )
        ctx = np.arange(n)
    else:
        ctx = np.asarray(context)
        if ctx.shape != (n,) or not np.issubdtype(ctx.dtype, np.integer):
            raise InvalidArgument(f"context has shape {ctx.shape}; expected ({n},) integers")
        bad_c = (ctx < 0) | (ctx >= n_ctx)
        if bad_c.any():
            i = int(np.flatnonzero(bad_c)[0])
            raise InvalidArgument(f"context[{i}] = {ctx[i]} is not in 0..{n_ctx - 1}")
    cols = np.arange(k) * m + s  # (n, K) positions of the logged (slot, item) pairs
    diag = np.diagonal(g, axis1=1, axis2=2)  # (C, K*m) logging marginals
    zero = diag[ctx[:, None], cols] <= 0.0
    if zero.any():
        i, j = (int(v) for v in np.argwhere(zero)[0])
        raise InvalidArgument(
            f"row {i}: the logging policy's marginal of item {s[i, j]} at slot {j} is 0 in "
            f"logging_pairs, but the row shows it there"
        )
    gvec = np.empty((n_ctx, k * m))
    for c in np.unique(ctx):
        pinv = np.linalg.pinv(g[c], rcond=PINV_RCOND, hermitian=True)
        qc = q[c].reshape(-1)
        gvec[c] = pinv @ qc
        resid = float(np.abs(g[c] @ gvec[c] - qc).max())
        if resid > 1e-7:
            raise InvalidArgument(
                f"context {int(c)}: the target's marginals are not in the range of the logging "
                f"policy's Gamma (residual {resid:.2g}); the target shows slates the logging "
                f"policy cannot, and PI would be biased"
            )
    out: FloatArray = gvec[ctx[:, None], cols].sum(axis=1)
    return out


def _slate_reward(slot_rewards: Any) -> FloatArray:
    r = np.asarray(slot_rewards)
    nd = 1 if r.ndim == 1 else 2
    arr = check_rewards("slot_rewards", r, nd)
    return arr if nd == 1 else arr.sum(axis=1)


def slate_pi(
    slot_rewards: Any,
    slates: Any,
    target_slot_item: Any,
    logging_pairs: Any,
    *,
    context: Any = None,
    alpha: float = 0.05,
    interval: str = "normal",
    n_boot: int = 1000,
    seed: int = 0,
) -> SlateEstimate:
    """The general pseudo-inverse estimator: mean of ``c_i * R_i``.

    ``slot_rewards`` (n, K) (summed into the slate reward R_i) or (n,) slate
    rewards; the rest as in ``pi_coefficients``. Unbiased when the expected
    slate reward is additive over (slot, item) given the context.
    """
    r = _slate_reward(slot_rewards)
    c = pi_coefficients(slates, target_slot_item, logging_pairs, context)
    if c.shape[0] != r.shape[0]:
        raise InvalidArgument(f"slot_rewards has {r.shape[0]} rows; slates have {c.shape[0]}")
    return ratio_estimate(
        "pi", c * r, None, alpha=alpha, interval=interval, n_boot=n_boot, seed=seed
    )


def slate_pi_independent(
    slot_rewards: Any,
    target_marginal: Any,
    logging_marginal: Any,
    *,
    logging_joint: Any,
    rtol: float = 1e-6,
    alpha: float = 0.05,
    interval: str = "normal",
    n_boot: int = 1000,
    seed: int = 0,
) -> SlateEstimate:
    """PI for a logging policy whose slots are independent: mean of
    ``(sum_k pi_k(s_ik|x_i) / mu_k(s_ik|x_i) - (K - 1)) * R_i``.

    ``logging_joint`` (n,) is the logged slates' joint probability; it must
    equal the product of ``logging_marginal`` over the slots (relative
    tolerance ``rtol``), else the slots are not independent and this form
    does not apply (``slate_pi`` with the logging policy's Gamma does).
    """
    r2 = check_rewards("slot_rewards", slot_rewards, 2)
    t = check_probabilities("target_marginal", target_marginal, 2, logging=False, shape=r2.shape)
    m = check_probabilities("logging_marginal", logging_marginal, 2, logging=True, shape=r2.shape)
    joint = check_probabilities(
        "logging_joint", logging_joint, 1, logging=True, shape=(r2.shape[0],)
    )
    prod = m.prod(axis=1)
    off = np.abs(joint - prod) > rtol * np.maximum(joint, prod)
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise InvalidArgument(
            f"logging_joint[{i}] = {float(joint[i])!r} but the product of logging_marginal[{i}] is "
            f"{float(prod[i])!r}: the logging policy's slots are not independent (e.g. a ranking "
            f"without repetition), so this form of PI does not apply; use slate_pi with the "
            f"logging policy's pair marginals (Gamma)"
        )
    k = r2.shape[1]
    c = (t / m).sum(axis=1) - (k - 1)
    return ratio_estimate(
        "pi", c * r2.sum(axis=1), None, alpha=alpha, interval=interval, n_boot=n_boot, seed=seed
    )
