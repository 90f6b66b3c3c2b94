"""Command line of the benchmark suite: run sections, print a table, write JSON."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from harness.bench._util import machine_meta, progress

__all__ = ["DESCRIPTIONS", "SECTIONS", "TARGETS", "main"]

SECTIONS = (
    "decide",
    "propensity",
    "updates",
    "mabwiser",
    "vw",
    "grpc",
    "reuseport",
    "feedback",
    "log",
    "sim",
    "replay",
    "learning",
    "ranking",
    "slate",
    "ope",
    "shadow",
    "learners",
)
#: sections in their own modules (``harness.bench.<name>``): each has
#: ``TARGETS``, ``DESCRIPTIONS`` and ``run(quick) -> (figures, info)``
PLUGIN_SECTIONS = ("ranking", "slate", "ope", "shadow", "learners")

#: key -> (comparison, threshold)
TARGETS: dict[str, tuple[str, float]] = {
    "decide_vs_mabwiser": (">=", 200.0),
    "decide_vs_vw": (">=", 20.0),
    "updates_per_s": (">=", 300_000.0),
    "recommend_vs_echo": (">=", 0.55),
    "slot_propensity_vs_first_slot": ("<=", 3.0),
    "recommend_batch_vs_decide": (">=", 0.6),
    "feedback_rewards_per_s": (">=", 50_000.0),
    "feedback_vs_raw_consume": (">=", 0.5),
    "reward_to_posterior_p99_ms": ("<=", 250.0),
    "snapshot_ms": ("<=", 20.0),
    "sim_beta_ts_rounds_per_s": (">=", 1_000_000.0),
    "replay_events_per_s": (">=", 200_000.0),
    "replay_vs_mabwiser": (">=", 450.0),
}
try:  # the learning section declares its own targets and descriptions (below)
    from harness.bench.learning import TARGETS as _LEARNING_TARGETS

    TARGETS.update(_LEARNING_TARGETS)
except ImportError:  # pragma: no cover - ships with the harness
    pass


def _plugin(name: str) -> Any:
    import importlib

    return importlib.import_module(f"harness.bench.{name}")


for _name in PLUGIN_SECTIONS:
    try:
        TARGETS.update(_plugin(_name).TARGETS)
    except ImportError:  # pragma: no cover - the module is being written
        pass

SETTING = "K=100 arms, d=32 features, top-10 ranking"

DESCRIPTIONS: dict[str, str] = {
    "decide_us": f"median us per LinTSDisjoint.rank(arms, x, 10, rng) call on a trained policy, "
    f"one context per call, {SETTING} (batches of 1000 calls, median of repeats)",
    "decide_scores_us": "median us per LinTSDisjoint.sample_scores(arms, x, rng): the sampled "
    "score of every arm without the ranking (the O(K d^2) part of decide_us)",
    "decide_scores_share": "decide_scores_us / median rank() us measured alongside it",
    "mabwiser_decide_us": "median us per MABWiser MAB(arms, LinTS(alpha=0.25, l2_lambda=1)) "
    ".predict(one context), trained on the same events, same contexts (top-1 only)",
    "mabwiser_topk_us": "median us per MABWiser predict_expectations(one context) + top-10 "
    "(parity with the engine's top-k ranking)",
    "decide_vs_mabwiser": "mabwiser_decide_us / decide_us (same process, same run, batches "
    "interleaved round by round; paired per-round ratios in meta.decide_paired_ratios)",
    "vw_decide_us": "median us per vw.predict(one multi-line ADF example: shared |s 32 features "
    "+ 100 actions |a arm-id, -q sa), VW --cb_explore_adf --squarecb; text built up front, "
    "parsing included",
    "vw_learn_events": "events VW learned before predicting (its predict cost does not depend "
    "on it)",
    "decide_vs_vw": "vw_decide_us / decide_us (same process, same run, interleaved rounds)",
    "propensity_us": "median us per policy.propensities(arms, x, 1000, rng) (1000 Monte Carlo "
    "draws of the first slot), same setting",
    "slot_propensity_us": "median us per policy.slot_counts(arms, x, order, 1000, rng): per-slot "
    "and prefix counts of a served top-10 from 1000 posterior draws, same setting as "
    "propensity_us",
    "slot_propensity_vs_first_slot": "slot_propensity_us / propensity_us (same run)",
    "propensity_beta_us": "propensity_us for Beta-Bernoulli TS (context ignored), trained on the "
    "same events",
    "propensity_shared_us": "propensity_us for shared linear TS (default joint_dim, 256)",
    "decide_with_propensity_us": "median us per policy.decide(arms, x, 10, 1000, rng): ranking "
    "and first-slot propensities in one call, as the server does",
    "updates_per_s": "events per second through policy.update_batch (each event one "
    "Sherman-Morrison update, one core), d=32, median of repeats",
    "update_batch_events": "events per update_batch call in updates_per_s",
    "update_call_us": "median us per policy.update(arm, x, r) Python call (one event)",
    "echo_qps_sync": "Recommend calls/s against the bare echo server, grpc sync server, "
    "8 client threads in another process; the faster of its runs with 2 and 16 worker threads",
    "echo_sync2_qps": "sync echo server with 2 worker threads, calls/s",
    "echo_sync16_qps": "sync echo server with 16 worker threads, calls/s",
    "echo_qps_aio": "Recommend calls/s against the bare echo server, grpc.aio server, same client",
    "echo_p50_ms_sync": "echo (sync server) p50 latency, 1 sequential client",
    "echo_p50_ms_aio": "echo (aio server) p50 latency, 1 sequential client",
    "echo_server_cpu_us_sync": "server CPU us per call, echo sync (from /proc, warmup included)",
    "echo_server_cpu_us_aio": "server CPU us per call, echo aio",
    "echo_qps": "echo calls/s on the same server flavour as the real server (the peer of "
    "recommend_qps)",
    "echo_p50_ms": "echo p50 latency (ms), 1 sequential client, same flavour as the real server",
    "echo_p99_ms": "echo p99 latency (ms), 1 sequential client",
    "echo_server_cpu_us": "server CPU us per echo call (peer flavour)",
    "grpc_client_cpu_util_echo": "client process CPU use during the echo windows, in cores "
    "(near 1.0 means the client bounds the figure)",
    "recommend_qps": "Recommend calls/s through the real server (create_server as shipped, its "
    "default RPC threads; LinTS disjoint, dim 33 = intercept + 32 dense, 100 arms, k=10, "
    "trained), 8 client threads in another process",
    "recommend_vs_echo": "recommend_qps / echo_qps (alternating rounds, same run)",
    "recommend_qps_pinned": "recommend_qps with the server pinned to one CPU and the client "
    "to the other (bandit-engine serve --cpus), alternating rounds with the echoes pinned alike",
    "echo_qps_pinned": "echo calls/s pinned the same way; the faster of 2 and 16 worker threads",
    "recommend_vs_echo_pinned": "recommend_qps_pinned / echo_qps_pinned",
    "recommend_server_cpu_us_pinned": "real server CPU us per Recommend call, pinned",
    "echo_server_cpu_us_pinned": "echo server CPU us per call, pinned",
    "recommend_vs_echo_ceiling": "echo_server_cpu_us_pinned / (echo_server_cpu_us_pinned + "
    "decide_with_propensity_us): the ratio a server would reach whose only work beyond the "
    "echo's were the decision itself (no parsing, response, join or log); with the server "
    "saturated, calls/s go as 1 / CPU per call",
    "recommend_qps_kafka": "Recommend calls/s through the real server in Kafka mode (decisions "
    "to the broker, posteriors from MySQL, its learner in the process, the mode's default RPC "
    "threads), same client, setup and rounds",
    "recommend_vs_echo_kafka": "recommend_qps_kafka / echo_qps_sync (same rounds)",
    "recommend_batch_decisions_per_s": "decisions/s through RecommendBatch, 32 requests a call "
    "(the same workload: 100 arms, d = 33, top 10, first-slot propensities), the real server "
    "pinned to one CPU and the client to the other, 8 client threads",
    "recommend_batch_server_cpu_us_per_decision": "server CPU us per decision in those rounds",
    "recommend_batch_vs_decide": "recommend_batch_decisions_per_s x decide_with_propensity_us / "
    "1e6: the share of what the decision alone allows on that one core",
    "recommend_qps_capped": "Recommend calls/s through the real server with "
    "max_concurrent_rpcs=64 (admission control on; the client's 8 threads are never shed), "
    "same client, setup and rounds",
    "recommend_capped_vs_uncapped": "recommend_qps_capped / recommend_qps (same rounds): the "
    "cost of admission control",
    "recommend_server_cpu_us_capped": "server CPU us per Recommend call with "
    "max_concurrent_rpcs=64",
    "recommend_server_cpu_us_kafka": "server CPU us per Recommend call in Kafka mode (learner "
    "included)",
    "recommend_p50_ms_kafka": "Recommend p50 latency (ms) in Kafka mode, 1 sequential client",
    "recommend_inproc_us": "CPU us per Engine.recommend(experiment, Context(dense=...), k=10) "
    "call in a loop, no gRPC: the engine of open_engine(ServerSettings(state_dir=None)) "
    "(SQLite in memory, decision writer running; its CPU and the close that stores the last "
    "decisions counted), the same experiment, training and contexts as the gRPC rounds; "
    "median of repeats",
    "recommend_vs_echo_ceiling_inproc": "echo_server_cpu_us_pinned / (echo_server_cpu_us_pinned "
    "+ recommend_inproc_us): the ratio if a Recommend's own work cost in the server what it "
    "costs in a loop, and nothing else (GIL hand-overs, cold caches) were added",
    "recommend_p50_ms": "Recommend p50 latency (ms), light load: 1 sequential client",
    "recommend_p99_ms": "Recommend p99 latency (ms), light load: 1 sequential client",
    "recommend_server_cpu_us": "real server CPU us per Recommend call under load",
    "recommend_server_cpu_util": "real server CPU use under load, in cores",
    "grpc_client_cpu_util_recommend": "client process CPU use during the Recommend windows, "
    "in cores",
    "recommend_qps_aio": "Recommend calls/s, the same servicer on a grpc.aio server (sync "
    "handlers in a 16-thread migration pool), same client and setup",
    "recommend_p50_ms_aio": "Recommend p50 latency (ms) on that aio server, 1 sequential client",
    "recommend_server_cpu_us_aio": "server CPU us per Recommend call on that aio server",
    "recommend_errors": "failed Recommend calls during the throughput windows",
    "grpc_foreign_cpu_util": "median CPU (cores) used on the machine by processes other than "
    "the benchmark's during the gRPC throughput windows (a noise indicator)",
    "echo_qps_reuseport2": "echo calls/s, 2 sync echo server processes on one port "
    "(SO_REUSEPORT), 8 client threads/connections",
    "recommend_qps_reuseport2": "Recommend calls/s, 2 real-server processes on one port "
    "(SO_REUSEPORT; each its own engine, set up and trained alike)",
    "feedback_rewards_per_s": "rewards joined, applied and committed in MySQL per second by one "
    "learner (one event loop), N decisions + N rewards waiting in the topics, K=100 d=32",
    "raw_consume_records_per_s": "records/s of a bare aiokafka getmany loop over the same topics",
    "feedback_vs_raw_consume": "time(raw getmany over both topics) / time(learner), same run: "
    "median of 3 alternating rounds",
    "feedback_vs_raw_consume_min": "smallest of those rounds",
    "feedback_decode_only_vs_raw": "time(raw getmany) / time(getmany + the learner's protobuf "
    "decode, no join, no commit), same rounds: the ceiling of the learner's ratio",
    "feedback_vs_raw_consume_max": "largest",
    "feedback_commits": "MySQL transactions the learner used for those rewards",
    "reward_to_posterior_p50_ms": "reward timestamp -> posterior committed in MySQL, p50, about "
    "200 rewards/s",
    "reward_to_posterior_p99_ms": "same, p99",
    "snapshot_ms": "median ms to encode and write one experiment's state to MySQL (100 arms, "
    "d=32, disjoint LinTS)",
    "snapshot_load_ms": "median ms to read it back and rebuild the caches",
    "log_bytes_per_decision": "SQLite log bytes per decision (top-10 of 100 arms, d=33) with "
    "its 10 reward rows, after a WAL checkpoint",
    "log_prune_chunk_ms": "median ms of one prune_log chunk (PRUNE_CHUNK decisions and "
    "their rewards)",
    "log_prune_chunk_max_ms": "longest chunk (the longest a Feedback commit can wait for one)",
    "log_feedback_p50_ms_idle": "in-process Feedback (SQLite commit) at ~500/s, p50, no pruning",
    "log_feedback_p99_ms_idle": "same, p99",
    "log_feedback_p50_ms_pruning": "the same while --log-retention deletes in another thread",
    "log_feedback_p99_ms_pruning": "same, p99",
    "log_prune_chunks": "chunks it took",
}
try:  # the simulators describe their own figures
    from simulators.bench import DESCRIPTIONS as _SIM

    DESCRIPTIONS.update(_SIM)
except ImportError:  # pragma: no cover - simulators ship with the package
    pass
try:
    from harness.bench.learning import DESCRIPTIONS as _LEARNING

    DESCRIPTIONS.update(_LEARNING)
except ImportError:  # pragma: no cover - ships with the harness
    pass
for _name in PLUGIN_SECTIONS:
    try:
        DESCRIPTIONS.update(_plugin(_name).DESCRIPTIONS)
    except ImportError:  # pragma: no cover - the module is being written
        pass

_UNITS = (
    ("_us", "us"),
    ("_ms", "ms"),
    ("_qps", "1/s"),
    ("per_s", "1/s"),
    ("_vs_", "x"),
    ("learning_", "reward"),  # mean reward per round of a contender on a world
    ("_util", "cores"),
    ("_share", "fraction"),
    ("_events", "events"),
    ("_errors", "calls"),
)


def _unit(key: str) -> str:
    for frag, unit in _UNITS:
        if frag in key:
            return unit
    return ""


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if abs(v) >= 10_000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _status(key: str, v: float) -> tuple[str, str]:
    t = TARGETS.get(key)
    if t is None:
        return "", ""
    op, thr = t
    ok = v >= thr if op == ">=" else v <= thr
    return f"{op} {_fmt(thr)}", "MET" if ok else "NOT MET"


def render_table(figures: dict[str, float]) -> str:
    rows = [("figure", "value", "unit", "target", "")]
    for key, v in figures.items():
        tgt, st = _status(key, v)
        rows.append((key, _fmt(v), _unit(key), tgt, st))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for n, r in enumerate(rows):
        lines.append(
            "  ".join(
                (c.rjust(widths[i]) if i == 1 else c.ljust(widths[i])) for i, c in enumerate(r)
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m harness.bench",
        description=f"bandit-engine benchmarks against MABWiser, Vowpal Wabbit and a bare gRPC "
        f"echo server ({SETTING}). Quote medians; ratios are against a peer measured in the "
        f"same run.",
    )
    ap.add_argument(
        "--out",
        default=os.environ.get("BENCH_JSON") or "bench-results.json",
        help="JSON output (default: $BENCH_JSON, else bench-results.json)",
    )
    ap.add_argument(
        "--quick", action="store_true", help="a short smoke run (seconds): same keys, rough figures"
    )
    ap.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        metavar="NAME",
        help=f"run only these sections: {', '.join(SECTIONS)}",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.only:
        sections = set(args.only)
        if sections & {"mabwiser", "vw"}:
            sections.add("decide")  # the ratios need the engine's figure from the same run
        if "reuseport" in sections:
            sections.add("grpc")
    else:
        sections = set(SECTIONS)
        if args.quick:
            sections.discard("reuseport")
    t_start = time.perf_counter()
    meta: dict[str, Any] = {
        "machine": machine_meta(),
        "command": " ".join(
            [
                Path(sys.executable).name,
                "-m",
                "harness.bench",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
        "quick": args.quick,
        "sections": [s for s in SECTIONS if s in sections],
        "setting": SETTING,
        "targets": {k: f"{op} {thr:g}" for k, (op, thr) in TARGETS.items()},
        "section_seconds": {},
    }
    figures: dict[str, float] = {}
    failures: dict[str, str] = {}

    def timed(name: str, fn: Any) -> None:
        t0 = time.perf_counter()
        try:
            figures.update(fn())
        except Exception as exc:  # one failing peer must not sink the others
            import traceback

            failures[name] = traceback.format_exc()[-4000:]
            progress(f"{name} FAILED: {exc!r}")
        meta["section_seconds"][name] = round(time.perf_counter() - t0, 2)

    policy_sections = sections & {"decide", "propensity", "updates", "mabwiser", "vw"}
    if policy_sections:
        from harness.bench.policy import PolicyBench, make_data

        pb = PolicyBench(make_data(), quick=args.quick)
        progress("policy: training LinTSDisjoint on the shared events (JIT warm-up)")
        pb.trained_policy()
        names = tuple(n for n in ("engine", "mabwiser", "vw") if n == "engine" or n in sections)
        try:
            timed("decide", lambda: pb.contest(names))
            meta["decide_paired_ratios"] = pb.paired_ratios
            if "vw" in sections:
                figures["vw_learn_events"] = float(pb.vw_learn_events)
            if "mabwiser" in sections:
                timed("mabwiser_topk", pb.mabwiser_topk)
            timed("decide_breakdown", pb.decide_breakdown)
            for name in ("propensity", "updates"):
                if name in sections:
                    timed(name, getattr(pb, name))
        finally:
            pb.close()

    if "grpc" in sections:
        from harness.bench import inproc
        from harness.bench.grpc_bench import GrpcBench, GrpcSettings

        gb = GrpcBench(GrpcSettings.for_mode(args.quick, reuseport="reuseport" in sections))
        timed("grpc", lambda: gb.run()[0])
        meta["grpc"] = gb.info
        timed("recommend_inproc", lambda: inproc.run(args.quick))

    if "feedback" in sections:
        from harness.bench import feedback

        timed("feedback", lambda: feedback.run(args.quick))
    if "log" in sections:
        from harness.bench import log as log_bench

        timed("log", lambda: log_bench.run(args.quick))
    if "sim" in sections:
        from simulators import bench as sim_bench

        timed("sim", lambda: sim_bench.run(args.quick))
    if "replay" in sections:
        from simulators import offline_bench

        timed("replay", lambda: offline_bench.run(args.quick))
    if "learning" in sections:
        from harness.bench.learning import LearningBench

        lb = LearningBench(args.quick)
        timed("learning", lb.run)
        meta["learning"] = lb.info

    for name in PLUGIN_SECTIONS:
        if name in sections:
            plugin = _plugin(name)
            info: dict[str, Any] = {}

            def run_plugin(plugin: Any = plugin, info: dict[str, Any] = info) -> dict[str, float]:
                figs, extra = plugin.run(args.quick)
                info.update(extra)
                return dict(figs)

            timed(name, run_plugin)
            meta[name] = info

    echo_cpu = figures.get("echo_server_cpu_us_pinned")
    decide = figures.get("decide_with_propensity_us")
    if echo_cpu and decide:
        # a server whose only work beyond the echo's were the decision itself
        figures["recommend_vs_echo_ceiling"] = echo_cpu / (echo_cpu + decide)
    batch = figures.get("recommend_batch_decisions_per_s")
    if batch and decide:
        # what the decision alone allows on the server's one core
        figures["recommend_batch_vs_decide"] = batch * decide / 1e6
    inproc_us = figures.get("recommend_inproc_us")
    if echo_cpu and inproc_us:
        # ... or all of a Recommend's own work, at its cost in a loop
        figures["recommend_vs_echo_ceiling_inproc"] = echo_cpu / (echo_cpu + inproc_us)

    order = [k for k in DESCRIPTIONS if k in figures] + [
        k for k in figures if k not in DESCRIPTIONS
    ]
    figures = {k: float(figures[k]) for k in order if isinstance(figures[k], (int, float))}
    meta["descriptions"] = {k: DESCRIPTIONS.get(k, "") for k in figures}
    meta["units"] = {k: _unit(k) for k in figures}
    meta["failures"] = failures
    meta["total_seconds"] = round(time.perf_counter() - t_start, 1)
    try:
        meta["loadavg_at_end"] = list(os.getloadavg())
    except OSError:
        pass

    print(render_table(figures))
    for name, tb in failures.items():
        print(f"\n{name} failed:\n{tb}", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**figures, "meta": meta}, indent=2, default=_json_default) + "\n")
    progress(f"wrote {out} ({meta['total_seconds']}s)")
    return 1 if failures else 0


def _json_default(o: Any) -> Any:
    if isinstance(o, bytes):
        return len(o)
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)
