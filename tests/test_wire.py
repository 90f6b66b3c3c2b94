"""The Numba readers of record batches and log messages agree with aiokafka
and protobuf (``bandit_engine.stream.wire``), and take the common case themselves."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
from aiokafka.record._crc32c import crc as crc32c_reference
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit_engine._proto.bandit.v1 import log_pb2
from bandit_engine.policies.base import MAX_ABS_FEATURE
from bandit_engine.stream import wire
from bandit_engine.stream.fetch import Chunk

Rec = tuple[int, int, bytes | None, bytes | None]  # offset, timestamp ms, key, value


def batch_bytes(
    base: int, recs: list[tuple[int, bytes | None, bytes | None]], compression: int = 0
) -> bytes:
    """One v2 batch (aiokafka's builder) at base offset ``base``."""
    b = DefaultRecordBatchBuilder(2, compression, 0, -1, -1, -1, 1 << 24)
    for i, (ts, key, value) in enumerate(recs):
        b.append(i, ts, key, value, [("h", b"v")] if i % 3 == 1 else [])
    out = bytearray(b.build())
    out[0:8] = struct.pack(">q", base)  # not covered by the CRC
    return bytes(out)


def chunk_of(raw: bytes, fetch_offset: int = 0) -> Chunk:
    buf = np.frombuffer(raw, dtype=np.uint8)
    out = np.empty((max(1, 4 * len(raw)), wire.REC_COLS), dtype=np.int64)
    n, pos, _, status = wire.read_batches(buf, 0, fetch_offset, out, wire._CRC)
    assert status == wire.BATCH_OK and pos == len(raw), (status, pos, len(raw))
    return Chunk(raw, buf, out[:n])


def records_chunk(recs: list[Any]) -> Chunk:
    """A chunk of test records (``offset``, ``key``, ``value``, ``timestamp``), one batch."""
    base = recs[0].offset
    assert [m.offset for m in recs] == list(range(base, base + len(recs)))
    raw = batch_bytes(base, [(m.timestamp, m.key, m.value) for m in recs])
    return chunk_of(raw, base)


def aiokafka_rows(raw: bytes, fetch_offset: int) -> list[Rec]:
    mr = MemoryRecords(raw)
    out = []
    while mr.has_next():
        batch = mr.next_batch()
        if batch is None:
            break
        for r in batch:
            if r.offset >= fetch_offset:
                out.append((r.offset, r.timestamp, r.key, r.value))
    return out


def chunk_rows(ch: Chunk) -> list[Rec]:
    return [(int(r[0]), int(r[1]), ch.key(i), ch.value(i)) for i, r in enumerate(ch.recs)]


maybe_bytes = st.one_of(st.none(), st.binary(max_size=40))
batches = st.lists(
    st.lists(st.tuples(st.integers(0, 2**41), maybe_bytes, maybe_bytes), min_size=1, max_size=8),
    min_size=1,
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(batches, st.integers(0, 3), st.integers(0, 1000), st.integers(0, 30))
def test_read_batches_agrees_with_aiokafka(
    groups: list[Any], gap: int, base: int, skip: int
) -> None:
    raw = b""
    off = base
    for g in groups:
        raw += batch_bytes(off, g)
        off += len(g) + gap  # compacted-away offsets between batches
    fetch_offset = base + skip
    buf = np.frombuffer(raw, dtype=np.uint8)
    out = np.empty((64, wire.REC_COLS), dtype=np.int64)
    n, pos, nxt, status = wire.read_batches(buf, 0, fetch_offset, out, wire._CRC)
    assert status == wire.BATCH_OK and pos == len(raw)
    assert chunk_rows(Chunk(raw, buf, out[:n])) == aiokafka_rows(raw, fetch_offset)
    assert nxt == max(fetch_offset, off - gap)
    # a fetch cut short in its last batch: the whole batches only, the rest next time
    cut = raw[: len(raw) - 1]
    b2 = np.frombuffer(cut, dtype=np.uint8)
    n2, pos2, _, status2 = wire.read_batches(b2, 0, fetch_offset, out, wire._CRC)
    assert status2 == wire.BATCH_OK and pos2 == len(raw) - len(batch_bytes(0, groups[-1]))
    assert n2 == sum(
        1 for r in aiokafka_rows(raw, fetch_offset) if r[0] < off - gap - len(groups[-1])
    )


def test_read_batches_stops_at_compressed_and_corrupt_batches() -> None:
    plain = batch_bytes(0, [(1, b"k", b"v")] * 3)
    gz = batch_bytes(3, [(1, b"k", b"v" * 50)] * 3, compression=1)
    out = np.empty((64, wire.REC_COLS), dtype=np.int64)
    raw = plain + gz
    n, pos, nxt, status = wire.read_batches(np.frombuffer(raw, np.uint8), 0, 0, out, wire._CRC)
    assert (n, pos, nxt, status) == (3, len(plain), 3, wire.BATCH_COMPRESSED)
    bad = bytearray(plain + plain)
    bad[len(plain) + 70] ^= 0xFF  # a flipped byte in the second batch
    n, pos, nxt, status = wire.read_batches(
        np.frombuffer(bytes(bad), np.uint8), 0, 0, out, wire._CRC
    )
    assert (n, pos, status) == (3, len(plain), wire.BATCH_UNKNOWN)
    # a batch larger than the rows given: refused, not cut
    n, pos, nxt, status = wire.read_batches(
        np.frombuffer(plain, np.uint8), 0, 0, out[:2], wire._CRC
    )
    assert (n, pos, status) == (0, 0, wire.BATCH_LARGE)
    # two batches, room for one: the first, then "call again"
    two = plain + batch_bytes(3, [(1, b"k", b"v")] * 3)
    n, pos, nxt, status = wire.read_batches(np.frombuffer(two, np.uint8), 0, 0, out[:4], wire._CRC)
    assert (n, pos, nxt, status) == (3, len(plain), 3, wire.BATCH_FULL)


def test_control_batches_are_skipped() -> None:
    ctl = bytearray(batch_bytes(5, [(1, b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00")]))
    ctl[21:23] = struct.pack(">h", 0x20 | 0x10)  # control, transactional
    ctl[17:21] = struct.pack(">I", crc32c_reference(bytes(ctl[21:])))
    raw = batch_bytes(0, [(1, b"k", b"v")] * 5) + bytes(ctl) + batch_bytes(6, [(1, b"k", b"w")])
    ch = chunk_of(raw)
    assert [(r[0], r[3]) for r in chunk_rows(ch)] == [(i, b"v") for i in range(5)] + [(6, b"w")]


@given(st.binary(max_size=300))
def test_crc32c_agrees_with_aiokafka(data: bytes) -> None:
    buf = np.frombuffer(b"xx" + data, dtype=np.uint8)
    assert int(wire.crc32c(buf, 2, len(data) + 2, wire._CRC)) == crc32c_reference(data)


# ------------------------------------------------------------------ messages
text = st.text(max_size=12)
finite_or_not = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e300]),
)


@st.composite
def decision_messages(draw: Any) -> tuple[bytes, bool]:
    """A serialized DecisionRecord (sometimes x as doubles, sometimes
    mangled), and whether protobuf itself wrote it with x_f64 set."""
    xs = draw(st.lists(finite_or_not, max_size=6))
    as_doubles = draw(st.booleans()) and draw(st.booleans())
    n_shown = draw(st.integers(0, 5))
    rec = log_pb2.DecisionRecord(
        event_id=draw(text),
        experiment_id=draw(text),
        created_at=draw(finite_or_not),
        deadline=draw(finite_or_not),
        model_version=draw(st.integers(0, 2**64 - 1)),
        arms=draw(st.lists(text, min_size=n_shown, max_size=n_shown)),
        slots=draw(st.lists(st.integers(0, 2**32 - 1), min_size=n_shown, max_size=n_shown)),
        scores=draw(st.lists(finite_or_not, max_size=3)),
        propensities=draw(st.lists(st.floats(0, 1), max_size=3)),
        candidates=draw(st.lists(text, max_size=3)),
    )
    if as_doubles:
        rec.x.extend(xs)
    else:
        rec.x_f64 = np.asarray(xs, dtype="<f8").tobytes() + draw(st.sampled_from([b"", b"\x01"]))
    body = rec.SerializeToString()
    if draw(st.booleans()) and body:  # cut or flip a byte: protobuf may or may not accept it
        i = draw(st.integers(0, len(body) - 1))
        body = (
            body[:i] if draw(st.booleans()) else body[:i] + bytes([body[i] ^ 0x5A]) + body[i + 1 :]
        )
        return body, False
    return body, bool(rec.x_f64)


def _single(value: bytes) -> Chunk:
    return chunk_of(batch_bytes(0, [(1, b"k", value)]))


def _dec(value: bytes) -> tuple[list[int], list[float], list[int]]:
    ch = _single(value)
    out = np.empty((1, wire.DEC_COLS), dtype=np.int64)
    times = np.empty((1, 2))
    slots = np.empty(16, dtype=np.int64)
    used = wire.scan_decisions(ch.buf, ch.recs, 1, out, times, slots, MAX_ABS_FEATURE)
    row = out[0].tolist()
    # spans relative to the value
    v0 = int(ch.recs[0, 4])
    for c in (1, 2, 3, 4, 5, 6):
        row[c] -= v0 if row[0] else 0
    return row, times[0].tolist(), slots[:used].tolist()


@settings(max_examples=400, deadline=None)
@given(decision_messages())
def test_scan_decisions_agrees_with_protobuf(msg: tuple[bytes, bool]) -> None:
    body, clean = msg
    (ok, e0, e1, p0, p1, x0, x1, k0, kn, x_ok), (created, deadline), slots = _dec(body)
    if clean and len(slots) <= 16:
        assert ok == 1  # the common case is read here, not handed to protobuf
    if not ok:
        return
    try:
        ev, exp = body[e0:e1].decode(), body[p0:p1].decode()
    except UnicodeDecodeError:
        return  # the learner hands it to protobuf, which refuses it
    rec = log_pb2.DecisionRecord()
    rec.ParseFromString(body)  # accepted by protobuf too
    assert (ev, exp) == (rec.event_id, rec.experiment_id)
    assert body[x0:x1] == rec.x_f64 and x1 > x0
    assert struct.pack("<dd", created, deadline) == struct.pack("<dd", rec.created_at, rec.deadline)
    assert slots[k0 : k0 + kn] == list(rec.slots)
    xv = np.frombuffer(rec.x_f64[: len(rec.x_f64) // 8 * 8], dtype="<f8")
    expect_ok = len(rec.x_f64) % 8 == 0 and bool(np.all(np.abs(xv) <= MAX_ABS_FEATURE))
    assert bool(x_ok) == expect_ok


def test_scan_decisions_takes_many_in_one_call() -> None:
    bodies = []
    for i in range(50):
        bodies.append(
            log_pb2.DecisionRecord(
                event_id=f"ev{i}",
                experiment_id="e",
                created_at=float(i),
                deadline=i + 0.5,
                x_f64=np.arange(3, dtype="<f8").tobytes(),
                slots=list(range(i % 7)),
            ).SerializeToString()
        )
    ch = chunk_of(batch_bytes(100, [(1, None, b) for b in bodies]), 100)
    out = np.empty((50, wire.DEC_COLS), dtype=np.int64)
    times = np.empty((50, 2))
    slots = np.empty(50 * 16, dtype=np.int64)
    used = wire.scan_decisions(ch.buf, ch.recs, 50, out, times, slots, MAX_ABS_FEATURE)
    assert used == sum(i % 7 for i in range(50))
    for i, row in enumerate(out.tolist()):
        assert row[0] == 1 and ch.raw[row[1] : row[2]] == f"ev{i}".encode()
        assert slots[row[7] : row[7] + row[8]].tolist() == list(range(i % 7))
        assert times[i].tolist() == [float(i), i + 0.5]


@st.composite
def feedback_messages(draw: Any) -> bytes:
    kind = draw(st.sampled_from(["pb", "pb", "pb", "json", "junk"]))
    if kind == "json":
        return b'{"event_id": "e", "arm_id": "a", "reward": 1}'
    if kind == "junk":
        return draw(st.binary(max_size=30))
    body = log_pb2.FeedbackRecord(
        event_id=draw(text),
        arm_id=draw(text),
        reward=draw(finite_or_not),
        timestamp=draw(finite_or_not),
    ).SerializeToString()
    if draw(st.booleans()) and body:
        i = draw(st.integers(0, len(body) - 1))
        body = body[:i] + bytes([body[i] ^ 0x33]) + body[i + 1 :]
    return body


@settings(max_examples=400, deadline=None)
@given(feedback_messages())
def test_scan_feedback_agrees_with_protobuf(body: bytes) -> None:
    ch = _single(body)
    out = np.empty((1, wire.FB_COLS), dtype=np.int64)
    nums = np.empty((1, 2))
    wire.scan_feedback(ch.buf, ch.recs, 1, out, nums)
    ok, e0, e1, a0, a1 = out[0].tolist()
    rec = log_pb2.FeedbackRecord()
    try:
        rec.ParseFromString(body)
        parsed = not body.startswith(b"{")
    except Exception:
        parsed = False
    good = (
        parsed
        and bool(rec.event_id)
        and bool(rec.arm_id)
        and math.isfinite(rec.reward)
        and math.isfinite(rec.timestamp)
    )
    if good:
        assert ok == 1  # every valid protobuf reward is read here
    if not ok:
        return
    raw = ch.raw
    try:
        ev, arm = raw[e0:e1].decode(), raw[a0:a1].decode()
    except UnicodeDecodeError:
        return
    assert parsed and (ev, arm) == (rec.event_id, rec.arm_id)
    assert struct.pack("<dd", *nums[0].tolist()) == struct.pack("<dd", rec.reward, rec.timestamp)


@settings(max_examples=500)
@given(
    st.one_of(
        st.binary(max_size=12),
        st.text(max_size=6).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )
)
def test_utf8_check_agrees_with_python(data: bytes) -> None:
    try:
        data.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    assert wire._utf8(np.frombuffer(b"." + data, np.uint8), 1, len(data) + 1) == valid


def test_a_batch_of_more_records_than_a_chunk_is_read_whole(monkeypatch: Any) -> None:
    """A batch bigger than ``fetch.CHUNK_ROWS`` gets a table of its size, not
    aiokafka's record-by-record reading."""
    from aiokafka.consumer import fetcher as F

    from bandit_engine.stream import fetch

    assert fetch.install()
    monkeypatch.setattr(fetch, "CHUNK_ROWS", 4)
    raw = batch_bytes(0, [(1, b"k", b"v%d" % i) for i in range(10)]) + batch_bytes(
        10, [(1, None, b"w")] * 3
    )

    class TP:
        topic, partition = "t", 0

    mr = F.MemoryRecords(raw)
    pr = F.PartitionRecords(TP(), mr, [], 2, None, fetch.raw_values, True, 0)
    items = list(pr)
    assert all(type(c) is Chunk for c in items)
    rows = [r for c in items for r in chunk_rows(c)]
    assert [r[0] for r in rows] == list(range(2, 13))
    assert rows[0][3] == b"v2" and rows[-1][3] == b"w"
    assert pr.next_fetch_offset == 13


def test_other_consumers_iterate_aiokafkas_own_generator() -> None:
    """Consumers without ``raw_values`` (the bench's raw peer, say) get
    aiokafka's records from aiokafka's own generator: no step added per record."""
    from aiokafka.consumer import fetcher as F

    from bandit_engine.stream import fetch

    assert fetch.install()

    class TP:
        topic, partition = "t", 0

    raw = batch_bytes(0, [(1, b"k", b"v%d" % i) for i in range(5)])
    pr = F.PartitionRecords(TP(), F.MemoryRecords(raw), [], 0, None, None, True, 0)
    base: Any = type(pr).__mro__[1]
    assert type(pr) is not base  # installed
    assert pr._records_iterator.gi_code is base._unpack_records.__code__
    assert [m.value for m in pr] == [b"v%d" % i for i in range(5)]


def test_packed_doubles_of_a_broken_length_go_to_protobuf() -> None:
    """``scores`` / ``propensities`` packed with a length that is not whole
    doubles: protobuf calls the message corrupt, so the kernel must not take it
    (found in review: the fast path applied its rewards)."""
    base = log_pb2.DecisionRecord(
        event_id="e", experiment_id="x", x_f64=bytes(16), slots=[0]
    ).SerializeToString()
    for field in (9, 10):
        for length, ok in ((7, 0), (8, 1), (16, 1)):
            body = base + bytes([field << 3 | 2, length]) + bytes(length)
            row, _, _ = _dec(body)
            assert row[0] == ok, (field, length)
            if not ok:
                try:
                    log_pb2.DecisionRecord().ParseFromString(body)
                    raise AssertionError("protobuf accepted it")
                except Exception as exc:
                    assert "corrupt" in str(exc).lower() or "Error" in type(exc).__name__


def test_a_whole_batch_shorter_than_a_v2_header_goes_to_aiokafka() -> None:
    """A complete message of an older format at the end of a fetch, shorter
    than a v2 header: handed on, not left as "incomplete" for ever (found in
    review: the partition was fetched again and again)."""
    plain = batch_bytes(0, [(1, b"k", b"v")] * 2)
    tiny = struct.pack(">qi", 2, 18) + bytes(18)  # offset 2, 18 bytes: whole
    raw = plain + tiny
    out = np.empty((8, wire.REC_COLS), dtype=np.int64)
    n, pos, nxt, status = wire.read_batches(np.frombuffer(raw, np.uint8), 0, 0, out, wire._CRC)
    assert (n, pos, nxt, status) == (2, len(plain), 2, wire.BATCH_UNKNOWN)
    cut = raw[:-1]  # the same, cut by the fetch size: wait for the next fetch
    n, pos, nxt, status = wire.read_batches(np.frombuffer(cut, np.uint8), 0, 0, out, wire._CRC)
    assert (n, pos, status) == (2, len(plain), wire.BATCH_OK)


def test_a_slot_key_without_its_value_goes_to_protobuf() -> None:
    body = log_pb2.DecisionRecord(event_id="e", x_f64=bytes(16)).SerializeToString()
    assert _dec(body + bytes([8 << 3 | 0]))[0][0] == 0  # cut after the key
    assert _dec(body + bytes([8 << 3 | 0, 3]))[0][0] == 1
    assert _dec(body + bytes([8 << 3 | 0, 3]))[2] == [3]


def test_keys_and_lengths_over_5_bytes_go_to_protobuf() -> None:
    """protobuf calls a key or a length of more than 5 varint bytes corrupt
    (values may take 10); the readers must not take such a message (found
    in review)."""
    body = log_pb2.DecisionRecord(event_id="e", x_f64=bytes(16)).SerializeToString()
    assert _dec(body)[0][0] == 1
    for extra in (
        bytes([0x88, 0x80, 0x80, 0x80, 0x80, 0x00, 3]),  # slot key (8, varint) in 6 bytes
        bytes([0x8A, 0x80, 0x80, 0x80, 0x00, 1, 0x41]),  # event_id key in 5 bytes: fine
        bytes([0x3A, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00, 0x41]),  # arm length in 6 bytes
    ):
        five = extra[1:5] == bytes([0x80, 0x80, 0x80, 0x00])
        try:
            log_pb2.DecisionRecord.FromString(body + extra)
            parsed = True
        except Exception:
            parsed = False
        assert parsed == five, extra.hex()
        assert _dec(body + extra)[0][0] == (1 if five else 0), extra.hex()
