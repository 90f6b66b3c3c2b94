"""Randomness keyed by row: every draw of the estimators depends on the seed
and the row's event id only, never on which chunk, file or executor the row
is read in.

``row_keys(event_ids, seed)`` hashes ``"<seed>:<event id>"`` (BLAKE2b, 40
bytes) into five 64-bit words per row:

- words 0-1: the 128-bit state of the PCG64 generator the policy's
  propensity draws use for that row (``row_generator``);
- word 2: the uniform that draws the target's one action (replay's match);
- word 3: the key of the row's Poisson(1) bootstrap weights, one per
  resample (``poisson_weights``: SplitMix64 of key + resample);
- word 4: the row's cross-fitting fold of the reward model (``% folds``).

So the in-memory path and the streaming and Spark paths see the same
numbers on the same log, whatever the chunking. Rows with equal event ids
get equal draws.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = [
    "KEY_WORDS",
    "choice_uniforms",
    "folds_of",
    "poisson_weights",
    "row_generator",
    "row_keys",
]

KEY_WORDS = 5
_MASK64 = (1 << 64) - 1

U64 = npt.NDArray[np.uint64]


def row_keys(event_ids: Sequence[str], seed: int) -> U64:
    """(n, 5) uint64: the rows' keys (module docstring)."""
    out = np.empty((len(event_ids), KEY_WORDS), dtype=np.uint64)
    buf = bytearray()
    prefix = f"{int(seed)}:"
    for e in event_ids:
        buf += hashlib.blake2b((prefix + e).encode(), digest_size=8 * KEY_WORDS).digest()
    if event_ids:
        out[:] = np.frombuffer(bytes(buf), dtype="<u8").reshape(-1, KEY_WORDS)
    return out


class RowGenerators:
    """A Generator per row, from the row's key: one PCG64 whose state is set
    per row, wrapped in a fresh Generator each time (a policy that buffers
    draws per Generator object then starts afresh on every row)."""

    def __init__(self) -> None:
        self._bg = np.random.PCG64(0)
        self._state = self._bg.state

    def __call__(self, key: npt.NDArray[np.uint64]) -> np.random.Generator:
        st = self._state
        st["state"]["state"] = (int(key[0]) << 64) | int(key[1])
        st["has_uint32"] = 0
        st["uinteger"] = 0
        self._bg.state = st
        return np.random.Generator(self._bg)


def row_generator(key: npt.NDArray[np.uint64]) -> np.random.Generator:
    """A fresh Generator for one row's key (``RowGenerators`` reuses one)."""
    return RowGenerators()(key)


def choice_uniforms(keys: U64) -> npt.NDArray[np.float64]:
    """Uniforms in [0, 1), one per row: 53 bits of key word 2."""
    return (keys[:, 2] >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def folds_of(keys: U64, folds: int) -> npt.NDArray[np.int64]:
    if folds <= 1:
        return np.zeros(keys.shape[0], dtype=np.int64)
    return (keys[:, 4] % np.uint64(folds)).astype(np.int64)


@njit(cache=True, nogil=True)
def _splitmix(z):  # type: ignore[no-untyped-def]
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


#: P(Poisson(1) <= k), k = 0..19 (the rest of the mass is below 1e-18)
_CDF = np.cumsum([np.exp(-1.0) / float(np.prod(np.arange(1, k + 1))) for k in range(20)])


@njit(cache=True, nogil=True)
def _poisson_sums(keys, num_t, den_t, cdf, out_num, out_den):  # type: ignore[no-untyped-def]
    n, e_count = num_t.shape
    reps = out_num.shape[1]
    scale = 1.0 / 9007199254740992.0
    for i in range(n):
        k = keys[i]
        for b in range(reps):
            u = float(_splitmix(k + np.uint64(b)) >> np.uint64(11)) * scale
            c = 0
            while c < 19 and u >= cdf[c]:
                c += 1
            if c == 0:
                continue
            for e in range(e_count):
                out_num[e, b] += c * num_t[i, e]
                out_den[e, b] += c * den_t[i, e]


def poisson_weights(keys: U64, reps: int) -> npt.NDArray[np.float64]:
    """(n, reps) Poisson(1) bootstrap weights of the rows (tests, documentation)."""
    n = keys.shape[0]
    num = np.eye(n) if n else np.zeros((0, 0))
    out = np.zeros((n, reps))
    _poisson_sums(np.ascontiguousarray(keys[:, 3]), num, num, _CDF, out, out.copy())
    return out


def add_poisson_sums(
    keys: U64,
    num: npt.NDArray[np.float64],
    den: npt.NDArray[np.float64],
    out_num: npt.NDArray[np.float64],
    out_den: npt.NDArray[np.float64],
) -> None:
    """out_*[e, b] += sum_i c_ib * (num|den)[e, i], c_ib the rows' Poisson(1)
    weights of resample b; num, den: (E, n) per-row terms."""
    if keys.shape[0] == 0 or out_num.shape[1] == 0:
        return
    _poisson_sums(
        np.ascontiguousarray(keys[:, 3]),
        np.ascontiguousarray(num.T),
        np.ascontiguousarray(den.T),
        _CDF,
        out_num,
        out_den,
    )
