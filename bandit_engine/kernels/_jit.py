"""Numba compile options shared by the kernels."""

from __future__ import annotations

from typing import Any

JIT: dict[str, Any] = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}
# Scoring kernels may reassociate sums (so LLVM can vectorise the d^2 dot
# products); they never feed the statistics. NaN/inf semantics stay strict.
JIT_SCORE = {**JIT, "fastmath": {"reassoc", "contract", "nsz", "arcp"}}
# The same, holding the GIL: for kernels of a few microseconds on the serving
# path (see ``bandit_engine.kernels``). Called from another kernel, a kernel runs
# under its caller's GIL choice: these flags only matter at the Python entry.
JIT_GIL = {**JIT, "nogil": False}
JIT_SCORE_GIL = {**JIT_SCORE, "nogil": False}
