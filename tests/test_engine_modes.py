"""The engine's two modes through its public API: the decision a caller gets
is the decision the log holds, in embedded and in Kafka mode."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import RecordingEventLog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bandit_engine import Context, Engine, ExperimentConfig, InvalidArgument, Unavailable
from bandit_engine.core.event_ids import event_time
from bandit_engine.store import SQLiteStore

ARMS = [f"arm-{i}" for i in range(6)] + ["x" * 128]
FLOATS = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


def _engine(event_log: Any = None, clock: Any = lambda: 1_700_000_000) -> Engine:
    e = Engine(SQLiteStore(":memory:"), seed=3, clock=clock, event_log=event_log)
    e.create_experiment(ExperimentConfig("exp", dim=5, dense_dim=4))
    e.add_arms("exp", [(a, {}) for a in ARMS])
    return e


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    contexts=st.lists(st.lists(FLOATS, min_size=4, max_size=4), min_size=1, max_size=4),
    k=st.integers(1, len(ARMS)),
)
def test_both_modes_serve_alike_and_log_what_they_served(
    contexts: list[list[float]], k: int
) -> None:
    """Same seed, same requests: the same rankings in either mode; the Kafka
    record (encoded and decoded by ``bandit_engine.stream``) holds exactly
    what was served, with float times although the clock gives ints."""
    log = RecordingEventLog()
    kafka, embedded = _engine(log), _engine()
    for dense in contexts:
        a = kafka.recommend("exp", Context(dense=dense), k=k)
        b = embedded.recommend("exp", Context(dense=dense), k=k)
        assert (a.arm_ids, a.scores.tolist(), a.propensities.tolist()) == (
            b.arm_ids,
            b.scores.tolist(),
            b.propensities.tolist(),
        )
        row = log.decision_rows()[-1]
        assert row.event_id == a.event_id and row.experiment_id == "exp"
        assert row.arms == a.arm_ids
        assert row.slots == tuple(ARMS.index(x) for x in a.arm_ids)
        assert row.scores == tuple(a.scores.tolist())
        assert row.propensities == tuple(a.propensities.tolist())
        assert isinstance(row.created_at, float) and row.created_at == 1.7e9
        assert row.deadline == 1.7e9 + 3600.0
        np.testing.assert_array_equal(row.x, [1.0, *dense])
    assert kafka.pending_count() == 0  # the learner owns the join in Kafka mode
    assert embedded.pending_count() == len(contexts)
    embedded.flush()
    assert [r.arms for r in embedded.store.decisions("exp")] == [
        r.arms for r in log.decision_rows()
    ]
    kafka.close()
    embedded.close()
    assert log.closed


def test_kafka_mode_feedback_is_queued_once_the_log_has_it() -> None:
    log = RecordingEventLog()
    e = _engine(log)
    d = e.recommend("exp", k=2)
    at = event_time(d.event_id)  # the decision's wall clock: checked at the edge
    assert at is not None
    r = e.feedback(d.event_id, d.arm_ids[1], 0.5, timestamp=at + 1)
    assert r.outcome == "queued"
    (fb,) = log.feedback_events()
    assert (fb.event_id, fb.arm_id, fb.reward, fb.timestamp) == (
        d.event_id,
        d.arm_ids[1],
        0.5,
        at + 1,
    )
    log.accept = False
    with pytest.raises(Unavailable, match=d.event_id):
        e.feedback(d.event_id, d.arm_ids[0], 1.0)
    e.recommend("exp", k=1)  # a decision the log cannot take is served and counted
    assert e.decisions_dropped == 1
    e.close()


def test_a_context_vector_and_its_features_give_the_same_decision() -> None:
    a, b = _engine(), _engine()
    dense = [0.5, -1.0, 2.0, 0.25]
    da = a.recommend("exp", Context(dense=dense), k=3)
    db = b.recommend("exp", np.array([1.0, *dense]), k=3)
    assert (da.arm_ids, da.scores.tolist()) == (db.arm_ids, db.scores.tolist())
    assert da != db  # the event ids differ
    with pytest.raises(InvalidArgument, match=r"shape \(3,\)"):
        a.recommend("exp", np.zeros(3))
    with pytest.raises(InvalidArgument, match="nan"):
        a.recommend("exp", np.array([1.0, math.nan, 0.0, 0.0, 0.0]))
    with pytest.raises(InvalidArgument, match=r"2000000\.0"):
        a.recommend("exp", np.array([1.0, 2e6, 0.0, 0.0, 0.0]))
    a.close()
    b.close()


def test_propensities_sum_to_one_over_every_arm(tmp_path: Path) -> None:
    e = Engine(SQLiteStore(tmp_path / "s.db"), seed=1)
    e.create_experiment(ExperimentConfig("exp", dim=5, dense_dim=4, propensity_draws=999))
    e.add_arms("exp", [(a, {}) for a in ARMS])
    d = e.recommend("exp", Context(dense=[0.1, 0.2, 0.3, 0.4]), k=len(ARMS))
    assert math.isclose(float(d.propensities.sum()), 1.0, abs_tol=1e-12)
    # counted over draws + 1 (the served draw): multiples of 1/1000, the top one > 0
    assert np.allclose(d.propensities * 1000, np.round(d.propensities * 1000))
    assert d.propensities[0] > 0
    e.close()
