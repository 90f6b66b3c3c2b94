"""Rows of the embedded mode's open-decision journal (``core.journal``)."""

from __future__ import annotations

from numba import njit

from bandit_engine.kernels._jit import JIT_GIL

__all__ = ["JOURNAL_META", "journal_put"]

#: Leading columns of a journal row: created, deadline, model version,
#: shown count, rewarded count, closed.
JOURNAL_META = 6


@njit(**JIT_GIL)
def journal_put(rows, idx, width, x, shown, scores, props, prefix, created, deadline, version):  # type: ignore[no-untyped-def]
    """Fill row ``idx``: created, deadline, version, shown count, no reward,
    open; the context; and, when ``k`` <= ``width``, the shown slots, scores,
    propensities, prefix propensities and cleared reward flags (a wider
    decision keeps those beside the block, in ``Journal.side``)."""
    r = rows[idx]
    k = shown.shape[0]
    d = x.shape[0]
    r[0] = created
    r[1] = deadline
    r[2] = version
    r[3] = k
    r[4] = 0.0
    r[5] = 0.0
    for i in range(d):
        r[JOURNAL_META + i] = x[i]
    if k <= width:
        so = JOURNAL_META + d
        for j in range(k):
            r[so + j] = shown[j]
            r[so + width + j] = scores[j]
            r[so + 2 * width + j] = props[j]
            r[so + 3 * width + j] = prefix[j]
            r[so + 4 * width + j] = 0.0
