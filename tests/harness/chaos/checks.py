"""The campaign's checks: the learner's state against the ledger and the logs.

Once the traffic has stopped and the servers have drained their producers,
the topics are read back whole. A reward is *valid* if its Feedback was
acknowledged and its decision reached the decisions topic. Then:

1. the posterior in MySQL equals the closed form over the valid rewards,
   to 1e-9;
2. rewards applied = the number of valid rewards (nothing lost, nothing
   applied twice);
3. dead letters per reason equal what was injected; ``duplicate`` equals the
   copies of valid rewards in the log beyond the first (injected duplicates,
   client retries whose first attempt had landed, a producer's own retry of
   a batch the broker wrote but did not acknowledge); decisions lost with a
   killed server's buffer make their rewards ``unknown_event``;
4. every acknowledged reward with its decision in the log is in the
   feedback topic;
5. no snapshot part is left unabsorbed.

Learners that share the partitions store evidence and counters beside the
snapshot (``snapshot_parts``) until the learner of partition 0 absorbs
them; the checks read the snapshot and the counters once no part is
pending (``absorbed``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np

from bandit_engine.core import FeedbackEvent, decision_time
from bandit_engine.policies import DEFAULT_HALF_LIFE_S, PRIOR_MEAN
from bandit_engine.store import MySQLStore
from bandit_engine.stream import (
    FeedbackParseError,
    KafkaSettings,
    decode_decision,
    decode_feedback,
)
from harness.chaos.traffic import ARMS, EXPERIMENT, Ledger

__all__ = [
    "absorbed",
    "counters",
    "diagnose",
    "evaluate",
    "landed",
    "rewards_in_log",
    "settle",
]

Key = tuple[str, str]


def _read(bootstrap: str, topic: str) -> list[tuple[int, int, int, bytes | None]]:
    from simulators.kafka_log import read_topic

    return read_topic(bootstrap, topic)


def _event_ids(settings: KafkaSettings) -> dict[str, tuple[int, int, int]]:
    """Each decision in the decisions topic: event id -> (partition, offset, ts)."""
    out: dict[str, tuple[int, int, int]] = {}
    for p, o, ts, value in _read(settings.bootstrap, settings.decisions_topic):
        try:
            out.setdefault(decode_decision(value).event_id, (p, o, ts))
        except ValueError:
            pass
    return out


def landed(settings: KafkaSettings) -> set[str]:
    """Event ids whose decision reached the decisions topic."""
    return set(_event_ids(settings))


def rewards_in_log(settings: KafkaSettings) -> list[FeedbackEvent]:
    """Every well-formed reward record in the feedback topic, in log order."""
    out = []
    for _, _, ts, value in _read(settings.bootstrap, settings.feedback_topic):
        try:
            out.append(decode_feedback(value, ts))
        except FeedbackParseError:
            continue
    return out


def diagnose(
    settings: KafkaSettings, valid: dict[Key, float], deadlines: dict[str, float]
) -> list[dict[str, Any]]:
    """Valid rewards that were dead-lettered anyway, each with its reason and
    where its decision and reward sit in the logs: the first thing to read
    when "applied once each" fails."""
    fb = {(p, o): (ts, v) for p, o, ts, v in _read(settings.bootstrap, settings.feedback_topic)}
    dec = _event_ids(settings)
    out = []
    seen: set[tuple[int, int]] = set()
    for _, _, _, v in _read(settings.bootstrap, settings.deadletter_topic):
        try:
            body = json.loads(v or b"")
            where = (int(body["partition"]), int(body["offset"]))
            ts, raw = fb[where]
            rec = decode_feedback(raw, ts)
        except (ValueError, KeyError, FeedbackParseError):
            continue
        key = (rec.event_id, rec.arm_id)
        if (
            key not in valid
            or where in seen
            or body["reason"] == "duplicate"
            or not 0.0 <= rec.reward <= 1.0  # (also NaN) an injected invalid copy
            or rec.timestamp > deadlines[rec.event_id]  # an injected late copy
        ):
            continue
        seen.add(where)
        d = dec.get(rec.event_id)
        out.append(
            {
                "event_id": rec.event_id,
                "arm_id": rec.arm_id,
                "reason": body["reason"],
                "detail": body.get("detail"),
                "feedback_at": [where[0], where[1], ts],
                "decision_at": list(d) if d else None,
            }
        )
    return out


def counters(store: MySQLStore) -> dict[str, int]:
    """The learner's counters, summed over experiments."""
    out: dict[str, int] = {}
    for (_, name), n in store.learner_counters().items():
        out[name] = out.get(name, 0) + n
    return out


def settle(
    store: MySQLStore, applied: int, unknown: int, stall: float = 60.0, quiet: float = 2.0
) -> dict[str, int]:
    """Wait while the learner catches up: until it has applied ``applied``
    rewards and dead-lettered ``unknown`` unknown-event ones, or has made no
    progress for ``stall`` seconds (a broker reading from S3 after a restart
    may take minutes). Then ``quiet`` seconds more, so that a reward applied
    twice shows in the counters it returns."""
    last, t_last, t_print = -1, time.monotonic(), time.monotonic()
    while time.monotonic() - t_last < stall:
        got = counters(store)
        done = got.get("rewards_applied", 0)
        if done >= applied and got.get("dead_unknown_event", 0) >= unknown:
            break
        if done != last:
            last, t_last = done, time.monotonic()
        if time.monotonic() - t_print > 10:
            t_print = time.monotonic()
            print(f"[chaos] settling: {done} of {applied} rewards applied", file=sys.stderr)
        time.sleep(0.5)  # poll interval
    time.sleep(quiet)  # a quiet period: nothing more may be applied
    return counters(store)


