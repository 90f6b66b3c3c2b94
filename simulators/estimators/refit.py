"""DM and DR on bootstrap resamples with the reward model refitted on each.

A resample is a vector of row counts c (how often each row was drawn). The
ridge model of each fold is refitted on the other folds' rows weighted by c,
which is exactly the fit on the resampled rows; rows keep their fold, so no
copy of a row is predicted by a model that saw one. DM and DR on the resample
are then ``sum_i c_i term_i / n``.

Everything that does not depend on c is planned once per fold (rows sorted
by arm, each row's x x', the target's candidates), so a refit costs a few
vectorised passes and one batched solve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bandit_engine.policies import FloatArray, IntArray

if TYPE_CHECKING:
    from simulators.estimators.reward_model import ModelRefit

__all__ = ["refit_bootstrap"]

#: per-row outer products are kept when they take at most this many floats
OUTER_BUDGET = 1 << 25
#: score block (rows x arms) when predicting the target's term
SCORE_BLOCK = 1 << 22
#: resamples are refitted in batches of about this many floats (rows x dim each)
BATCH_BUDGET = 1 << 23


@dataclass(frozen=True, eq=False)
class _FoldPlan:
    order: IntArray  # training rows (original indices), sorted by arm
    starts: IntArray  # offsets in ``order`` where each non-empty arm group starts
    ends: IntArray  # and ends
    group_arm: IntArray  # the arm of each group
    xs: FloatArray  # x[order]
    rs: FloatArray  # r[order]
    outer: FloatArray | None  # (len(order), d * d) x x' of each training row
    test: IntArray  # rows predicted by this fold's model
    x_test: FloatArray
    a_test: IntArray
    blocks: tuple[tuple[int, int, IntArray, IntArray, FloatArray], ...]  # target CSR by rows
    z: FloatArray | None  # (test rows, n_arms * d): pi(a|x_i) x_i, when it fits the budget
    psum: FloatArray  # (test rows,) sum_a pi(a|x_i)


def _plans(m: ModelRefit) -> list[_FoldPlan]:
    d = m.x.shape[1]
    out = []
    for f in range(m.folds):
        is_test = m.fold == f
        train = np.flatnonzero(~is_test) if m.folds > 1 else np.flatnonzero(is_test)
        order = train[np.argsort(m.arms[train], kind="stable")]
        bounds = np.searchsorted(m.arms[order], np.arange(m.n_arms + 1))
        nonempty = np.flatnonzero(np.diff(bounds) > 0)
        xs = m.x[order]
        outer = None
        if order.shape[0] * d * d <= OUTER_BUDGET:
            outer = (xs[:, :, None] * xs[:, None, :]).reshape(order.shape[0], d * d)
        test = np.flatnonzero(is_test)
        sizes = np.diff(m.ptr)[test]
        step = max(1, SCORE_BLOCK // max(1, m.n_arms))
        blocks = []
        for lo in range(0, test.shape[0], step):
            rows = test[lo : lo + step]
            sz = sizes[lo : lo + step]
            local = np.repeat(np.arange(rows.shape[0]), sz)
            first = np.repeat(m.ptr[rows], sz)
            offset = np.arange(local.shape[0]) - np.repeat(np.cumsum(sz) - sz, sz)
            take = first + offset
            blocks.append((lo, lo + rows.shape[0], local, m.idx[take], m.p[take]))
        z = None
        psum = np.zeros(test.shape[0])
        for lo, hi, local, _idx, p in blocks:
            psum[lo:hi] = np.bincount(local, weights=p, minlength=hi - lo)
        if test.shape[0] * m.n_arms * d <= OUTER_BUDGET:
            dense = np.zeros((test.shape[0], m.n_arms))
            for lo, _hi, local, idx, p in blocks:
                np.add.at(dense, (lo + local, idx), p)
            z = (dense[:, :, None] * m.x[test][:, None, :]).reshape(test.shape[0], -1)
        out.append(
            _FoldPlan(
                order,
                bounds[nonempty],
                bounds[nonempty + 1],
                nonempty.astype(np.int64),
                xs,
                m.r[order],
                outer,
                test,
                m.x[test],
                m.arms[test],
                tuple(blocks),
                z,
                psum,
            )
        )
    return out


def _fit(plan: _FoldPlan, cs: FloatArray, lam: float, n_arms: int) -> tuple[FloatArray, FloatArray]:
    """(mean (B,), theta (B, n_arms, d)): the ridge model on the plan's training
    rows, once per resample; ``cs`` (B, len(order)) are the rows' counts."""
    reps = cs.shape[0]
    d = plan.xs.shape[1]
    theta = np.zeros((reps, n_arms, d))
    total = cs.sum(axis=1)
    mean = np.divide(cs @ plan.rs, total, out=np.zeros(reps), where=total > 0)
    n_groups = plan.starts.shape[0]
    if n_groups == 0:
        return mean, theta
    gram = np.empty((reps, n_groups, d, d))
    rhs = np.empty((reps, n_groups, d))
    for g, (s, e) in enumerate(zip(plan.starts, plan.ends, strict=True)):
        cg, xa = cs[:, s:e], plan.xs[s:e]
        if plan.outer is not None:
            gram[:, g] = (cg @ plan.outer[s:e]).reshape(reps, d, d)
        else:
            for b in range(reps):
                gram[b, g] = xa.T @ (cg[b, :, None] * xa)
        rhs[:, g] = (cg * plan.rs[s:e]) @ xa - mean[:, None] * (cg @ xa)
    gram += lam * np.eye(d)
    theta[:, plan.group_arm] = np.linalg.solve(gram, rhs[..., None])[..., 0]
    return mean, theta


