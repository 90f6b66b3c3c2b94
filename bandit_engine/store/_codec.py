"""Encoding of arrays and state dicts for storage (shared by the stores)."""

from __future__ import annotations

import io

import numpy as np


def encode_vector(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x, dtype="<f8").tobytes()


def decode_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f8").copy()


def encode_state(state: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **state)  # type: ignore[arg-type]  # uncompressed: snapshots must be fast
    return buf.getvalue()


def decode_state(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
