"""Per-slot propensities: how often each shown arm holds its slot over many
posterior draws, and how often the draws' top slots equal the shown prefix.

For a ranked answer ``shown`` (k arms), each draw of the posterior ranks the
candidates; ``slot[p]`` counts the draws whose arm at position ``p`` is
``shown[p]``, and ``prefix[p]`` the draws whose first ``p + 1`` arms are
``shown[0..p]``. ``slot[0] == prefix[0]`` is the first-slot count of the
shown top arm. The draws are those of the first-slot kernels
(``kernels.propensity``), from the same seeded tables, keeping each draw's
top ``k`` instead of its best: an arm whose largest possible draw lies below
the ``k``-th largest smallest possible draw can hold no slot of the top ``k``
and is skipped.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bandit_engine.kernels._jit import JIT, JIT_SCORE
from bandit_engine.kernels.propensity import TABLE_MAX_ABS, beta_draw_setup, gamma_draw

__all__ = [
    "beta_slot_counts",
    "slot_counts_gauss",
    "slot_propensities",
    "topk_match_counts",
]


#: Draws per chunk of ``slot_counts_gauss`` (its work arrays stay in L1).
_CHUNK = 128


@njit(**JIT)
def _kth_largest(values, k):  # type: ignore[no-untyped-def]
    return np.sort(values)[values.shape[0] - k]


@njit(**JIT)
def _insert(tops, ids, r, s, arm, k):  # type: ignore[no-untyped-def]
    """Insert score ``s`` of ``arm`` into draw ``r``'s top ``k``, ranked by
    score, then by arm (on a tie the earlier arm ranks first), when it
    belongs there."""
    q = k - 1
    if not (s > tops[r, q] or (s == tops[r, q] and arm < ids[r, q])):
        return
    while q > 0 and (s > tops[r, q - 1] or (s == tops[r, q - 1] and arm < ids[r, q - 1])):
        tops[r, q] = tops[r, q - 1]
        ids[r, q] = ids[r, q - 1]
        q -= 1
    tops[r, q] = s
    ids[r, q] = arm


@njit(**JIT)
def _match(ids, rows, shown, slot, prefix):  # type: ignore[no-untyped-def]
    """Add the slot and prefix matches of the first ``rows`` draws' top lists."""
    k = shown.shape[0]
    for r in range(rows):
        same = True
        for p in range(k):
            hit = ids[r, p] == shown[p]
            if hit:
                slot[p] += 1
            same = same and hit
            if same:
                prefix[p] += 1


