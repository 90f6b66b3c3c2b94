"""Fetched records without a Python object per record, for the learner.

aiokafka turns every fetched record into a ``ConsumerRecord`` (about 1.1 us
each here, measured in a bare ``getmany`` loop), and for the learner that was
a third of its time per record. A consumer created with
``value_deserializer=raw_values`` instead gets, per fetched partition, one
``Chunk``: the fetched bytes and a table of the records in them (offset,
timestamp, spans of key and value) read by one Numba call
(``wire.read_batches``). Everything else stays aiokafka's: fetching,
positions, seeks, pauses, rebalances, errors.

How: two names in ``aiokafka.consumer.fetcher`` are replaced, once per
process (``install``): ``MemoryRecords`` by a wrapper that also keeps the
fetched bytes, and ``PartitionRecords`` by a subclass that yields chunks
for consumers whose value deserializer is ``raw_values``, and behaves as
before for any other consumer. This reaches into aiokafka's internals, so
``install`` checks them first and does nothing if they are not as expected
(the consumer then yields ordinary records, through ``raw_values``, the
identity: slower, the same results). ``tests/test_fetch.py`` compares the
two paths record for record on a real broker.

From the first batch the reader does not take (a compressed one, an older
format, a bad CRC) to the end of that fetch, aiokafka reads the records its
own way: ordinary ``ConsumerRecord`` objects, after the chunks, in offset
order, or its ``CorruptRecordException``. The servers' producers do not
compress (``kafka.LogProducer``); a topic written compressed by another
producer is read correctly, at aiokafka's speed.
"""

from __future__ import annotations

import inspect
import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from bandit_engine.stream import wire

log = logging.getLogger(__name__)

__all__ = ["Chunk", "install", "installed", "raw_values"]

#: rows of one chunk at most (a fetch of more records yields several chunks)
CHUNK_ROWS = 16_384

_lock = threading.Lock()
_installed: bool | None = None


def raw_values(value: bytes | None) -> bytes | None:
    """The value deserializer that asks for chunks (the identity otherwise)."""
    return value


@dataclass(slots=True)
class Chunk:
    """Records of one partition, in offset order, as spans of ``raw``.

    ``recs[i]``: offset, timestamp (ms), key start, key length (-1: null),
    value start, value length (-1: null); ``buf`` is ``raw`` as uint8.
    """

    raw: bytes
    buf: np.ndarray
    recs: np.ndarray

    def __len__(self) -> int:
        return int(self.recs.shape[0])

    def value(self, i: int) -> bytes | None:
        start, length = int(self.recs[i, 4]), int(self.recs[i, 5])
        return None if length < 0 else self.raw[start : start + length]

    def key(self, i: int) -> bytes | None:
        start, length = int(self.recs[i, 2]), int(self.recs[i, 3])
        return None if length < 0 else self.raw[start : start + length]


_EXPECTED_ARGS = [
    "self",
    "tp",
    "records",
    "aborted_transactions",
    "fetch_offset",
    "key_deserializer",
    "value_deserializer",
    "check_crcs",
    "isolation_level",
]


def installed() -> bool:
    """Whether consumers with ``raw_values`` get chunks in this process."""
    return bool(_installed)


def install() -> bool:
    """Replace the two fetcher names (once); False if aiokafka is not as expected."""
    global _installed
    with _lock:
        if _installed is not None:
            return _installed
        _installed = False
        try:
            from aiokafka.consumer import fetcher as F

            base_pr, base_mr = F.PartitionRecords, F.MemoryRecords
            args = list(inspect.signature(base_pr.__init__).parameters)
            needed = ("_unpack_records", "_consumer_record", "__next__")
            if args != _EXPECTED_ARGS or not all(hasattr(base_pr, n) for n in needed):
                log.warning(
                    "aiokafka's fetcher is not as expected: learner reads records one by one"
                )
                return False
            read_uncommitted = getattr(F, "READ_UNCOMMITTED", 0)
        except Exception as exc:  # pragma: no cover - depends on the installed aiokafka
            log.warning(
                "cannot read aiokafka's fetcher (%s): learner reads records one by one", exc
            )
            return False

        class KeepBytes:
            """``MemoryRecords`` that keeps the fetched bytes (``raw``). Every
            consumer's fetches go through it: one Python call more per batch
            of records (hundreds to thousands of records), none per record."""

            __slots__ = ("_mr", "raw")

            def __init__(self, data: bytes) -> None:
                self.raw = data
                self._mr = base_mr(data)

            def has_next(self) -> bool:
                return self._mr.has_next()

            def next_batch(self) -> Any:
                return self._mr.next_batch()

            def size_in_bytes(self) -> int:
                return self._mr.size_in_bytes()

        class ChunkedRecords(base_pr):  # type: ignore[misc,valid-type]
            def _unpack_records(self) -> Any:
                # Not a generator itself: other consumers iterate aiokafka's own
                # generator, with no extra step per record.
                records = self._records
                if (
                    self._value_deserializer is not raw_values
                    or self._isolation_level != read_uncommitted
                    or not isinstance(records, KeepBytes)
                ):
                    return base_pr._unpack_records(self)
                return _chunks(self, records.raw)

        def _chunks(pr: Any, raw: bytes) -> Any:
            buf = np.frombuffer(raw, dtype=np.uint8)
            tab = wire._CRC
            pos = 0
            rows = CHUNK_ROWS
            while True:
                out = np.empty((rows, wire.REC_COLS), dtype=np.int64)
                n, pos, nxt, status = wire.read_batches(buf, pos, pr.next_fetch_offset, out, tab)
                # only whole batches are read: the position moves past them
                pr.next_fetch_offset = int(nxt)
                if n:
                    yield Chunk(raw, buf, out[:n])
                if status == wire.BATCH_OK:
                    return
                rows = CHUNK_ROWS
                if status == wire.BATCH_FULL:
                    continue
                if status == wire.BATCH_LARGE:  # one batch of more records: a table its size
                    rows = int.from_bytes(raw[pos + 57 : pos + 61], "big")
                    continue
                # A batch the reader does not take (compressed, another format,
                # a bad CRC): aiokafka reads the rest of this fetch, its way.
                pr._records = base_mr(raw[pos:])
                yield from base_pr._unpack_records(pr)
                return

        F.MemoryRecords = KeepBytes
        F.PartitionRecords = ChunkedRecords
        _installed = True
        return True
