"""Numba readers of Kafka record batches and of the two log messages.

The learner reads a fetched partition's bytes in three kernel calls instead of
one Python object per record (see ``bandit_engine.stream.fetch``):

- ``read_batches``: Kafka's record batch format v2 (the only one brokers
  have written since Kafka 0.11; KIP-98): checks each batch's CRC-32C,
  skips control batches and the records before the fetch position, and
  returns per record its offset, timestamp and the spans of key and value in
  the fetched buffer. A compressed batch, or a format it does not know, stops
  it with a status, and the caller hands the rest to aiokafka.
- ``scan_decisions`` / ``scan_feedback``: the fields of ``DecisionRecord`` /
  ``FeedbackRecord`` (proto3 wire format) the join needs, as spans and
  numbers. A message they do not read the way the generated code would
  (JSON, an unexpected wire type, ``x`` given as doubles instead of
  ``x_f64``, a truncated field) is flagged, and the caller parses that one
  with protobuf: the fast path never decides anything the slow one would
  decide differently, it only skips work.

Record layout (v2): baseOffset int64, batchLength int32, partitionLeaderEpoch
int32, magic int8, crc uint32 (CRC-32C of everything after it), attributes
int16 (bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control),
lastOffsetDelta int32, baseTimestamp int64, maxTimestamp int64, producerId
int64, producerEpoch int16, baseSequence int32, records count int32, then
the records, each: length, attributes int8, timestampDelta, offsetDelta,
keyLength, key, valueLength, value, header count and headers, all lengths
and deltas zigzag varints. Big-endian integers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = [
    "BATCH_COMPRESSED",
    "BATCH_FULL",
    "BATCH_LARGE",
    "BATCH_OK",
    "BATCH_UNKNOWN",
    "DEC_COLS",
    "FB_COLS",
    "REC_COLS",
    "read_batches",
    "same_spans",
    "scan_decisions",
    "scan_feedback",
    "warm_up",
]

_JIT: dict[str, Any] = {"cache": True, "nogil": False, "error_model": "numpy", "boundscheck": False}

BATCH_OK = 0
BATCH_COMPRESSED = 1  # the batch at ``pos`` is compressed: aiokafka decodes it
BATCH_UNKNOWN = 2  # magic other than 2, a corrupt length, or a bad CRC
BATCH_FULL = 3  # ``out`` is full: call again from ``pos``
BATCH_LARGE = 4  # the batch at ``pos`` has more records than ``out`` has rows

#: columns of ``read_batches``' output
REC_COLS = 6  # offset, timestamp (ms), key start, key length (-1: null), value start, value length

#: columns of ``scan_decisions``' int output
DEC_COLS = 10  # ok, event start, end, experiment start, end, x start, end, slots start, count, x ok
#: columns of ``scan_feedback``' int output
FB_COLS = 5  # ok, event start, end, arm start, end


def _crc32c_tables() -> np.ndarray:
    poly = 0x82F63B78  # CRC-32C (Castagnoli), reflected
    t = np.zeros((8, 256), dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t[0, i] = c
    for k in range(1, 8):
        for i in range(256):
            prev = int(t[k - 1, i])
            t[k, i] = (prev >> 8) ^ int(t[0, prev & 0xFF])
    return t


_CRC = _crc32c_tables()


@njit(**_JIT)
def crc32c(buf, start, end, tab):  # type: ignore[no-untyped-def]
    """CRC-32C of ``buf[start:end]`` (slicing by 8)."""
    c = np.uint32(0xFFFFFFFF)
    i = start
    while i + 8 <= end:
        lo = c ^ (
            np.uint32(buf[i])
            | (np.uint32(buf[i + 1]) << 8)
            | (np.uint32(buf[i + 2]) << 16)
            | (np.uint32(buf[i + 3]) << 24)
        )
        c = (
            tab[7, lo & 0xFF]
            ^ tab[6, (lo >> 8) & 0xFF]
            ^ tab[5, (lo >> 16) & 0xFF]
            ^ tab[4, lo >> 24]
            ^ tab[3, buf[i + 4]]
            ^ tab[2, buf[i + 5]]
            ^ tab[1, buf[i + 6]]
            ^ tab[0, buf[i + 7]]
        )
        i += 8
    while i < end:
        c = tab[0, (c ^ buf[i]) & 0xFF] ^ (c >> 8)
        i += 1
    return c ^ np.uint32(0xFFFFFFFF)


@njit(**_JIT)
def _be(buf, pos, n):  # type: ignore[no-untyped-def]
    v = np.int64(0)
    for i in range(n):
        v = (v << 8) | np.int64(buf[pos + i])
    return v


@njit(**_JIT)
def _zigzag(buf, pos, end):  # type: ignore[no-untyped-def]
    """A zigzag varint at ``pos``: (value, next pos); next pos -1 if it runs past ``end``."""
    shift = 0
    raw = np.int64(0)
    while True:
        if pos >= end or shift > 63:
            return np.int64(0), np.int64(-1)
        b = np.int64(buf[pos])
        pos += 1
        raw |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    return (raw >> 1) ^ -(raw & 1), np.int64(pos)


@njit(**_JIT)
def read_batches(buf, pos, fetch_offset, out, tab):  # type: ignore[no-untyped-def]
    """Read record batches from ``buf[pos:]`` into ``out`` (rows of ``REC_COLS``).

    Returns ``(rows, pos, next_offset, status)``: rows written, where reading
    stopped (the start of the batch it could not read, or the end), the offset
    after the last batch read (at least ``fetch_offset``) and a ``BATCH_*``
    status. A partial batch at the end of the buffer (the broker cuts fetches
    at a byte limit) is left for the next fetch, as aiokafka does.
    """
    n = 0
    size = buf.size
    nxt = np.int64(fetch_offset)
    while pos + 12 <= size:
        base = _be(buf, pos, 8)
        blen = _be(buf, pos + 8, 4)
        end = pos + 12 + blen
        if blen < 0:
            return n, pos, nxt, BATCH_UNKNOWN
        if end > size:
            break  # cut by the fetch size: the next fetch has it whole
        if blen < 49:  # whole, and shorter than a v2 header: an older format
            return n, pos, nxt, BATCH_UNKNOWN
        if buf[pos + 16] != 2:
            return n, pos, nxt, BATCH_UNKNOWN
        if np.uint32(_be(buf, pos + 17, 4)) != crc32c(buf, pos + 21, end, tab):
            return n, pos, nxt, BATCH_UNKNOWN
        attr = _be(buf, pos + 21, 2)
        last = base + _be(buf, pos + 23, 4)
        if attr & 0x20:  # a control batch (transaction marker): no records for us
            nxt = max(nxt, last + 1)
            pos = end
            continue
        if attr & 0x07:
            return n, pos, nxt, BATCH_COMPRESSED
        count = _be(buf, pos + 57, 4)
        if n + count > out.shape[0]:
            if n == 0:  # the caller's table is too small for this batch
                return n, pos, nxt, BATCH_LARGE
            return n, pos, nxt, BATCH_FULL
        log_append = attr & 0x08
        base_ts = _be(buf, pos + 27, 8)
        max_ts = _be(buf, pos + 35, 8)
        p = np.int64(pos + 61)
        start_n = n
        for _ in range(count):
            length, p = _zigzag(buf, p, end)
            if p < 0 or length < 0 or p + length > end:
                return start_n, pos, nxt, BATCH_UNKNOWN
            rend = p + length
            p += 1  # record attributes
            ts_delta, p = _zigzag(buf, p, rend)
            if p < 0:
                return start_n, pos, nxt, BATCH_UNKNOWN
            off_delta, p = _zigzag(buf, p, rend)
            if p < 0:
                return start_n, pos, nxt, BATCH_UNKNOWN
            klen, p = _zigzag(buf, p, rend)
            if p < 0 or klen < -1 or p + max(klen, 0) > rend:
                return start_n, pos, nxt, BATCH_UNKNOWN
            kstart = p
            p += max(klen, 0)
            vlen, p = _zigzag(buf, p, rend)
            if p < 0 or vlen < -1 or p + max(vlen, 0) > rend:
                return start_n, pos, nxt, BATCH_UNKNOWN
            offset = base + off_delta
            if offset >= fetch_offset:
                out[n, 0] = offset
                out[n, 1] = max_ts if log_append else base_ts + ts_delta
                out[n, 2] = kstart
                out[n, 3] = klen
                out[n, 4] = p
                out[n, 5] = vlen
                n += 1
            p = rend
        nxt = max(nxt, last + 1)
        pos = end
    return n, pos, nxt, BATCH_OK


# ------------------------------------------------------------------ protobuf
_MAX_FIELD = (1 << 29) - 1  # field numbers are 1 .. 2**29 - 1


@njit(**_JIT)
def _varint(buf, pos, end):  # type: ignore[no-untyped-def]
    """An unsigned varint: (value, next pos), next pos -1 if malformed or past ``end``."""
    shift = 0
    v = np.uint64(0)
    while True:
        if pos >= end or shift > 63:
            return np.uint64(0), np.int64(-1)
        b = np.uint64(buf[pos])
        pos += 1
        v |= (b & np.uint64(0x7F)) << np.uint64(shift)
        if b < 0x80:
            break
        shift += 7
    return v, np.int64(pos)


@njit(**_JIT)
def _f64(buf, pos):  # type: ignore[no-untyped-def]
    """The little-endian double at ``pos`` (hosts are little-endian: x86-64, arm64)."""
    return buf[pos : pos + 8].view(np.float64)[0]


@njit(**_JIT)
def _utf8(buf, p, end):  # type: ignore[no-untyped-def]
    """Whether ``buf[p:end]`` is valid UTF-8 (RFC 3629: no overlong forms, no
    surrogates, nothing above U+10FFFF), which protobuf requires of strings."""
    while p < end:
        b = buf[p]
        if b < 0x80:
            p += 1
            continue
        if 0xC2 <= b <= 0xDF:
            n = 1
            lo, hi = 0x80, 0xBF
        elif 0xE0 <= b <= 0xEF:
            n = 2
            lo = 0xA0 if b == 0xE0 else 0x80
            hi = 0x9F if b == 0xED else 0xBF
        elif 0xF0 <= b <= 0xF4:
            n = 3
            lo = 0x90 if b == 0xF0 else 0x80
            hi = 0x8F if b == 0xF4 else 0xBF
        else:
            return False
        if p + n >= end:  # cut short
            return False
        c = buf[p + 1]
        if c < lo or c > hi:
            return False
        for j in range(2, n + 1):
            c = buf[p + j]
            if c < 0x80 or c > 0xBF:
                return False
        p += n + 1
    return True


@njit(**_JIT)
def _key(buf, p, end):  # type: ignore[no-untyped-def]
    """A field's key at ``p``: (field number, wire type, next pos); field -1
    if the key is malformed, longer than 5 bytes, or its number out of range
    (protobuf calls each of these corrupt)."""
    start = p
    key, p = _varint(buf, p, end)
    field = np.int64(key >> np.uint64(3))
    if p < 0 or p - start > 5 or field < 1 or field > _MAX_FIELD:
        return np.int64(-1), np.int64(0), np.int64(-1)
    return field, np.int64(key & np.uint64(7)), p


@njit(**_JIT)
def _span(buf, p, end):  # type: ignore[no-untyped-def]
    """The value of a length-delimited field at ``p``: (start, stop); stop -1
    if it runs past ``end`` or its length takes more than 5 bytes (protobuf
    refuses that)."""
    start = p
    ln, p = _varint(buf, p, end)
    if p < 0 or p - start > 5 or ln > np.uint64(end - p):
        return p, np.int64(-1)
    return p, p + np.int64(ln)


@njit(**_JIT)
def _skip(buf, p, end, wire):  # type: ignore[no-untyped-def]
    """Past a field of wire type ``wire`` at ``p`` (its value); -1 if it cannot."""
    if wire == 0:
        _, p = _varint(buf, p, end)
        return p
    if wire == 1:
        return p + 8 if p + 8 <= end else -1
    if wire == 5:
        return p + 4 if p + 4 <= end else -1
    if wire == 2:
        return _span(buf, p, end)[1]
    return -1  # groups (3, 4) and reserved types: leave it to protobuf


@njit(**_JIT)
def scan_decisions(buf, recs, n, out, times, slots, max_abs):  # type: ignore[no-untyped-def]
    """``DecisionRecord`` fields of the values ``recs[:n]`` (``read_batches`` rows).

    ``out[i]``: ``DEC_COLS`` ints, ``out[i, 0]`` 1 if read here (else 0: parse
    it with protobuf); ``times[i]``: created_at, deadline; ``slots``: the
    slots of every decision read, ``out[i, 7:9]`` its start and count in
    there; ``out[i, 9]`` 1 if ``x_f64`` is whole float64s, all finite and
    at most ``max_abs`` in size (``kernels.first_bad_feature_bytes``). A
    message without ``x_f64`` is left to protobuf. Returns the slots used.
    """
    ns = 0
    for i in range(n):
        p = recs[i, 4]
        end = p + recs[i, 5]
        for c in range(DEC_COLS):
            out[i, c] = 0
        times[i, 0] = 0.0
        times[i, 1] = 0.0
        if recs[i, 5] <= 0:
            continue
        ok = True
        slot0 = ns
        while p < end:
            field, wire, p = _key(buf, p, end)
            if field < 0:
                ok = False
                break
            if field == 1 or field == 2 or field == 12:
                p, q = _span(buf, p, end)
                if wire != 2 or q < 0 or (field != 12 and not _utf8(buf, p, q)):
                    ok = False
                    break
                c = 1 if field == 1 else (3 if field == 2 else 5)
                out[i, c] = p  # proto3: the last one wins
                out[i, c + 1] = q
                p = q
            elif field == 3 or field == 4:
                if wire != 1 or p + 8 > end:
                    ok = False
                    break
                times[i, field - 3] = _f64(buf, p)
                p += 8
            elif field == 8 and (wire == 0 or wire == 2):  # one slot, or packed ones
                q = end
                if wire == 2:
                    p, q = _span(buf, p, end)
                    if q < 0:
                        ok = False
                        break
                while wire == 0 or p < q:  # one value unpacked (there must be one)
                    v, p = _varint(buf, p, q)
                    if p < 0 or v > np.uint64(0xFFFFFFFF) or ns >= slots.size:
                        ok = False
                        break
                    slots[ns] = np.int64(v)
                    ns += 1
                    if wire == 0:
                        break
                if not ok:
                    break
            elif field == 6 or field == 8:
                ok = False  # x as doubles (protobuf builds the bytes), or slots misencoded
                break
            elif (field == 9 or field == 10) and wire == 2:  # packed doubles: whole ones
                p, q = _span(buf, p, end)
                if q < 0 or (q - p) % 8:
                    ok = False
                    break
                p = q
            elif (field == 7 or field == 11) and wire == 2:  # strings: checked, not kept
                p, q = _span(buf, p, end)
                if q < 0 or not _utf8(buf, p, q):
                    ok = False
                    break
                p = q
            else:
                p = _skip(buf, p, end, wire)
                if p < 0:
                    ok = False
                    break
        xs, xe = out[i, 5], out[i, 6]
        if not ok or xe == xs:  # unreadable here, or no x_f64: protobuf decides
            ns = slot0
            for c in range(DEC_COLS):
                out[i, c] = 0
            continue
        x_ok = (xe - xs) % 8 == 0
        if x_ok:
            x = buf[xs:xe].view(np.float64)
            for j in range(x.size):
                if not abs(x[j]) <= max_abs:  # NaN fails too
                    x_ok = False
                    break
        out[i, 0] = 1
        out[i, 9] = 1 if x_ok else 0
        out[i, 7] = slot0
        out[i, 8] = ns - slot0
    return ns


@njit(**_JIT)
def scan_feedback(buf, recs, n, out, nums):  # type: ignore[no-untyped-def]
    """``FeedbackRecord`` fields of the values ``recs[:n]``: ``out[i]`` (``FB_COLS``
    ints: 1 if read here, event and arm spans) and ``nums[i]`` (reward,
    timestamp). JSON, empty, unreadable or invalid values (no event or arm
    id, a reward or timestamp not finite) get 0: protobuf or the JSON reader
    decides those, with the reason they give."""
    for i in range(n):
        p = recs[i, 4]
        end = p + recs[i, 5]
        for c in range(FB_COLS):
            out[i, c] = 0
        nums[i, 0] = 0.0
        nums[i, 1] = 0.0
        if recs[i, 5] <= 0 or buf[p] == 0x7B:  # "{": JSON
            continue
        ok = True
        while p < end:
            field, wire, p = _key(buf, p, end)
            if field < 0:
                ok = False
                break
            if field == 1 or field == 2:
                p, q = _span(buf, p, end)
                if wire != 2 or q < 0 or not _utf8(buf, p, q):
                    ok = False
                    break
                out[i, 2 * field - 1] = p
                out[i, 2 * field] = q
                p = q
            elif field == 3 or field == 4:
                if wire != 1 or p + 8 > end:
                    ok = False
                    break
                nums[i, field - 3] = _f64(buf, p)
                p += 8
            else:
                p = _skip(buf, p, end, wire)
                if p < 0:
                    ok = False
                    break
        if (
            ok
            and out[i, 2] > out[i, 1]
            and out[i, 4] > out[i, 3]
            and np.isfinite(nums[i, 0])
            and np.isfinite(nums[i, 1])
        ):
            out[i, 0] = 1  # else protobuf says what is wrong (malformed, invalid)
        else:
            for c in range(FB_COLS):
                out[i, c] = 0
    return n


@njit(**_JIT)
def same_spans(buf, starts, ends):  # type: ignore[no-untyped-def]
    """Whether every span ``buf[starts[i]:ends[i]]`` holds the bytes of the first."""
    n = starts.size
    if n == 0:
        return True
    a, ln = starts[0], ends[0] - starts[0]
    for i in range(1, n):
        b = starts[i]
        if ends[i] - b != ln:
            return False
        for j in range(ln):
            if buf[a + j] != buf[b + j]:
                return False
    return True


def warm_up() -> None:
    """Load the readers from numba's cache (or compile them), with the argument
    types the learner passes, before it takes records: 0.1-0.2 s on a first
    call otherwise, inside the first fetch."""
    buf = np.frombuffer(b"", dtype=np.uint8)
    recs = np.empty((1, REC_COLS), dtype=np.int64)
    read_batches(buf, 0, 0, recs, _CRC)
    none = recs[:0]
    pairs = np.empty((0, 2))
    scan_decisions(
        buf, none, 0, np.empty((0, DEC_COLS), np.int64), pairs, np.empty(0, np.int64), 1.0
    )
    scan_feedback(buf, none, 0, np.empty((0, FB_COLS), np.int64), pairs)
    col = np.zeros((2, DEC_COLS), np.int64)  # columns of a table: not contiguous
    same_spans(buf, col[:, 3], col[:, 4])
