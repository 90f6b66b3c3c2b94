"""The engine's log read back from Kafka (production mode), as a read-only store.

In Kafka mode the decisions and rewards live only in the topics, and the
experiments and arms live in MySQL. ``KafkaLogSource`` reads both and offers
the part of the ``Store`` interface that ``simulators.logs.from_store`` reads
(``simulators.logs.LogSource``), so the export format is the same whichever
mode served the traffic.

Rewards are joined the way the learner joins them: for each shown arm, the
first feedback that is well formed, finite, inside the experiment's range,
for an arm that was shown, and not after the decision's deadline, in log
order. An arm without one whose window has closed gets the experiment's
default reward (source ``default``). One still inside its window has none
yet. Partitions are read from the beginning to the end offsets as of the
call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

from bandit_engine import ExperimentConfig
from bandit_engine.store import ArmRow, DecisionRow, RewardRow, Store
from bandit_engine.stream import (
    FeedbackParseError,
    KafkaSettings,
    decode_decision,
    decode_feedback,
)

__all__ = ["KafkaLogSource", "read_topic"]


async def _read(bootstrap: str, topic: str) -> list[tuple[int, int, int, bytes | None]]:
    """Every record of ``topic``: (partition, offset, timestamp ms, value)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    # Without a consumer group, aiokafka resets each newly assigned partition to
    # auto_offset_reset in a task of its own; "earliest" agrees with the seek to
    # the beginning below, whichever of the two comes last.
    c = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await c.start()
    try:
        # A missing topic holds nothing. The request also lets the consumer's
        # start-up tasks run: aiokafka cannot stop a consumer before they have.
        if topic not in await c.topics():
            return []
        # the partitions as the consumer's start-up metadata has them
        parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        c.assign(tps)
        end = await c.end_offsets(tps)
        await c.seek_to_beginning(*tps)
        out: list[tuple[int, int, int, bytes | None]] = []
        pending = {tp for tp in tps if end[tp] > 0}
        while pending:
            batch = await c.getmany(*pending, timeout_ms=500)
            for tp, msgs in batch.items():
                out.extend((tp.partition, m.offset, m.timestamp, m.value) for m in msgs)
            pending = {tp for tp in pending if await c.position(tp) < end[tp]}
        return out
    finally:
        await c.stop()


def read_topic(bootstrap: str, topic: str) -> list[tuple[int, int, int, bytes | None]]:
    """Every record of ``topic`` as of the call: (partition, offset, timestamp ms, value)."""
    return asyncio.run(_read(bootstrap, topic))


class KafkaLogSource:
    """Experiments and arms from MySQL, decisions and joined rewards from Kafka."""

    def __init__(
        self,
        store: Store,
        settings: KafkaSettings,
        *,
        lateness: float = 2.0,
        now: float | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.dsn = getattr(store, "dsn", "")
        self._now = time.time() if now is None else now
        self._lateness = lateness
        self._decisions: list[DecisionRow] | None = None
        self._rewards: list[RewardRow] = []

    # the Store methods from_store uses
    def load_experiments(self) -> list[tuple[str, dict[str, Any], int]]:
        return self.store.load_experiments()

    def load_arms(self, experiment_id: str) -> list[ArmRow]:
        return self.store.load_arms(experiment_id)

    def decisions(self, experiment_id: str | None = None) -> Iterator[DecisionRow]:
        self._load()
        assert self._decisions is not None
        return (d for d in self._decisions if experiment_id in (None, d.experiment_id))

    def rewards(self, experiment_id: str | None = None) -> Iterator[RewardRow]:
        self._load()
        return (r for r in self._rewards if experiment_id in (None, r.experiment_id))

    def close(self) -> None:
        self.store.close()

    # --------------------------------------------------------------- join
    def _load(self) -> None:
        if self._decisions is not None:
            return
        cfgs = {e: ExperimentConfig.from_dict(c) for e, c, _ in self.store.load_experiments()}
        decisions: dict[str, DecisionRow] = {}
        for _, _, _, value in sorted(
            read_topic(self.settings.bootstrap, self.settings.decisions_topic),
            key=lambda r: (r[2], r[0], r[1]),
        ):
            try:
                dec = decode_decision(value)
            except ValueError:
                continue  # the learner counts these as malformed_decision
            decisions[dec.event_id] = dec
        joined: dict[tuple[str, str], RewardRow] = {}
        seq = 0
        feedback = read_topic(self.settings.bootstrap, self.settings.feedback_topic)
        for _, _, ts_ms, value in sorted(feedback, key=lambda r: (r[0], r[1])):
            try:
                fb = decode_feedback(value, ts_ms)
            except FeedbackParseError:
                continue
            found = decisions.get(fb.event_id)
            if found is None:
                continue
            dec = found
            cfg = cfgs.get(dec.experiment_id)
            key = (fb.event_id, fb.arm_id)
            if (
                cfg is None
                or fb.arm_id not in dec.arms
                or key in joined
                or not cfg.reward_min <= fb.reward <= cfg.reward_max
                or fb.timestamp > dec.deadline
            ):
                continue
            seq += 1
            joined[key] = RewardRow(
                fb.event_id,
                fb.arm_id,
                dec.experiment_id,
                dec.slots[dec.arms.index(fb.arm_id)],
                dec.x,
                fb.reward,
                cfg.normalise_reward(fb.reward),
                "feedback",
                fb.timestamp,
                seq,
            )
        closed_before = self._now - self._lateness
        for dec in decisions.values():
            cfg = cfgs.get(dec.experiment_id)
            if cfg is None or dec.deadline > closed_before:
                continue
            d = float(cfg.default_reward)  # type: ignore[arg-type]
            for arm, slot in zip(dec.arms, dec.slots, strict=True):
                if (dec.event_id, arm) not in joined:
                    seq += 1
                    joined[(dec.event_id, arm)] = RewardRow(
                        dec.event_id,
                        arm,
                        dec.experiment_id,
                        slot,
                        dec.x,
                        d,
                        cfg.normalise_reward(d),
                        "default",
                        dec.deadline,
                        seq,
                    )
        self._decisions = list(decisions.values())
        self._rewards = sorted(joined.values(), key=lambda r: r.seq or 0)
