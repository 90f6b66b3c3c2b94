"""Figures of the gRPC section, from its measured windows.

Every figure is a median over the alternating rounds; ratios pair the real
server with an echo measured in the same rounds. Per-round ratios go to the
section's info, to show the spread.
"""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["pinned_figures", "throughput_figures"]

Windows = dict[str, list[dict[str, Any]]]


def _med(windows: Windows, target: str, key: str) -> float:
    return float(statistics.median(w[key] for w in windows[target]))


def pinned_figures(pinned: Windows, info: dict[str, Any]) -> dict[str, float]:
    """Figures of the pinned rounds: the peer is the faster sync echo."""
    echoes = [t for t in pinned if t.startswith("echo_sync")]
    best = max(echoes, key=lambda e: _med(pinned, e, "qps"))
    info["echo_peer_pinned"] = best
    out = {
        "echo_qps_pinned": _med(pinned, best, "qps"),
        "echo_server_cpu_us_pinned": _med(pinned, best, "server_cpu_us_per_call"),
        "recommend_qps_pinned": _med(pinned, "real", "qps"),
        "recommend_server_cpu_us_pinned": _med(pinned, "real", "server_cpu_us_per_call"),
    }
    out["recommend_vs_echo_pinned"] = out["recommend_qps_pinned"] / out["echo_qps_pinned"]
    if pinned.get("real_batch"):
        out["recommend_batch_decisions_per_s"] = _med(pinned, "real_batch", "decisions_per_s")
        out["recommend_batch_server_cpu_us_per_decision"] = float(
            statistics.median(w["server_cpu_us_per_call"] / 32 for w in pinned["real_batch"])
        )
    info["recommend_vs_echo_pinned_rounds"] = [
        r["qps"] / e["qps"] for r, e in zip(pinned["real"], pinned[best], strict=True)
    ]
    return out


def throughput_figures(
    thr: Windows,
    lat: dict[str, dict[str, Any]],
    echo_workers: tuple[int, ...],
    info: dict[str, Any],
) -> dict[str, float]:
    """Figures of the unpinned rounds: echoes, the real server (as shipped,
    and in Kafka mode and on grpc.aio when they ran)."""
    figures: dict[str, float] = {}
    syncs = [f"echo_sync{w}" for w in echo_workers]
    for e in syncs:
        figures[f"{e}_qps"] = _med(thr, e, "qps")
    # the sync echo's figures are those of its faster worker count
    best_sync = max(syncs, key=lambda e: _med(thr, e, "qps"))
    info["echo_sync_workers"] = int(best_sync.removeprefix("echo_sync"))
    for flav, e in (("sync", best_sync), ("aio", "echo_aio")):
        figures[f"echo_qps_{flav}"] = _med(thr, e, "qps")
        figures[f"echo_p50_ms_{flav}"] = lat[e]["p50_ms"]
        figures[f"echo_server_cpu_us_{flav}"] = _med(thr, e, "server_cpu_us_per_call")
    peer = best_sync if info.get("real_server_flavour", "sync") == "sync" else "echo_aio"
    info["echo_peer"] = peer
    figures["echo_qps"] = _med(thr, peer, "qps")
    figures["echo_p50_ms"] = lat[peer]["p50_ms"]
    figures["echo_p99_ms"] = lat[peer]["p99_ms"]
    figures["echo_server_cpu_us"] = _med(thr, peer, "server_cpu_us_per_call")
    figures["grpc_client_cpu_util_echo"] = _med(thr, peer, "client_cpu_util")
    if "real" in thr:
        figures["recommend_qps"] = _med(thr, "real", "qps")
        figures["recommend_vs_echo"] = figures["recommend_qps"] / figures["echo_qps"]
        info["recommend_vs_echo_rounds"] = [
            r["qps"] / e["qps"] for r, e in zip(thr["real"], thr[peer], strict=True)
        ]
        figures["recommend_p50_ms"] = lat["real"]["p50_ms"]
        figures["recommend_p99_ms"] = lat["real"]["p99_ms"]
        figures["recommend_server_cpu_us"] = _med(thr, "real", "server_cpu_us_per_call")
        figures["recommend_server_cpu_util"] = _med(thr, "real", "server_cpu_util")
        figures["grpc_client_cpu_util_recommend"] = _med(thr, "real", "client_cpu_util")
        figures["recommend_errors"] = float(sum(w["errors"] for w in thr["real"]))
    if "real_kafka" in thr:
        figures["recommend_qps_kafka"] = _med(thr, "real_kafka", "qps")
        figures["recommend_vs_echo_kafka"] = figures["recommend_qps_kafka"] / _med(
            thr, best_sync, "qps"
        )
        figures["recommend_server_cpu_us_kafka"] = _med(thr, "real_kafka", "server_cpu_us_per_call")
        figures["recommend_p50_ms_kafka"] = lat["real_kafka"]["p50_ms"]
    if "real_capped" in thr and "real" in thr:
        figures["recommend_qps_capped"] = _med(thr, "real_capped", "qps")
        figures["recommend_capped_vs_uncapped"] = (
            figures["recommend_qps_capped"] / figures["recommend_qps"]
        )
        figures["recommend_server_cpu_us_capped"] = _med(
            thr, "real_capped", "server_cpu_us_per_call"
        )
    if "real_aio" in thr:
        figures["recommend_qps_aio"] = _med(thr, "real_aio", "qps")
        figures["recommend_p50_ms_aio"] = lat["real_aio"]["p50_ms"]
        figures["recommend_server_cpu_us_aio"] = _med(thr, "real_aio", "server_cpu_us_per_call")
    return figures
