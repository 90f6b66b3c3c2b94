"""One contract, two event logs: the Kafka one (``KafkaEventLog``, on a real
broker) and the recording fake of ``tests/fakes.py``. What an engine
publishes through either reads back as the same rows and events, keyed and
partitioned by event id."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fakes import RecordingEventLog

from bandit_engine.core import DecisionRow, EventLog, FeedbackEvent
from bandit_engine.stream import KafkaEventLog, KafkaSettings, decode_decision, decode_feedback


def _rows() -> list[DecisionRow]:
    rng = np.random.default_rng(4)
    return [
        DecisionRow(
            f"ev{i:03d}",
            "exp",
            1.7e9 + i,
            1.7e9 + i + 60.0,
            i,
            rng.normal(size=5),
            ("a", "b"),
            (0.5, -0.25),
            (0.75, 0.0),
            ("a", "b", "c") if i % 2 else (),
            (0, 1),
        )
        for i in range(12)
    ]


@pytest.fixture(params=["fake", "kafka"])
def event_log(request: pytest.FixtureRequest) -> Iterator[tuple[EventLog, KafkaSettings | None]]:
    if request.param == "fake":
        log = RecordingEventLog()
        yield log, None
        return
    settings: KafkaSettings = request.getfixturevalue("kafka_settings")
    kafka = KafkaEventLog(settings)
    yield kafka, settings


def _read_back(
    log: EventLog, settings: KafkaSettings | None
) -> tuple[list[DecisionRow], list[FeedbackEvent]]:
    if isinstance(log, RecordingEventLog):
        return log.decision_rows(), log.feedback_events()
    from simulators.kafka_log import read_topic

    assert settings is not None
    decisions = read_topic(settings.bootstrap, settings.decisions_topic)
    feedback = read_topic(settings.bootstrap, settings.feedback_topic)
    # one partition per event id: a decision and its rewards share its number
    by_event = {decode_decision(v).event_id: p for p, _, _, v in decisions}
    for p, _, _, v in feedback:
        assert by_event[decode_feedback(v, 0).event_id] == p
    order = sorted(decisions, key=lambda r: (r[0], r[1]))
    return (
        sorted((decode_decision(v) for *_, v in order), key=lambda r: r.event_id),
        sorted((decode_feedback(v, 0) for *_, v in feedback), key=lambda e: e.event_id),
    )


def test_what_is_published_reads_back_whole(
    event_log: tuple[EventLog, KafkaSettings | None],
) -> None:
    log, settings = event_log
    rows = _rows()
    assert all(log.publish_decision(r) for r in rows)
    events = [FeedbackEvent(r.event_id, "a", 1.0, r.created_at + 1) for r in rows[::3]]
    assert all(log.publish_feedback(e, timeout=10.0) for e in events)
    log.close()  # sends what is queued
    assert log.pending() == 0
    got_rows, got_events = _read_back(log, settings)
    assert [r.event_id for r in got_rows] == [r.event_id for r in rows]
    for want, got in zip(rows, got_rows, strict=True):
        np.testing.assert_array_equal(got.x, want.x)
        assert (got.arms, got.scores, got.propensities, got.candidates, got.slots) == (
            want.arms,
            want.scores,
            want.propensities,
            want.candidates,
            want.slots,
        )
        assert (got.created_at, got.deadline, got.model_version) == (
            want.created_at,
            want.deadline,
            want.model_version,
        )
    assert got_events == events
