"""Decoding rewards from the feedback topic (protobuf or JSON), no services."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bandit_engine._proto.bandit.v1 import log_pb2
from bandit_engine.stream import FeedbackParseError, feedback_fields, parse_feedback

MSG_TS_MS = 1_700_000_000_123


def _pb(**kw: object) -> bytes:
    return log_pb2.FeedbackRecord(**kw).SerializeToString()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (_pb(event_id="e", arm_id="a", reward=0.5, timestamp=12.0), ("e", "a", 0.5, 12.0)),
        (_pb(event_id="e", arm_id="a", reward=1.0), ("e", "a", 1.0, MSG_TS_MS / 1000)),
        (b'{"event_id": "e", "arm_id": "a", "reward": 1}', ("e", "a", 1.0, MSG_TS_MS / 1000)),
        (
            b'{"event_id": "e", "arm_id": "a", "reward": 0.25, "timestamp": 5}',
            ("e", "a", 0.25, 5.0),
        ),
    ],
)
def test_good_messages(value: bytes, want: tuple[str, str, float, float]) -> None:
    assert feedback_fields(value, MSG_TS_MS) == want
    rec = parse_feedback(value, MSG_TS_MS)
    assert (rec.event_id, rec.arm_id, rec.reward, rec.timestamp) == want


@pytest.mark.parametrize(
    ("value", "reason", "names"),
    [
        (b"", "malformed", "empty"),
        (b"\xff\xff\xff", "malformed", "protobuf"),
        (b"{not json", "malformed", "JSON"),
        (b"[1, 2]", "malformed", "protobuf"),  # JSON only as an object
        (b'{"event_id": "e", "reward": 1}', "malformed", "arm_id"),
        (b'{"event_id": 7, "arm_id": "a", "reward": 1}', "malformed", "event_id 7"),
        (b'{"event_id": "e", "arm_id": "a", "reward": true}', "malformed", "reward True"),
        (b'{"event_id": "e", "arm_id": "a", "reward": "1"}', "malformed", "reward '1'"),
        (b'{"event_id": "e", "arm_id": "a", "reward": 1, "timestamp": "x"}', "malformed", "'x'"),
        (b'{"event_id": "", "arm_id": "a", "reward": 1}', "malformed", "required"),
        (b'{"event_id": "e", "arm_id": "a", "reward": NaN}', "invalid", "reward=nan"),
        (_pb(event_id="e", arm_id="a", reward=math.inf), "invalid", "reward=inf"),
        (
            b'{"event_id": "e", "arm_id": "a", "reward": 1, "timestamp": Infinity}',
            "invalid",
            "timestamp=inf",
        ),
    ],
)
def test_bad_messages_name_the_reason(value: bytes, reason: str, names: str) -> None:
    with pytest.raises(FeedbackParseError) as err:
        feedback_fields(value, MSG_TS_MS)
    assert err.value.reason == reason
    assert names in str(err.value)


@pytest.mark.parametrize("field", ["event_id", "arm_id", "reward"])
def test_a_missing_json_field_is_named_as_missing(field: str) -> None:
    body = {"event_id": "e", "arm_id": "a", "reward": 1}
    del body[field]
    with pytest.raises(FeedbackParseError) as err:
        feedback_fields(json.dumps(body).encode(), MSG_TS_MS)
    assert (err.value.reason, str(err.value)) == (
        "malformed",
        f"bad JSON feedback: missing field {field!r}",
    )


def test_a_reused_message_carries_nothing_over() -> None:
    """The learner parses record after record into one message object: a
    field missing from a record must not keep the previous record's value."""
    msg = log_pb2.FeedbackRecord()
    first = _pb(event_id="e1", arm_id="a1", reward=1.0, timestamp=99.0)
    second = _pb(event_id="e2", arm_id="a2", reward=0.0)  # no timestamp, reward 0
    assert feedback_fields(first, MSG_TS_MS, msg) == ("e1", "a1", 1.0, 99.0)
    assert feedback_fields(second, MSG_TS_MS, msg) == ("e2", "a2", 0.0, MSG_TS_MS / 1000)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


# generation speed depends on the machine's load, not on the code under test
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["event_id", "arm_id", "reward", "timestamp", "x"]), JSONISH, max_size=5
    )
)
def test_any_json_object_is_decoded_or_refused_with_a_reason(obj: dict[str, object]) -> None:
    value = json.dumps(obj).encode()
    try:
        ev, arm, reward, ts = feedback_fields(value, MSG_TS_MS)
    except FeedbackParseError as exc:
        assert exc.reason in ("malformed", "invalid")
        return
    assert isinstance(ev, str) and ev and isinstance(arm, str) and arm
    assert math.isfinite(reward) and math.isfinite(ts)
