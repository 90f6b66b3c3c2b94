"""The Recommend wire path (``fastpath``, ``Engine.recommend_wire``): the same
answers, draws and state changes as the message path, and every request it
does not read exactly as protobuf would left to the message path."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serverutil import make_experiment, start_server

from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine._proto.bandit.v1 import log_pb2
from bandit_engine.core import fastpath
from bandit_engine.core.config import ExperimentConfig
from bandit_engine.core.engine import Context, Engine
from bandit_engine.server import SERVICE_NAME, BanditServicer, ServerSettings, add_servicer
from bandit_engine.store import SQLiteStore
from bandit_engine.stream import KafkaSettings

ARMS = [f"arm-{i}" for i in range(6)] + ["x" * 128]  # the longest id: a 2-byte length
FLOATS = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


def engine(policy: str = "lin_ts_disjoint", intercept: bool = True, **cfg: Any) -> Engine:
    e = Engine(SQLiteStore(":memory:"), seed=11, clock=lambda: 1.0e9)
    spec = {"dim": 7, "dense_dim": 4, "intercept": intercept, **cfg}
    e.create_experiment(ExperimentConfig("exp", policy=policy, **spec))  # type: ignore[arg-type]
    e.add_arms("exp", [(a, {}) for a in ARMS])
    return e


def train(e: Engine, seed: int) -> None:
    """The same rewards on the same decisions, whatever the engine's event ids."""
    rng = np.random.default_rng(seed)
    for _ in range(40):
        d = e.recommend("exp", Context(dense=rng.normal(size=4).tolist()), k=2)
        e.feedback(d.event_id, d.arm_ids[0], float(rng.random() < 0.4))


def request(dense: list[float], k: int = 0, exp: str = "exp") -> pb.RecommendRequest:
    return pb.RecommendRequest(experiment_id=exp, context=pb.Features(dense=dense), k=k)


def state(e: Engine) -> tuple[Any, ...]:
    """What a refused request must leave as it was."""
    exp = e._exps["exp"]
    pol = exp.policy
    return (
        dict(exp.counters),
        str(exp.rng.bit_generator.state),
        getattr(pol, "_zpos", None),
        e.pending_count(),
        exp.journal.tail,
        exp.version,
    )