def absorbed(store: MySQLStore, timeout: float = 30.0) -> dict[str, int]:
    """Wait until no snapshot part is pending (the learner that holds
    partition 0 absorbs them every quarter second), at most ``timeout``
    seconds; the parts still pending then, per experiment (empty once all
    are absorbed)."""
    t0 = time.monotonic()
    pending = store.pending_parts()
    while pending and time.monotonic() - t0 < timeout:
        time.sleep(0.1)  # poll interval
        pending = store.pending_parts()
    if pending:
        print(
            f"[chaos] snapshot parts still pending after {timeout:g}s: {pending} "
            "(is a learner holding partition 0 committing?)",
            file=sys.stderr,
        )
    return pending


def _closed_form(
    valid: dict[Key, float], xs: dict[str, np.ndarray], clock: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and b of every arm over the valid rewards (prior precision
    1), each weighted 2^((t - clock) / half-life) by its decision's time t
    (the default half-life; ``clock``: the snapshot's, None before any)."""
    a_ref = np.stack([np.eye(3) for _ in ARMS])
    b_ref = np.zeros((len(ARMS), 3))
    for (ev, arm), r in valid.items():
        i = ARMS.index(arm)
        w = 1.0 if clock is None else 2.0 ** ((decision_time(ev) - clock) / DEFAULT_HALF_LIFE_S)
        a_ref[i] += w * np.outer(xs[ev], xs[ev])
        b_ref[i] += w * (r - PRIOR_MEAN) * xs[ev]  # lin_ts_disjoint learns centred rewards
    return a_ref, b_ref


def evaluate(store: MySQLStore, settings: KafkaSettings, ledger: Ledger) -> dict[str, Any]:
    """Settle, then the checks and the figures of the report."""
    reached = landed(settings)
    with ledger.lock:
        acked = dict(ledger.acked)
        injected = dict(ledger.injected)
        retries = ledger.retries
        xs = {ev: x for ev, (x, _, _) in ledger.decisions.items()}
        deadlines = {ev: dl for ev, (_, _, dl) in ledger.decisions.items()}
    valid = {k: r for k, r in acked.items() if k[0] in reached}
    lost = {k: r for k, r in acked.items() if k[0] not in reached}
    want_unknown = injected["unknown_event"] + len(lost)
    settle(store, len(valid), want_unknown)
    pending = absorbed(store)
    got = counters(store)  # with every absorbed part's counters
    copies: dict[Key, int] = {}
    for rec in rewards_in_log(settings):
        key = (rec.event_id, rec.arm_id)
        if (
            key in valid
            and np.isfinite(rec.reward)
            and 0.0 <= rec.reward <= 1.0
            and rec.timestamp <= deadlines[rec.event_id]
        ):
            copies[key] = copies.get(key, 0) + 1
    acked_not_in_log = sorted(k for k in valid if k not in copies)
    want_duplicate = sum(n - 1 for n in copies.values())
    snap = store.load_snapshot(EXPERIMENT)
    clock = float(snap.state["clock"][0]) if snap is not None and "clock" in snap.state else None
    a_ref, b_ref = _closed_form(valid, xs, clock)
    checks = {
        "posterior equals the closed form": snap is not None
        and bool(
            np.allclose(snap.state["A"], a_ref, rtol=1e-9, atol=0)
            and np.allclose(snap.state["b"], b_ref, rtol=1e-9, atol=1e-9)
        ),
        "applied once each (nothing lost or doubled)": got.get("rewards_applied", 0) == len(valid),
        "late = injected": got.get("dead_late", 0) == injected["late"],
        "invalid (non-finite) = injected": got.get("dead_invalid", 0) == injected["invalid"],
        "malformed = injected": got.get("dead_malformed", 0) == injected["malformed"],
        "unknown_event = injected + rewards of lost decisions": got.get("dead_unknown_event", 0)
        == want_unknown,
        "duplicate = the copies of valid rewards in the log": got.get("dead_duplicate", 0)
        == want_duplicate,
        "every acknowledged reward is in the log": not acked_not_in_log,
        "every snapshot part absorbed": not pending,
    }
    report: dict[str, Any] = {
        "checks": checks,
        "counters": got,
        "injected": injected,
        "acknowledged_rewards": len(acked),
        "valid_rewards": len(valid),
        "rewards_of_lost_decisions": len(lost),
        "client_retries": retries,
        # acknowledged by a server (after the broker's ack), yet not in the topic
        "acked_rewards_missing_from_log": len(acked_not_in_log),
        "duplicate_copies_in_log": want_duplicate,
        "decisions": len(xs),
        "snapshot_parts_pending": sum(pending.values()),
    }
    if not all(checks.values()):
        report["valid_rewards_dead_lettered"] = diagnose(settings, valid, deadlines)
    return report