def _predict(plan: _FoldPlan, mean: FloatArray, theta: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(q(x_i, a_i), sum_a pi(a|x_i) q(x_i, a)), each (B, test rows)."""
    reps = theta.shape[0]
    q_logged = mean[:, None] + np.einsum("id,bid->bi", plan.x_test, theta[:, plan.a_test])
    if plan.z is not None:
        q_target: FloatArray = theta.reshape(reps, -1) @ plan.z.T + mean[:, None] * plan.psum
        return q_logged, q_target
    q_target = np.empty((reps, plan.test.shape[0]))
    for lo, hi, local, idx, p in plan.blocks:
        for b in range(reps):
            scores = plan.x_test[lo:hi] @ theta[b].T
            vals = p * (mean[b] + scores[local, idx])
            q_target[b, lo:hi] = np.bincount(local, weights=vals, minlength=hi - lo)
    return q_logged, q_target


def refit_bootstrap(
    m: ModelRefit, weights: FloatArray, *, n_boot: int, seed: int, counts: FloatArray | None = None
) -> tuple[FloatArray, FloatArray]:
    """(dm, dr), each (n_boot,), on ``n_boot`` seeded resamples (``counts``
    (n_boot, n) given: those resamples instead); see the module docstring."""
    n = m.n
    reps = n_boot if counts is None else int(counts.shape[0])
    dm = np.full(reps, np.nan)
    dr = np.full(reps, np.nan)
    if n == 0 or reps == 0:
        return dm, dr
    plans = _plans(m)
    rng = np.random.default_rng(seed)
    d = m.x.shape[1]
    chunk = max(1, min(64, BATCH_BUDGET // (n * max(d, 1))))
    for b0 in range(0, reps, chunk):
        nb = min(chunk, reps - b0)
        if counts is None:
            draws = rng.integers(0, n, size=(nb, n))
            c = np.zeros((nb, n))
            np.add.at(c, (np.repeat(np.arange(nb), n), draws.reshape(-1)), 1.0)
        else:
            c = np.asarray(counts[b0 : b0 + nb], dtype=np.float64)
        q_logged = np.empty((nb, n))
        q_target = np.empty((nb, n))
        for plan in plans:
            mean, theta = _fit(plan, c[:, plan.order], m.lam, m.n_arms)
            q_logged[:, plan.test], q_target[:, plan.test] = _predict(plan, mean, theta)
        total = c.sum(axis=1)
        dm[b0 : b0 + nb] = (c * q_target).sum(axis=1) / total
        dr[b0 : b0 + nb] = (c * (q_target + weights * (m.r - q_logged))).sum(axis=1) / total
    return dm, dr