@pytest.mark.parametrize(
    ("policy", "intercept"), [("lin_ts_disjoint", True), ("logistic_ts", False)]
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    contexts=st.lists(
        st.lists(FLOATS, min_size=4, max_size=4) | st.just([]), min_size=1, max_size=6
    ),
    ks=st.lists(st.integers(0, len(ARMS)), min_size=6, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_wire_path_answers_as_the_message_path(
    policy: str, intercept: bool, contexts: list[list[float]], ks: list[int], seed: int
) -> None:
    slow, fast = engine(policy, intercept), engine(policy, intercept)
    train(slow, seed)
    train(fast, seed)
    s_slow = BanditServicer(slow)
    for dense, k in zip(contexts, ks, strict=False):
        req = request(dense, k)
        want = s_slow.Recommend.__wrapped__(s_slow, req, None)  # type: ignore[attr-defined]
        body = fast.recommend_wire(req.SerializeToString())
        assert body is not None, "a clean request took the message path"
        got = pb.RecommendResponse.FromString(body)
        assert got.event_id != want.event_id and len(got.event_id) == 32
        got.event_id = want.event_id
        assert got == want
        assert got.SerializeToString() == want.SerializeToString()
    # the same state after: posteriors, draws, counters, and the logged rows
    assert state(slow)[:3] == state(fast)[:3]
    slow.decision_log.flush()
    fast.decision_log.flush()
    rows_slow = list(slow.store.decisions("exp"))
    rows_fast = list(fast.store.decisions("exp"))
    assert len(rows_slow) == len(rows_fast)
    for a, b in zip(rows_slow, rows_fast, strict=True):
        assert (a.arms, a.scores, a.propensities, a.candidates, a.model_version) == (
            b.arms,
            b.scores,
            b.propensities,
            b.candidates,
            b.model_version,
        )
        np.testing.assert_array_equal(a.x, b.x)
    for arm in ARMS:
        assert slow.arm_info("exp", arm) == fast.arm_info("exp", arm)
    slow.close()
    fast.close()


def test_wire_path_joins_feedback_like_the_message_path() -> None:
    e = engine()
    resp = pb.RecommendResponse.FromString(
        e.recommend_wire(request([0.1, 0.2, 0.3, 0.4], 3).SerializeToString()) or b""
    )
    before = e.arm_info("exp", resp.arms[0].arm_id)
    assert e.feedback(resp.event_id, resp.arms[0].arm_id, 1.0).outcome == "applied"
    assert e.feedback(resp.event_id, resp.arms[0].arm_id, 1.0).outcome == "duplicate"
    assert e.arm_info("exp", resp.arms[0].arm_id).pulls == before.pulls + 1
    e.close()


NAN = float("nan")
LEFT_TO_MESSAGES = {
    "candidates": pb.RecommendRequest(
        experiment_id="exp", context=pb.Features(dense=[0.0] * 4), candidates=["arm-1"]
    ),
    "numeric feature": pb.RecommendRequest(
        experiment_id="exp", context=pb.Features(dense=[0.0] * 4, numeric={"n": 1.0})
    ),
    "categorical feature": pb.RecommendRequest(
        experiment_id="exp", context=pb.Features(categorical=["c=1"])
    ),
    "unknown experiment": request([0.0] * 4, exp="nope"),
    "dense too short": request([0.0] * 3),
    "dense NaN": request([0.0, NAN, 0.0, 0.0]),
    "dense inf": request([0.0, 0.0, float("inf"), 0.0]),
    "dense too large": request([0.0, 0.0, 0.0, 2e6]),
    "k above the arms": request([0.0] * 4, k=len(ARMS) + 1),
    "k above the limit": request([0.0] * 4, k=10_000),
}


@pytest.mark.parametrize("name", list(LEFT_TO_MESSAGES))
def test_requests_it_does_not_take_change_nothing(name: str) -> None:
    e = engine()
    train(e, 1)
    before = state(e)
    assert e.recommend_wire(LEFT_TO_MESSAGES[name].SerializeToString()) is None
    assert state(e) == before
    e.close()


@pytest.mark.parametrize("policy", ["beta_ts", "lin_ts_shared"])
def test_policies_without_the_unchecked_decide_take_the_message_path(policy: str) -> None:
    e = engine(policy, **({"dense_dim": 0} if policy == "beta_ts" else {}))
    raw = request([] if policy == "beta_ts" else [0.0] * 4).SerializeToString()
    assert e.recommend_wire(raw) is None
    e.close()


# --------------------------------------------------------- the request reader
def fields(raw: bytes) -> tuple[str, list[float], int] | None:
    """What the scanner read, or None if it left the request to protobuf."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    ok, es, ee, ds, dn, k = fastpath.scan_recommend(buf)
    if not ok:
        return None
    return raw[es:ee].decode(), list(struct.unpack(f"<{dn}d", raw[ds : ds + 8 * dn])), k


def bits(xs: list[float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in xs]


MESSAGES = st.builds(
    pb.RecommendRequest,
    experiment_id=st.text(max_size=12),
    context=st.builds(
        pb.Features,
        dense=st.lists(st.floats(width=64), max_size=5),
        numeric=st.dictionaries(st.text(max_size=3), st.floats(), max_size=2) | st.just({}),
        categorical=st.lists(st.text(max_size=3), max_size=2) | st.just([]),
    )
    | st.none(),
    candidates=st.lists(st.text(max_size=3), max_size=2) | st.just([]),
    k=st.integers(0, 2**32 - 1),
)


@settings(max_examples=400, deadline=None)
@given(msg=MESSAGES, cut=st.integers(0, 200), junk=st.binary(max_size=6), where=st.integers(0, 200))
def test_reader_agrees_with_protobuf(
    msg: pb.RecommendRequest, cut: int, junk: bytes, where: int
) -> None:
    clean = msg.SerializeToString()
    simple = not msg.candidates and not msg.context.numeric and not msg.context.categorical
    got = fields(clean)
    if simple:  # every clean simple request is read by the kernel
        assert got is not None
    for raw in (clean, clean[: cut % (len(clean) + 1)], clean[:where] + junk + clean[where:]):
        got = fields(raw)
        if got is None:
            continue
        parsed = pb.RecommendRequest.FromString(raw)  # a request it read must parse
        exp_id, dense, k = got
        assert exp_id == parsed.experiment_id
        assert bits(dense) == bits(list(parsed.context.dense))
        assert k == parsed.k
        assert not parsed.candidates and not parsed.context.numeric
        assert not parsed.context.categorical


def test_reader_leaves_repeated_and_unpacked_fields_to_protobuf() -> None:
    one = request([1.0, 2.0], 2).SerializeToString()
    assert fields(one) is not None
    assert fields(one + b"\x20\x03") is None  # k twice: protobuf keeps the last
    assert fields(one + b"\x0a\x01e") is None  # experiment id twice
    unpacked = (
        b"\x0a\x03exp\x12\x12" + b"\x09" + struct.pack("<d", 1.0) + b"\x09" + struct.pack("<d", 2.0)
    )
    assert pb.RecommendRequest.FromString(unpacked).context.dense == [1.0, 2.0]
    assert fields(unpacked) is None
    assert fields(b"\x0a\x02\xc3\x28") is None  # invalid UTF-8 in the id
    assert fields(b"\x20\x80\x80\x80\x80\x10") is None  # k of 2^32: not a uint32


@pytest.mark.parametrize(
    ("name", "raw", "ok"),
    [
        ("id key in 5 bytes", b"\x8a\x80\x80\x80\x00\x03exp", True),
        ("id key in 6 bytes", b"\x8a\x80\x80\x80\x80\x00\x03exp", False),
        ("id length in 6 bytes", b"\x0a\x83\x80\x80\x80\x80\x00exp", False),
        ("k key in 6 bytes", b"\x0a\x03exp\xa0\x80\x80\x80\x80\x00\x02", False),
        ("k value in 10 bytes", b"\x0a\x03exp\x20\x82" + b"\x80" * 8 + b"\x00", True),
        ("dense length in 6 bytes", b"\x12\x07\x0a\x81\x80\x80\x80\x80\x00", False),
    ],
)
def test_overlong_varints_are_read_as_protobuf_reads_them(name: str, raw: bytes, ok: bool) -> None:
    """protobuf refuses a key or a length of more than 5 bytes, and takes
    values of up to 10 (found in review: the reader took them all)."""
    try:
        pb.RecommendRequest.FromString(raw)
        parsed = True
    except Exception:
        parsed = False
    assert parsed == ok
    assert (fields(raw) is not None) == ok


def test_default_rpc_threads_depend_on_what_a_feedback_waits_for() -> None:
    assert ServerSettings(state_dir=None).workers == 2  # the GIL only
    assert ServerSettings(mysql_dsn="mysql://u@h/db").workers == 16  # MySQL's commit
    kafka = KafkaSettings(bootstrap="k:9092")
    assert ServerSettings(mysql_dsn="mysql://u@h/db", kafka=kafka).workers == 16  # the broker
    assert ServerSettings(max_workers=5).workers == 5


def test_decision_rows_in_either_encoding_load(tmp_path: Path) -> None:
    """Scores and propensities as JSON text (written before schema 3, and by
    MySQL) and as float64 blobs (SQLite now) read back the same."""
    from bandit_engine.store._codec import DECISION_COLS, decision_params
    from bandit_engine.store.base import DecisionRow

    store = SQLiteStore(tmp_path / "state.db")
    rows = [
        DecisionRow(
            f"e{i}", "exp", 1.0, 2.0, 3, np.arange(3.0), ("a", "b"), (0.1, -2.5), (0.9, 0.0)
        )
        for i in range(2)
    ]
    store.log_decisions(rows[:1])
    marks = ", ".join("?" * len(DECISION_COLS.split(",")))
    with store._tx() as db:
        db.execute(
            f"INSERT INTO decisions ({DECISION_COLS}) VALUES ({marks})", decision_params(rows[1])
        )
    kinds = [r[0] for r in store._query("SELECT typeof(scores) FROM decisions ORDER BY seq")]
    assert kinds == ["blob", "text"]
    back = list(store.decisions("exp"))
    assert [(r.scores, r.propensities) for r in back] == [((0.1, -2.5), (0.9, 0.0))] * 2
    store.close()


def test_response_writer_matches_protobuf_for_zeros_and_long_ids() -> None:
    eid = "0123456789abcdef0123456789abcdef"
    ids = ["a", "x" * 128, "b"]
    enc = [a.encode() for a in ids]
    off = np.concatenate(([0], np.cumsum([len(b) for b in enc]))).astype(np.int64)
    table = np.frombuffer(b"".join(enc), dtype=np.uint8)
    slots = np.array([2, 0, 1], dtype=np.int64)
    order = np.array([1, 2, 0], dtype=np.int64)
    scores = np.array([0.0, -0.0, -3.5])
    counts = np.array([0, 5, 0], dtype=np.int64)
    for version in (0, 1, 2**40):
        body, shown, props = fastpath.write_response(
            np.frombuffer(eid.encode(), np.uint8),
            slots,
            order,
            scores,
            counts,
            9,
            table,
            off,
            version,
        )
        assert shown.tolist() == [0, 1, 2]
        assert props.tolist() == [0.6, 0.0, 0.0]  # the served draw counts for the top arm
        want = pb.RecommendResponse(
            event_id=eid,
            arms=[
                pb.RankedArm(arm_id=ids[s], score=sc, propensity=p)
                for s, sc, p in zip(shown.tolist(), scores.tolist(), props.tolist(), strict=True)
            ],
            model_version=version,
            propensity_kind=pb.FIRST_SLOT,
        )
        assert pb.RecommendResponse.FromString(body.tobytes()) == want
        assert body.tobytes() == want.SerializeToString()


# ------------------------------------------------------------ through the wire
def test_registration_covers_every_rpc() -> None:
    seen: dict[str, Any] = {}

    class Server:
        def add_generic_rpc_handlers(self, handlers: Any) -> None:
            pass

        def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
            seen.update(handlers)
            assert service == SERVICE_NAME

    add_servicer(BanditServicer(engine()), Server())
    methods = {m.name for m in pb.DESCRIPTOR.services_by_name["BanditService"].methods}
    assert set(seen) == methods
    assert all(h.request_deserializer is None for h in seen.values())  # parsed in the handler
    assert seen["Recommend"].response_serializer is None  # RecommendWire answers bytes
    assert seen["Feedback"].response_serializer == pb.FeedbackResponse.SerializeToString


def test_server_answers_dense_requests_and_refuses_bad_ones(tmp_path: Path) -> None:
    r = start_server(tmp_path)
    try:
        make_experiment(r.stub, dim=3, dense_dim=2)
        resp = r.stub.Recommend(request([0.5, -1.0], 2, exp="trips"))
        assert len(resp.arms) == 2 and resp.propensity_kind == pb.FIRST_SLOT
        every = r.stub.Recommend(request([0.5, -1.0], 4, exp="trips"))  # all 4 arms
        assert math.isclose(sum(a.propensity for a in every.arms), 1.0, abs_tol=1e-12)
        before = r.engine.get_experiment("trips").counters["decisions"]
        cases = [
            (request([NAN, 0.0], exp="trips"), grpc.StatusCode.INVALID_ARGUMENT, "dense[0] is nan"),
            (request([0.0], exp="trips"), grpc.StatusCode.INVALID_ARGUMENT, "dense_dim=2"),
            (request([0.0, 0.0], 99, exp="trips"), grpc.StatusCode.INVALID_ARGUMENT, "k=99"),
            (request([0.0, 0.0], exp="nope"), grpc.StatusCode.NOT_FOUND, "'nope'"),
        ]
        for req, code, needle in cases:
            with pytest.raises(grpc.RpcError) as err:
                r.stub.Recommend(req)
            assert err.value.code() == code, req
            assert needle in (err.value.details() or "")
        raw = r.channel.unary_unary(f"/{SERVICE_NAME}/Recommend")
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\x0a\xff")  # a length past the end
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "malformed RecommendRequest" in (err.value.details() or "")
        for method in ("Feedback", "GetArm", "CreateExperiment"):  # every RPC, not only Recommend
            with pytest.raises(grpc.RpcError) as err:
                r.channel.unary_unary(f"/{SERVICE_NAME}/{method}")(b"\x0a\xff")
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
            assert "malformed" in (err.value.details() or "")
        assert r.engine.get_experiment("trips").counters["decisions"] == before
    finally:
        r.stop()


# ------------------------------------------------------------------ Kafka mode
class Producer:
    """What the engine's Kafka mode calls: records are kept, not sent."""

    def __init__(self) -> None:
        self.settings = KafkaSettings(bootstrap="unused:9092")
        self.records: list[tuple[str, bytes, bytes]] = []

    def publish(self, topic: str, key: bytes, value: bytes) -> bool:
        self.records.append((topic, key, value))
        return True

    def close(self) -> None:
        pass


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    contexts=st.lists(st.lists(FLOATS, min_size=4, max_size=4), min_size=1, max_size=4),
    k=st.integers(1, len(ARMS)),
)
def test_kafka_mode_logs_the_record_the_message_path_logs(
    contexts: list[list[float]], k: int
) -> None:
    engines = []
    for _ in range(2):
        p = Producer()
        # an int clock: the record must still carry doubles (found in review)
        e = Engine(SQLiteStore(":memory:"), seed=3, clock=lambda: 1_700_000_000, producer=p)  # type: ignore[arg-type]
        e.create_experiment(ExperimentConfig("exp", dim=5, dense_dim=4))
        e.add_arms("exp", [(a, {}) for a in ARMS])
        engines.append((e, p))
    (slow, p_slow), (fast, p_fast) = engines
    for dense in contexts:
        d = slow.recommend("exp", Context(dense=dense), k=k)
        body = fast.recommend_wire(request(dense, k).SerializeToString())
        assert body is not None
        got = pb.RecommendResponse.FromString(body)
        assert [a.arm_id for a in got.arms] == list(d.arm_ids)
        assert [a.propensity for a in got.arms] == list(d.propensities)
        (t1, _, v1), (t2, k2, v2) = p_slow.records[-1], p_fast.records[-1]
        assert t1 == t2 == "bandit.decisions"
        assert k2 == got.event_id.encode()
        want = log_pb2.DecisionRecord.FromString(v1)
        have = log_pb2.DecisionRecord.FromString(v2)
        assert have.event_id == got.event_id
        have.event_id = want.event_id
        assert have.created_at == 1.7e9 and have.deadline == 1.7e9 + 3600.0
        assert have == want
        assert have.SerializeToString() == want.SerializeToString()
    assert fast.pending_count() == 0  # the learner owns the join in Kafka mode
    slow.close()
    fast.close()
