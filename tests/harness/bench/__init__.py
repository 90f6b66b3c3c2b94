"""Benchmarks of bandit-engine against its peers: ``python -m harness.bench``.

Sections (``--only``): ``decide`` (LinTSDisjoint.rank), ``mabwiser`` and ``vw``
(the same decision by MABWiser LinTS and Vowpal Wabbit ``--cb_explore_adf``),
``propensity``, ``updates`` (Sherman-Morrison updates per second), ``grpc``
(Recommend through the real server against a bare echo server on the same
gRPC stack, and the same Recommend in process), ``reuseport`` (several
server processes on one port), ``feedback`` (the learner against a bare
Kafka consumer), ``log`` (the embedded log's size and pruning), ``sim`` and
``replay`` (the simulators' own figures), ``learning`` (how well the
policies learn with their defaults, against peers, a sweep of their
settings and drifting worlds; the shared model's rank after an update).
Figures are medians; every ratio is against a peer measured in the same run.
The optional ``bench`` extra installs the peers (MABWiser, Vowpal Wabbit).

Modules: ``runner`` (command line, table, JSON), ``policy``, ``grpc_bench``
with ``servers``, ``load``, ``workload``, ``grpc_modes`` and
``grpc_figures``, ``inproc``, ``feedback``, ``log``, ``echo``, ``learning``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from harness.bench.runner import main as _main

    return _main(argv)


def __getattr__(name: str) -> Any:  # lazy: importing the package loads no peer
    if name in ("DESCRIPTIONS", "SECTIONS", "TARGETS"):
        from harness.bench import runner

        return getattr(runner, name)
    raise AttributeError(name)
