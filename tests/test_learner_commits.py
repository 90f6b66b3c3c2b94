"""The learner's commits, without services: a fake store stands in for MySQL.

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
from typing import Any

from bandit_engine._exceptions import StoreError
from bandit_engine.stream import KafkaSettings
from bandit_engine.stream.learner import Learner


class _FlakyStore:
    """learner_commit fails the first time (slowly), then succeeds."""

    def __init__(self) -> None:
        self.calls: list[dict[tuple[str, str], int]] = []
        self.lock = threading.Lock()

    def learner_commit(
        self,
        group_id: str,
        updates: Any,
        counters: Any,
        offsets: Any,
        now: float,
        held: Any = None,
    ) -> dict[str, int]:
        with self.lock:
            n = len(self.calls)
            self.calls.append(dict(counters))
        if n == 0:
            time.sleep(0.2)
            raise StoreError("MySQL store: (2013, 'Lost connection to MySQL server during query')")
        return {}


def test_no_commit_after_a_failed_one_until_the_state_is_reloaded() -> None:
    store = _FlakyStore()
    learner = Learner(store, KafkaSettings("127.0.0.1:1"))  # type: ignore[arg-type]

    async def main() -> tuple[bool, bool]:
        learner._counters[("e", "rewards_applied")] += 5  # what the first commit carries
        first = asyncio.create_task(learner.commit())
        await asyncio.sleep(0.05)  # the first is on the database thread now
        learner._counters[("e", "rewards_applied")] += 3  # read after it
        second = asyncio.create_task(learner.commit())
        return await first, await second

    ok1, ok2 = asyncio.run(main())
    learner._db.shutdown(wait=True)
    assert ok1 is False and ok2 is False
    # the second commit never reached the store: its state follows the
    # failed one, and only a reload from the database may continue from it
    assert store.calls == [{("e", "rewards_applied"): 5}]
    assert learner._need_reset
