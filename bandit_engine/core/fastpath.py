"""Recommend from request bytes to response bytes, without protobuf objects.

Through the gRPC server, the Python around a Recommend's decision costs far
more than the decision itself: building the request's message objects, a
context vector out of a protobuf repeated field with numpy calls of a few
elements each, and ten ``RankedArm`` objects for the answer. On this
machine's grpcio, numpy calls on tiny arrays cost about four times as much
in a server thread as in a tight loop, a Numba kernel at most about twice
(README, "How a Recommend is served"). So the common request (an experiment
id, a dense context, ``k``) is read and answered by the kernels here:

- ``scan_recommend`` reads a ``RecommendRequest``'s wire bytes (proto3): the
  experiment id's span, the dense context's span of packed doubles, ``k``.
  A request it does not read exactly as protobuf would (named features,
  candidates, unpacked doubles, a field given twice, an unknown field, a
  truncated message) is flagged, and the caller parses it with protobuf: the
  fast path never answers anything the message path would answer
  differently, it only skips work.
- ``dense_context`` builds the context vector (the intercept, then the dense
  block; ``FeatureSpace.vector``) and checks every value, so that a bad one
  goes to the message path, which names it, before any state is touched.
- ``write_response`` turns a decision into the first-slot propensities and a
  serialized ``RecommendResponse``; in Kafka mode ``write_decision`` writes
  its serialized ``DecisionRecord`` for the decision log; in embedded mode
  ``journal_put`` fills the decision's row of the experiment's journal
  (what the reward join and the decision writer need).

The reader's field helpers (``_key``, ``_span``, ...) are below.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

__all__ = [
    "JOURNAL_META",
    "dense_context",
    "journal_put",
    "scan_recommend",
    "warm_up",
    "write_decision",
    "write_response",
]

#: Leading columns of a ``journal.Journal`` row: created, deadline, model
#: version, shown count, rewarded count, closed.
JOURNAL_META = 6

_JIT: dict[str, Any] = {"cache": True, "nogil": False, "error_model": "numpy", "boundscheck": False}

_U32 = np.uint64(1) << np.uint64(32)


# ------------------------------------------------------ protobuf field helpers
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
def scan_recommend(buf):  # type: ignore[no-untyped-def]
    """Read a ``RecommendRequest``: (ok, experiment id start, end, dense
    start, dense count, k), k 0 when not given.

    Fields: 1 experiment_id (string), 2 context (``Features``: only 1 dense,
    packed), 4 k (uint32). Anything else, or any field twice: ok False, and
    the caller parses the request with protobuf.
    """
    end = buf.shape[0]
    no = (False, np.int64(0), np.int64(0), np.int64(0), np.int64(0), np.int64(0))
    exp_s = np.int64(0)
    exp_e = np.int64(0)
    dense_s = np.int64(0)
    dense_n = np.int64(0)
    k = np.int64(0)
    seen = 0
    p = np.int64(0)
    while p < end:
        field, wire, p = _key(buf, p, end)
        if p < 0:
            return no
        if field == 1 and wire == 2 and not seen & 1:
            seen |= 1
            s, e = _span(buf, p, end)
            if e < 0 or not _utf8(buf, s, e):
                return no
            exp_s = s
            exp_e = e
            p = e
        elif field == 2 and wire == 2 and not seen & 2:
            seen |= 2
            s, e = _span(buf, p, end)
            if e < 0:
                return no
            q = s
            dense = False
            while q < e:
                f2, w2, q = _key(buf, q, e)
                if q < 0 or f2 != 1 or w2 != 2 or dense:
                    return no
                dense = True
                ds, de = _span(buf, q, e)
                if de < 0 or (de - ds) % 8 != 0:
                    return no
                dense_s = ds
                dense_n = (de - ds) // 8
                q = de
            p = e
        elif field == 4 and wire == 0 and not seen & 4:
            seen |= 4
            v, p = _varint(buf, p, end)
            if p < 0 or v >= _U32:
                return no
            k = np.int64(v)
        else:
            return no
    return True, exp_s, exp_e, dense_s, dense_n, k


@njit(**_JIT)
def dense_context(buf, start, n, dim, dense_start, intercept, max_abs):  # type: ignore[no-untyped-def]
    """The context vector of ``n`` little-endian doubles at ``buf[start:]``:
    ``intercept`` (1.0 or not) at 0, the values from ``dense_start``, zeros
    elsewhere. (x, ok): ok False if a value is not finite or |value| >
    ``max_abs`` (the caller then takes the message path, which names it)."""
    x = np.zeros(dim)
    if intercept:
        x[0] = 1.0
    vals = buf[start : start + 8 * n].view(np.float64)
    for i in range(n):
        v = vals[i]
        if not (abs(v) <= max_abs):  # NaN fails too
            return x, False
        x[dense_start + i] = v
    return x, True


@njit(**_JIT)
def _put_varint(out, p, v):  # type: ignore[no-untyped-def]
    v = np.uint64(v)
    while v >= np.uint64(0x80):
        out[p] = np.uint8((v & np.uint64(0x7F)) | np.uint64(0x80))
        v >>= np.uint64(7)
        p += 1
    out[p] = np.uint8(v)
    return p + 1


@njit(**_JIT)
def _is_zero(v):  # type: ignore[no-untyped-def]
    """+0.0, the value proto3 leaves out (protobuf writes -0.0: its bits are not 0)."""
    return v == 0.0 and math.copysign(1.0, v) > 0.0


@njit(**_JIT)
def _put_double(out, p, tag, v):  # type: ignore[no-untyped-def]
    """Field ``tag`` (wire type 1) with value ``v``; nothing for +0.0 (proto3)."""
    if _is_zero(v):
        return p
    out[p] = tag
    out[p + 1 : p + 9] = np.array([v]).view(np.uint8)
    return p + 9


@njit(**_JIT)
def _varint_len(v):  # type: ignore[no-untyped-def]
    n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


@njit(**_JIT)
def write_response(event_id, slots, order, scores, counts, draws, arm_bytes, arm_off, version):  # type: ignore[no-untyped-def]
    """A decision's answer: (response bytes, shown slots, propensities).

    ``order``: positions into ``slots`` of the ranked arms, best first;
    ``scores``: their sampled scores; ``counts``: how often each candidate
    won the first slot in ``draws`` draws. The served draw counts as one more
    win of the served top arm (``Engine.recommend``): propensity = (count +
    [first]) / (draws + 1). The bytes are a ``RecommendResponse`` with fields
    in number order, +0.0 and 0 left out (proto3): event_id, the ranked arms
    (arm_id, score, propensity), model_version, propensity_kind FIRST_SLOT.
    """
    k = order.shape[0]
    shown = np.empty(k, dtype=np.int64)
    props = np.empty(k)
    size = 2 + event_id.shape[0] + 16 + 2
    for j in range(k):
        s = slots[order[j]]
        shown[j] = s
        hits = float(counts[order[j]]) + (1.0 if j == 0 else 0.0)
        props[j] = hits / (draws + 1)
        size += 24 + 2 * (arm_off[s + 1] - arm_off[s])
    out = np.empty(size, dtype=np.uint8)
    out[0] = 0x0A
    p = _put_varint(out, 1, event_id.shape[0])
    out[p : p + event_id.shape[0]] = event_id
    p += event_id.shape[0]
    for j in range(k):
        s = shown[j]
        a0 = arm_off[s]
        a1 = arm_off[s + 1]
        ln = a1 - a0
        body = 1 + _varint_len(ln) + ln
        if not _is_zero(scores[j]):
            body += 9
        if not _is_zero(props[j]):
            body += 9
        out[p] = 0x12
        p = _put_varint(out, p + 1, body)
        out[p] = 0x0A
        p = _put_varint(out, p + 1, ln)
        out[p : p + ln] = arm_bytes[a0:a1]
        p += ln
        p = _put_double(out, p, 0x11, scores[j])
        p = _put_double(out, p, 0x19, props[j])
    if version != 0:
        out[p] = 0x18
        p = _put_varint(out, p + 1, version)
    out[p] = 0x20
    out[p + 1] = 1
    p += 2
    return out[:p], shown, props


@njit(**_JIT)
def journal_put(rows, idx, width, x, shown, scores, props, created, deadline, version):  # type: ignore[no-untyped-def]
    """Fill row ``idx`` of a ``journal.Journal``: created, deadline, version,
    shown count, no reward, open; the context; and, when ``k`` <= ``width``,
    the shown slots, scores, propensities and cleared reward flags (a wider
    decision keeps those in ``Journal.side``)."""
    r = rows[idx]
    k = shown.shape[0]
    d = x.shape[0]
    r[0] = created
    r[1] = deadline
    r[2] = version
    r[3] = k
    r[4] = 0.0
    r[5] = 0.0
    for i in range(d):
        r[JOURNAL_META + i] = x[i]
    if k <= width:
        so = JOURNAL_META + d
        for j in range(k):
            r[so + j] = shown[j]
            r[so + width + j] = scores[j]
            r[so + 2 * width + j] = props[j]
            r[so + 3 * width + j] = 0.0


@njit(**_JIT)
def _put_bytes(out, p, tag, src, a, b):  # type: ignore[no-untyped-def]
    """Field ``tag`` (wire type 2) holding ``src[a:b]``."""
    out[p] = tag
    p = _put_varint(out, p + 1, b - a)
    out[p : p + (b - a)] = src[a:b]
    return p + (b - a)


@njit(**_JIT)
def _put_doubles(out, p, tag, v):  # type: ignore[no-untyped-def]
    """A packed repeated double field; nothing when empty (proto3)."""
    n = v.shape[0]
    if n == 0:
        return p
    out[p] = tag
    p = _put_varint(out, p + 1, 8 * n)
    out[p : p + 8 * n] = np.ascontiguousarray(v).view(np.uint8)
    return p + 8 * n


@njit(**_JIT)
def write_decision(  # type: ignore[no-untyped-def]
    event_id,
    req,
    exp_s,
    exp_e,
    created_at,
    deadline,
    version,
    arm_bytes,
    arm_off,
    shown,
    scores,
    props,
    x,
):
    """A decision's ``DecisionRecord`` (log.proto) as ``Engine.recommend``
    builds it in Kafka mode: fields in number order, proto3 defaults left
    out, repeated numbers packed; the experiment id is ``req[exp_s:exp_e]``
    (the request's own bytes), no candidates (every active arm), the
    context as ``x_f64``."""
    k = shown.shape[0]
    size = 64 + event_id.shape[0] + (exp_e - exp_s) + 32 * k + 8 * x.shape[0]
    for j in range(k):
        size += arm_off[shown[j] + 1] - arm_off[shown[j]]
    out = np.empty(size, dtype=np.uint8)
    p = _put_bytes(out, 0, 0x0A, event_id, 0, event_id.shape[0])
    if exp_e > exp_s:
        p = _put_bytes(out, p, 0x12, req, exp_s, exp_e)
    p = _put_double(out, p, 0x19, created_at)
    p = _put_double(out, p, 0x21, deadline)
    if version != 0:
        out[p] = 0x28
        p = _put_varint(out, p + 1, version)
    for j in range(k):
        s = shown[j]
        p = _put_bytes(out, p, 0x3A, arm_bytes, arm_off[s], arm_off[s + 1])
    if k:
        n = 0
        for j in range(k):
            n += _varint_len(shown[j])
        out[p] = 0x42
        p = _put_varint(out, p + 1, n)
        for j in range(k):
            p = _put_varint(out, p, shown[j])
    p = _put_doubles(out, p, 0x4A, scores)
    p = _put_doubles(out, p, 0x52, props)
    if x.shape[0]:
        xb = np.ascontiguousarray(x).view(np.uint8)
        p = _put_bytes(out, p, 0x62, xb, 0, xb.shape[0])
    return out[:p]


def warm_up() -> None:
    """Load the kernels from numba's cache (or compile them) with the argument
    types the engine passes (read-only arrays over bytes where it has them),
    before the server takes requests."""
    buf = np.frombuffer(b"\x0a\x01e\x12\x0a\x0a\x08" + bytes(8) + b"\x20\x01", dtype=np.uint8)
    _, exp_s, exp_e, start, n, _ = scan_recommend(buf)
    x, _ = dense_context(buf, start, n, 2, 1, True, 1e6)
    eid = np.frombuffer(b"0" * 32, dtype=np.uint8)
    arms = np.frombuffer(b"ab", dtype=np.uint8)
    off = np.arange(3, dtype=np.int64)
    slots = np.arange(2, dtype=np.int64)
    _, shown, props = write_response(
        eid, slots, slots.copy(), np.ones(2), np.ones(2, dtype=np.int64), 10, arms, off, 5
    )
    write_decision(eid, buf, exp_s, exp_e, 1.0, 2.0, 5, arms, off, shown, np.ones(2), props, x)
    rows = np.zeros((2, JOURNAL_META + x.shape[0] + 4 * 2))
    journal_put(rows, 0, 2, x, shown, np.ones(2), props, 1.0, 2.0, 5)
