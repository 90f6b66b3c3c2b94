"""The learner's commits, without services: the in-memory store stands in for MySQL.

A commit that fails leaves the learner's state unknown (the transaction may
or may not have landed), so nothing may be committed after it until the
state is reloaded. Two commits can be in flight at once (the main loop's and
the rebalance listener's); if the second ran after the first failed, its
offsets would cover the first one's rewards, which were never applied.
"""

from __future__ import annotations

import asyncio
import threading
import time

from fakes import FakeLearnerStore
from learner_world import SETTINGS, record

from bandit_engine.stream.learner import Committer, JoinState, decode_decisions


def _malformed(committer: Committer, offset: int) -> None:
    """Take one record that is not a decision: one ``malformed_decision``."""
    rows = decode_decisions([record("d", offset, b"\xff\xff", None, 0)])
    assert committer.join.take_decisions(0, rows) is None


async def _wait(event: threading.Event, what: str) -> None:
    deadline = time.monotonic() + 10
    while not event.is_set():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


def test_no_commit_after_a_failed_one_until_the_state_is_reloaded() -> None:
    store = FakeLearnerStore()
    gate = store.gate = threading.Event()
    committer = Committer(store, SETTINGS, JoinState())

    async def main() -> tuple[bool, bool]:
        await committer.restore({0})
        _malformed(committer, 0)  # what the first commit carries
        store.fail_next_commit("before")
        first = asyncio.create_task(committer.commit())
        await _wait(store.entered, "the first commit to reach the store")
        _malformed(committer, 1)  # read while it is on the database thread
        second = asyncio.create_task(committer.commit())
        await asyncio.sleep(0)  # one turn of the loop: the second waits for the first
        gate.set()
        return await first, await second

    ok1, ok2 = asyncio.run(main())
    assert ok1 is False and ok2 is False
    # the second commit never reached the store: its state follows the failed
    # one, and only a reload from the store may continue from it
    assert store.commit_calls == 1 and committer.needs_reset
    assert store.learner_counters() == {} and store.learner_offsets(SETTINGS.group_id) == {}

    async def after() -> bool:
        positions = await committer.reset()
        assert positions[0].dec_next == 0  # both records are read again
        _malformed(committer, 0)
        _malformed(committer, 1)
        return await committer.commit()

    assert asyncio.run(after())
    committer.close()
    assert store.learner_counters() == {("", "malformed_decision"): 2}
    assert store.learner_offsets(SETTINGS.group_id)[0].dec_next == 2


def test_records_taken_during_a_commit_go_in_the_next_one() -> None:
    store = FakeLearnerStore()
    gate = store.gate = threading.Event()
    committer = Committer(store, SETTINGS, JoinState())

    async def main() -> None:
        await committer.restore({0})
        _malformed(committer, 0)
        first = asyncio.create_task(committer.commit())
        await _wait(store.entered, "the first commit to reach the store")
        _malformed(committer, 1)
        gate.set()
        assert await first
        assert store.learner_offsets(SETTINGS.group_id)[0].dec_next == 1
        assert await committer.commit()

    asyncio.run(main())
    committer.close()
    assert store.learner_counters() == {("", "malformed_decision"): 2}
    assert store.learner_offsets(SETTINGS.group_id)[0].dec_next == 2
    assert committer.commits == 2
