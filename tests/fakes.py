"""Shared fakes: in-memory stand-ins for the engine's ports, each checked
against the real implementation by a contract test."""

from __future__ import annotations

from bandit_engine.core import DecisionRow, FeedbackEvent
from bandit_engine.stream import decode_decision, decode_feedback, encode_decision, encode_feedback


class RecordingEventLog:
    """An ``EventLog`` that keeps what it is given, encoded as the Kafka
    topics would hold it (so the records' codec is exercised too)."""

    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.decisions: list[bytes] = []
        self.feedback: list[bytes] = []
        self.closed = False

    def publish_decision(self, row: DecisionRow) -> bool:
        if self.accept:
            self.decisions.append(encode_decision(row))
        return self.accept

    def publish_feedback(self, event: FeedbackEvent, timeout: float) -> bool:
        if self.accept:
            self.feedback.append(encode_feedback(event))
        return self.accept

    def pending(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True

    def decision_rows(self) -> list[DecisionRow]:
        return [decode_decision(v) for v in self.decisions]

    def feedback_events(self) -> list[FeedbackEvent]:
        return [decode_feedback(v, 0) for v in self.feedback]
