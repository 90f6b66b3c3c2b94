"""The archiver: Parquet partitions of the joined log, kept up to date from Kafka.

``python -m simulators archive --mysql-dsn DSN --kafka-bootstrap HOST:PORT
--out DIR`` reads the decisions and feedback topics from where its last run
stopped, joins rewards to decisions the way the learner does
(``simulators.kafka_log``), and appends the decisions whose join is final to
``DIR/experiment=<id>/date=<day>/part-r<run>-0.parquet``
(``simulators.logs.parquet``). Run it as often as wanted (cron): each run
adds only decisions no earlier run wrote.

When a decision is final: once ``deadline + lateness <= now`` (its reward
window has closed and feedback produced inside the window has had
``lateness`` seconds to reach the topic). Then every shown arm without a
joined feedback gets the experiment's default reward (source ``default``,
timestamp the deadline), as the learner does, and the decision is written
exactly once. Decisions still open stay in the state with the rewards joined
so far; feedback for a decision not read yet is kept for
``orphan_ttl`` seconds.

The state lives in ``DIR/_archive/state.json``: the next offset of every
partition of both topics, the open decisions, the run number and the reward
sequence. A run writes its files first and the state last (atomic rename);
files of a run whose state was never written are deleted by the next run,
which reads the same records again, so a crash neither loses nor doubles
decisions.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bandit_engine import ExperimentConfig, InvalidArgument
from bandit_engine.store import Store
from bandit_engine.stream import FeedbackParseError, KafkaSettings, decode_decision, decode_feedback

__all__ = ["STATE_VERSION", "ArchiveReport", "Archiver", "read_topic_from"]

STATE_VERSION = 1
Record = tuple[int, int, int, bytes | None]  # partition, offset, timestamp ms, value


async def _read_from(
    bootstrap: str, topic: str, start: Mapping[int, int]
) -> tuple[list[Record], dict[int, int]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await c.start()
    try:
        if topic not in await c.topics():
            return [], dict(start)
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        if not tps:
            return [], dict(start)
        c.assign(tps)
        end = await c.end_offsets(tps)
        begin = await c.beginning_offsets(tps)
        for tp in tps:
            c.seek(tp, max(int(start.get(tp.partition, 0)), begin[tp]))
        out: list[Record] = []
        pending = {tp for tp in tps if await c.position(tp) < end[tp]}
        while pending:
            batch = await c.getmany(*pending, timeout_ms=500)
            for tp, msgs in batch.items():
                out.extend(
                    (tp.partition, m.offset, m.timestamp, m.value)
                    for m in msgs
                    if m.offset < end[tp]
                )
            pending = {tp for tp in pending if await c.position(tp) < end[tp]}
        nxt = dict(start)
        nxt.update({tp.partition: int(end[tp]) for tp in tps})
        return out, nxt
    finally:
        await c.stop()


def read_topic_from(
    bootstrap: str, topic: str, start: Mapping[int, int]
) -> tuple[list[Record], dict[int, int]]:
    """Records of ``topic`` from ``start`` (partition -> next offset; absent:
    the beginning) to its end as of the call, and the offsets after them."""
    return asyncio.run(_read_from(bootstrap, topic, start))


@dataclass(frozen=True)
class ArchiveReport:
    run: int
    written: int  # decisions written by this run
    files: tuple[str, ...]
    open: int  # decisions still open, kept for a later run
    orphans: int  # feedback whose decision was not read yet
    skipped: int  # decisions of experiments the store does not have


class Archiver:
    """One archive directory; ``run()`` brings it up to date (module docstring)."""

    def __init__(
        self,
        store: Store,
        settings: KafkaSettings,
        out: str | Path,
        *,
        lateness: float = 2.0,
        orphan_ttl: float = 3600.0,
        source: str = "",
    ) -> None:
        if lateness < 0:
            raise InvalidArgument(f"lateness={lateness!r} must be >= 0")
        self.store = store
        self.settings = settings
        self.out = Path(out)
        self.lateness = float(lateness)
        self.orphan_ttl = float(orphan_ttl)
        self.source = source or f"kafka:{settings.bootstrap}"
        self.state_path = self.out / "_archive" / "state.json"

    # ---------------------------------------------------------------- state
    def load_state(self) -> dict[str, Any]:
        if not self.state_path.exists():
            return {
                "version": STATE_VERSION,
                "run": 0,
                "seq": 0,
                "decisions": {},
                "feedback": {},
                "open": [],
                "orphans": [],
            }
        try:
            state: dict[str, Any] = json.loads(self.state_path.read_text())
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"{self.state_path}: unreadable archive state ({exc})") from None
        if state.get("version") != STATE_VERSION:
            raise InvalidArgument(
                f"{self.state_path}: archive state version {state.get('version')!r}; "
                f"this archiver reads {STATE_VERSION}"
            )
        return state

    def _save_state(self, state: dict[str, Any]) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, allow_nan=False))
        os.replace(tmp, self.state_path)

    def _drop_uncommitted(self, run: int) -> None:
        for f in self.out.glob("experiment=*/date=*/part-r*-*.parquet"):
            tag = f.name.split("-")[1]
            if tag[1:].isdigit() and int(tag[1:]) >= run:
                f.unlink()

    # ------------------------------------------------------------------ run
    def run(self, now: float | None = None) -> ArchiveReport:
        now = time.time() if now is None else now
        state = self.load_state()
        run = int(state["run"])
        self._drop_uncommitted(run)
        cfgs = {e: ExperimentConfig.from_dict(c) for e, c, _ in self.store.load_experiments()}
        start_fb = {int(p): int(o) for p, o in state["feedback"].items()}
        start_dec = {int(p): int(o) for p, o in state["decisions"].items()}
        # feedback up to its end as of now first, then decisions to theirs:
        # feedback read here refers to decisions produced before it
        feedback, end_fb = read_topic_from(
            self.settings.bootstrap, self.settings.feedback_topic, start_fb
        )
        decisions, end_dec = read_topic_from(
            self.settings.bootstrap, self.settings.decisions_topic, start_dec
        )
        open_: dict[str, dict[str, Any]] = {r["event_id"]: r for r in state["open"]}
        skipped = 0
        for _, _, _, value in sorted(decisions, key=lambda r: (r[2], r[0], r[1])):
            try:
                dec = decode_decision(value)
            except ValueError:
                continue  # the learner counts these as malformed_decision
            if dec.experiment_id not in cfgs:
                skipped += 1
                continue
            rec = _record(dec)
            if dec.propensity_kind != "per_slot":
                rec["propensity_kind"] = cfgs[dec.experiment_id].propensity_kind or "first_slot"
            open_[dec.event_id] = rec
        seq = int(state["seq"])
        orphans: list[dict[str, Any]] = []
        items = [(o["ts"], o["event_id"], o["arm_id"], o["reward"]) for o in state["orphans"]]
        for _, _, ts_ms, value in sorted(feedback, key=lambda r: (r[0], r[1])):
            try:
                fb = decode_feedback(value, ts_ms)
            except FeedbackParseError:
                continue
            items.append((fb.timestamp, fb.event_id, fb.arm_id, fb.reward))
        for ts, event_id, arm_id, reward in items:
            found = open_.get(event_id)
            if found is None:
                if ts > now - self.orphan_ttl:
                    orphans.append(
                        {"ts": ts, "event_id": event_id, "arm_id": arm_id, "reward": reward}
                    )
                continue
            rec = found
            cfg = cfgs[rec["experiment_id"]]
            if arm_id not in rec["arms"] or not cfg.reward_min <= reward <= cfg.reward_max:
                continue
            j = rec["arms"].index(arm_id)
            if rec["rewards"][j] is not None or ts > rec["deadline"]:
                continue
            seq += 1
            rec["rewards"][j] = {
                "reward": reward,
                "reward_norm": cfg.normalise_reward(reward),
                "source": "feedback",
                "ts": ts,
                "seq": seq,
                "weight": 1.0,
            }
        final: dict[str, list[dict[str, Any]]] = {}
        for event_id in list(open_):
            rec = open_[event_id]
            if rec["deadline"] + self.lateness > now:
                continue
            cfg = cfgs[rec["experiment_id"]]
            d = float(cfg.default_reward)  # type: ignore[arg-type]
            for j, rw in enumerate(rec["rewards"]):
                if rw is None:
                    seq += 1
                    rec["rewards"][j] = {
                        "reward": d,
                        "reward_norm": cfg.normalise_reward(d),
                        "source": "default",
                        "ts": rec["deadline"],
                        "seq": seq,
                        "weight": 1.0,
                    }
            final.setdefault(rec["experiment_id"], []).append(open_.pop(event_id))
        files = self._write(final, cfgs, run)
        self._save_state(
            {
                "version": STATE_VERSION,
                "run": run + 1,
                "seq": seq,
                "decisions": {str(p): o for p, o in end_dec.items()},
                "feedback": {str(p): o for p, o in end_fb.items()},
                "open": list(open_.values()),
                "orphans": orphans,
            }
        )
        written = sum(len(v) for v in final.values())
        return ArchiveReport(run, written, tuple(files), len(open_), len(orphans), skipped)

    def _write(
        self, final: Mapping[str, list[dict[str, Any]]], cfgs: Mapping[str, Any], run: int
    ) -> list[str]:
        from simulators.logs import from_records
        from simulators.logs.parquet import write_parquet

        files: list[str] = []
        for exp, recs in sorted(final.items()):
            arms = self.store.load_arms(exp)
            head = {
                "type": "header",
                "experiment_id": exp,
                "config": cfgs[exp].to_dict(),
                "arms": [
                    {"arm_id": a.arm_id, "features": a.features, "active": a.active} for a in arms
                ],
                "source": self.source,
            }
            recs = sorted(recs, key=lambda r: (r["created_at"], r["event_id"]))
            log = from_records([head, *recs])
            paths = write_parquet(log, self.out, source=self.source, tag=f"r{run:08d}")
            files.extend(str(p) for p in paths)
        return files


def _record(dec: Any) -> dict[str, Any]:
    """A decision in the JSON Lines record format, every reward still open."""
    return {
        "type": "decision",
        "event_id": dec.event_id,
        "experiment_id": dec.experiment_id,
        "created_at": dec.created_at,
        "deadline": dec.deadline,
        "model_version": dec.model_version,
        "x": [float(v) for v in dec.x],
        "candidates": list(dec.candidates) or None,
        "arms": list(dec.arms),
        "scores": [float(s) for s in dec.scores],
        "propensities": [float(p) for p in dec.propensities],
        "propensity_kind": dec.propensity_kind,
        "prefix_propensities": [float(p) for p in dec.prefix_propensities] or None,
        "rewards": [None] * len(dec.arms),
    }
