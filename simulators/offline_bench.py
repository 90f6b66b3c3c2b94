"""Replay speed: ``run(quick) -> dict`` for ``make bench``.

Setting: a uniformly logged stream (``logs.uniform_stream``), K=100 arms,
d=32, logistic rewards; disjoint linear TS (``LinTSDisjoint``, the engine's
defaults: prior precision 1, noise scale 0.25) replayed from its prior with
learning (Li et al. 2011), through ``simulators.replay.replay`` (the Numba
path; draws, candidate handling and updates included in the time).

Keys:

- ``replay_events_per_s``: logged events per second over the whole stream
  (median of several runs, each from a fresh policy).
- ``replay_vs_mabwiser``: the same replay done by MABWiser's LinTS
  (``alpha=0.25, l2_lambda=1.0``: the same model) on the same events,
  in this run: the engine's replay events/s over MABWiser's on that
  segment. Both start from the same warm start (MABWiser cannot predict
  before a fit).
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import numpy as np

from simulators.logs import BanditLog, uniform_stream
from simulators.replay import policy_for_log, replay

__all__ = ["TARGETS", "run"]

TARGETS = {"replay_events_per_s": 200_000.0, "replay_vs_mabwiser": 450.0}
N_ARMS = 100
DIM = 32
_T0 = time.monotonic()


def _progress(msg: str) -> None:
    print(f"[offline-bench {time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def _fresh(log: BanditLog, warm: BanditLog | None = None) -> Any:
    policy = policy_for_log(log, "lin_ts_disjoint", {"prior_precision": 1.0, "noise_scale": 0.25})
    if warm is not None and warm.n:
        policy.update_batch(warm.action, warm.x, warm.logged_reward)
    return policy


def _ours(log: BanditLog, runs: int, warm: BanditLog | None = None) -> tuple[float, Any]:
    rates = []
    res = None
    for seed in range(runs):
        policy = _fresh(log, warm)
        t0 = time.perf_counter()  # the whole call: checks, draws, kernel, result
        res = replay(policy, log, seed=seed)
        rates.append(log.n / (time.perf_counter() - t0))
    return statistics.median(rates), res


def _mabwiser(warm: BanditLog, seg: BanditLog) -> tuple[float, int, float]:
    from mabwiser.mab import MAB, LearningPolicy

    mab = MAB(list(range(N_ARMS)), LearningPolicy.LinTS(alpha=0.25, l2_lambda=1.0), seed=0)
    mab.fit(warm.action, warm.logged_reward, warm.x)
    x, a, r = seg.x, seg.action, seg.logged_reward
    matched = 0
    reward = 0.0
    t0 = time.perf_counter()
    for t in range(seg.n):
        row = x[t : t + 1]
        if mab.predict(row) == a[t]:
            matched += 1
            reward += r[t]
            mab.partial_fit([int(a[t])], [float(r[t])], row)
    elapsed = time.perf_counter() - t0
    return seg.n / elapsed, matched, reward / max(1, matched)


def run(quick: bool = False) -> dict[str, Any]:
    n = 200_000 if quick else 500_000
    n_warm, n_seg = 200, (400 if quick else 2_000)
    _progress(f"replay: uniform stream of {n:,} events, K={N_ARMS}, d={DIM}")
    log = uniform_stream(n, N_ARMS, DIM, seed=0)
    replay(_fresh(log), log.select(np.arange(2_000)), seed=0)  # compile (or load the cache)
    runs = 3 if quick else 5
    _progress(f"replay: LinTSDisjoint over the stream, {runs} runs")
    rate, res = _ours(log, runs)
    out: dict[str, Any] = {
        "replay_events_per_s": rate,
        "replay_events": n,
        "replay_accepted": res.n_matched,
        "replay_value": res.value,
    }
    _progress(f"replay: {rate:,.0f} events/s ({res.n_matched:,} accepted)")
    warm = log.select(np.arange(n_warm))
    seg = log.select(np.arange(n_warm, n_warm + n_seg))
    try:
        import mabwiser  # noqa: F401
    except ImportError:
        _progress("replay: mabwiser not installed; replay_vs_mabwiser skipped")
        out["replay_vs_mabwiser"] = None
        return out
    _progress(f"replay: MABWiser LinTS on events {n_warm}..{n_warm + n_seg} (after a warm start)")
    mab_rate, mab_matched, mab_value = _mabwiser(warm, seg)
    # ours on exactly those events, from the same warm start; a short run, so repeated
    reps = 31 if quick else 101
    seg_rate, seg_res = _ours(seg, reps, warm)
    out.update(
        {
            "replay_vs_mabwiser": seg_rate / mab_rate,
            "mabwiser_replay_events_per_s": mab_rate,
            "replay_segment_events": n_seg,
            "replay_segment_events_per_s": seg_rate,
            "replay_segment_accepted": seg_res.n_matched,
            "mabwiser_replay_accepted": mab_matched,
            "mabwiser_replay_value": mab_value,
        }
    )
    _progress(
        f"replay: MABWiser {mab_rate:,.0f} events/s; ours on the same events "
        f"{seg_rate:,.0f}: {seg_rate / mab_rate:,.0f}x"
    )
    return out


def main() -> int:
    import json

    quick = "--quick" in sys.argv
    res = run(quick)
    print(json.dumps(res, indent=2))
    ok = all(res.get(k) is not None and res[k] >= v for k, v in TARGETS.items())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