@njit(**JIT_SCORE)
def slot_counts_gauss(mean, std, table, offset, draws, shown):  # type: ignore[no-untyped-def]
    """Slot and prefix counts of ``shown`` (positions into ``mean``, ranked)
    in ``draws`` draws of independent N(mean, std^2), normals read from the
    float32 ``table`` from ``offset`` as ``first_slot_counts_gauss`` reads
    them: with ``k`` = 1 its draws, and counts, are that kernel's.

    Shown arm ``p`` holds slot ``p`` of a draw when exactly ``p`` arms score
    above it (ties: the earlier arm ranks first). Per arm, per shown arm,
    the loop over a block of draws is a branch-free compare and add, which
    vectorises. An arm that cannot reach the top ``k`` (below the ``k``-th
    largest smallest possible score) cannot score above an arm that holds
    one of the first ``k`` slots, so it is skipped; a shown arm that cannot
    reach the top ``k`` holds its slot in no draw.
    """
    n = mean.shape[0]
    k = shown.shape[0]
    size = table.shape[0]
    slot = np.zeros(k, dtype=np.int64)
    prefix = np.zeros(k, dtype=np.int64)
    floor = _kth_largest(mean - TABLE_MAX_ABS * std, k)
    live = np.empty(n, dtype=np.int64)
    place = np.full(n, -1, dtype=np.int64)  # an arm's index among the live ones
    m = 0
    for i in range(n):
        if mean[i] + TABLE_MAX_ABS * std[i] >= floor:
            live[m] = i
            place[i] = m
            m += 1
    # slots from the first shown arm that cannot reach the top k on are never held
    kk = k
    for p in range(k):
        if place[shown[p]] < 0:
            kk = p
            break
    if kk == 0:
        return slot, prefix
    centre = -np.inf
    for j in range(m):
        if mean[live[j]] > centre:
            centre = mean[live[j]]
    # bounds of every draw of an arm (the table lies within +-TABLE_MAX_ABS)
    lo = mean - TABLE_MAX_ABS * std
    hi = mean + TABLE_MAX_ABS * std
    block = max(1, min(1024, size // (m + 1)))
    # draws in chunks whose work arrays stay in the L1 cache
    chunk = min(block, _CHUNK)
    v = np.empty((kk, chunk), dtype=np.float32)  # the shown arms' scores
    # arms scoring above each (float32: exact to 2^24, and as wide as v)
    above = np.empty((kk, chunk), dtype=np.float32)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    buf = np.empty(chunk, dtype=np.float32)
    pos = offset % size
    done = 0
    while done < draws:
        nb = min(block, draws - done)
        span = size - nb + 1
        for c0 in range(0, nb, chunk):
            nc = min(chunk, nb - c0)
            for p in range(kk):
                j = place[shown[p]]
                mu = np.float32(mean[shown[p]] - centre)
                sd = np.float32(std[shown[p]])
                base = (pos + j * nb) % span + c0
                for r in range(nc):
                    v[p, r] = mu + sd * table[base + r]
                    above[p, r] = zero
            for j in range(m):
                arm = live[j]
                mu = np.float32(mean[arm] - centre)
                sd = np.float32(std[arm])
                base = (pos + j * nb) % span + c0
                for r in range(nc):
                    buf[r] = mu + sd * table[base + r]
                for p in range(kk):
                    sp = shown[p]
                    if arm == sp or hi[arm] < lo[sp]:  # itself, or never above it
                        continue
                    ap = above[p]
                    if lo[arm] > hi[sp]:  # above it in every draw
                        for r in range(nc):
                            ap[r] += one
                        continue
                    vp = v[p]
                    if arm < sp:  # ties rank the earlier arm first
                        for r in range(nc):
                            ap[r] += one if buf[r] >= vp[r] else zero
                    else:
                        for r in range(nc):
                            ap[r] += one if buf[r] > vp[r] else zero
            for r in range(nc):
                same = True
                for p in range(kk):
                    hit = above[p, r] == np.float32(p)
                    if hit:
                        slot[p] += 1
                    same = same and hit
                    if same:
                        prefix[p] += 1
        pos = (pos + m * nb) % size
        done += nb
    return slot, prefix


@njit(**JIT)
def beta_slot_counts(alpha, beta, normals, uniforms, off_n, off_u, draws, zmin, zmax, umin, shown):  # type: ignore[no-untyped-def]
    """Slot and prefix counts of ``shown`` in ``draws`` joint draws of
    independent Beta(alpha[i], beta[i]), drawn as ``beta_first_counts`` draws
    them (with ``k`` = 1, its draws and counts)."""
    n = alpha.shape[0]
    k = shown.shape[0]
    da, ca, ba, db, cb, bb, s_lo, s_hi = beta_draw_setup(alpha, beta, zmin, zmax, umin)
    floor = max(0.0, _kth_largest(s_lo, k))
    tops = np.full((draws, k), -1.0)
    ids = np.full((draws, k), n, dtype=np.int64)
    pos_n = off_n % normals.shape[0]
    pos_u = off_u % uniforms.shape[0]
    for i in range(n):
        if s_hi[i] < floor:
            continue
        d1, c1, b1, d2, c2, b2 = da[i], ca[i], ba[i], db[i], cb[i], bb[i]
        for r in range(draws):
            x, pos_n, pos_u = gamma_draw(d1, c1, b1, normals, uniforms, pos_n, pos_u)
            y, pos_n, pos_u = gamma_draw(d2, c2, b2, normals, uniforms, pos_n, pos_u)
            s = x / (x + y) if x + y > 0.0 else 0.5
            _insert(tops, ids, r, s, i, k)
    slot = np.zeros(k, dtype=np.int64)
    prefix = np.zeros(k, dtype=np.int64)
    _match(ids, draws, shown, slot, prefix)
    return slot, prefix


@njit(**JIT)
def topk_match_counts(scores, shown, slot, prefix):  # type: ignore[no-untyped-def]
    """Add the slot and prefix counts of ``shown`` over the rows of a
    (draws, arms) score matrix (ties: the earlier arm ranks first)."""
    m, n = scores.shape
    k = shown.shape[0]
    tops = np.empty((m, k))
    ids = np.empty((m, k), dtype=np.int64)
    for r in range(m):
        for q in range(k):
            tops[r, q] = -np.inf
            ids[r, q] = n
        for i in range(n):
            _insert(tops, ids, r, scores[r, i], i, k)
    _match(ids, m, shown, slot, prefix)


@njit(**JIT)
def slot_propensities(slots, order, slot_counts, prefix_counts, draws):  # type: ignore[no-untyped-def]
    """The ranked arms' slots, per-slot and prefix propensities. The served
    draw is one more draw of the same posterior, and it ranks the shown arms
    as shown: (count + 1) / (draws + 1)."""
    k = order.shape[0]
    shown = np.empty(k, dtype=np.int64)
    props = np.empty(k)
    prefix = np.empty(k)
    for j in range(k):
        shown[j] = slots[order[j]]
        props[j] = (float(slot_counts[j]) + 1.0) / (draws + 1)
        prefix[j] = (float(prefix_counts[j]) + 1.0) / (draws + 1)
    return shown, props, prefix
