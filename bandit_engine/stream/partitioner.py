"""Which partition owns an event id: one function for the producer and the learner.

The engine's producer puts a decision, and its own rewards, on the partition
that owns the event id: murmur2 of the key (the event id's UTF-8 bytes),
masked to 31 bits, modulo the partition count, which is what the Java client
and aiokafka's default partitioner do with a key. The learner forwards a
reward read on any other feedback partition to the owner's
(``bandit_engine.stream.learner.forward``), so producers that hash keys
otherwise (librdkafka's default, CRC32) lose nothing. The hash is aiokafka's
``murmur2``; nothing here imports aiokafka until it is first called.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["FORWARDED_FROM", "OwnerPartitioner", "owner_partition"]

#: The header a forwarded reward carries: ``b"<source partition>:<offset>"``
#: of the feedback record it copies. A record with it is never forwarded again.
FORWARDED_FROM = "bandit-forwarded-from"

_murmur2: Callable[[bytes], int] | None = None


def owner_partition(key: bytes, partitions: int) -> int:
    """The partition (0 to ``partitions`` - 1) that owns ``key``: murmur2 of
    the key, masked to 31 bits, modulo ``partitions``."""
    global _murmur2
    if _murmur2 is None:
        from aiokafka.partitioner import murmur2

        _murmur2 = murmur2
    if partitions < 1:
        raise ValueError(f"partitions={partitions!r} must be >= 1")
    return (_murmur2(key) & 0x7FFFFFFF) % partitions


class OwnerPartitioner:
    """An aiokafka ``partitioner``: a keyed record goes to its owner
    (``owner_partition``), an unkeyed one to a random available partition."""

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> Any:
        if key is None:
            return random.choice(list(available) or list(all_partitions))
        return all_partitions[owner_partition(key, len(all_partitions))]
