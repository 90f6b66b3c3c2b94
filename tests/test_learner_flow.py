"""Flow control: rewards ahead of their decisions wait in their fetch, a
partition's rewards are paused while many wait and resumed once few do, and
a paused (or just resumed) reward log holds the watermark back."""

from __future__ import annotations

import asyncio
import math

import numpy as np
from aiokafka import TopicPartition
from learner_world import ARMS, LATENESS, T0, Run, decision_value, make_world, record

from bandit_engine.stream.learner import (
    HOLD_MAX_S,
    PAUSE_ORPHANS,
    RESUME_ORPHANS,
    decode_decisions,
    decode_rewards,
)


def test_rewards_pause_while_their_decisions_lag_and_resume() -> None:
    n = PAUSE_ORPHANS + 500
    strangers = PAUSE_ORPHANS + 100  # rewards of events nobody decided
    w = make_world(
        [(f"ev{i}", [0], T0) for i in range(n)],
        [(T0, f"ev{i}", ARMS[0], 1.0) for i in range(n)]
        + [(T0, f"nobody{j}", ARMS[0], 1.0) for j in range(strangers)],
    )
    run = Run(w)

    async def main() -> None:
        await run.start()
        part = run.join.partitions[0]

        def paused() -> bool:
            run.flow.regulate()
            return run.consumer.is_paused("f")

        await run.read("f", PAUSE_ORPHANS)
        assert len(part.orphans) == PAUSE_ORPHANS and not paused()  # at the limit: go on
        await run.read("f", n - PAUSE_ORPHANS)
        assert paused()  # 2,500 wait, and their decisions are still in the log
        await run.read("d", n - RESUME_ORPHANS - 1)
        assert len(part.orphans) == RESUME_ORPHANS + 1 and paused()  # not yet
        await run.read("d", RESUME_ORPHANS)
        assert len(part.orphans) == 1 and not paused()  # few wait: resumed
        await run.read("f", strangers)
        assert len(part.orphans) > PAUSE_ORPHANS and paused()  # one decision still lags
        await run.read("d", 1)
        # thousands still wait, but no decision lags behind them: resumed
        assert len(part.orphans) == strangers and not paused()
        run.committer.close()

    asyncio.run(main())


def test_rewards_logged_after_the_newest_decision_wait_in_their_fetch() -> None:
    """A fetch of rewards ahead of the decisions is taken only as far as the
    newest decision taken (by Kafka timestamp): the rest waits, unprocessed
    (not in the committed offsets), with the rewards paused, and is taken
    once the decisions are in."""
    n = 50
    w = make_world(
        [(f"ev{i}", [0], T0 + i) for i in range(n)],
        [(T0 + i + 0.5, f"ev{i}", ARMS[0], 1.0) for i in range(n)],
    )
    run = Run(w, hold=True)

    async def main() -> None:
        await run.start()
        part = run.join.partitions[0]

        def paused() -> bool:
            run.flow.regulate()
            return run.consumer.is_paused("f")

        await run.read("f", 25)
        await run.read("f", 25)
        assert part.fb_next == 0 and not part.orphans and paused()  # no decision yet
        assert run.flow.deferred(0) == n
        await run.read("d", 20)
        # rewards 0..18 were logged before decision 19 (the newest): taken, joined
        assert part.fb_next == 19 and not part.orphans and paused()
        assert run.join.counters[("e", "rewards_applied")] == 19
        cp = run.join.checkpoint()
        assert cp.offsets[0].fb_next == 19  # the deferred ones are not committed as read
        await run.read("d", n - 20)  # no backlog left: all go
        assert part.fb_next == n and not run.flow.deferred(0) and not part.orphans
        assert not paused()
        assert run.join.counters[("e", "rewards_applied")] == n - 19
        run.committer.close()

    asyncio.run(main())


def test_a_paused_or_just_resumed_reward_log_holds_the_watermark() -> None:
    """While the rewards are paused the consumer fetches none, so their
    highwater is stale: windows must not close on it, until a fetch of the
    rewards after the resume."""
    w = make_world([("ev0", [0], T0)], [], window=1.0)
    run = Run(w)
    wall = [1_000]

    async def main() -> None:
        await run.start()
        run.flow.wall_ms = lambda: wall[0]
        run.clock = T0 + 100.0
        part = run.join.partitions[0]
        part.fb_time = T0 + 0.5  # the newest reward seen
        run.consumer.pause(TopicPartition("f", 0))
        await run.read("d", 1)
        assert part.watermark == T0 + 0.5 - LATENESS and part.pending  # paused: held back
        run.flow.regulate()  # nothing waits: resumed
        assert not run.consumer.is_paused("f")
        wall[0] += 10
        run.tick(0)
        assert part.pending  # resumed, not fetched yet
        run.consumer.polled[("f", 0)] = wall[0] - 20  # a fetch from before the resume
        run.tick(0)
        assert part.pending
        run.consumer.polled[("f", 0)] = wall[0] + 5  # fetched since: the clock
        run.tick(0)
        assert part.watermark == run.clock - LATENESS and not part.pending
        run.committer.close()

    asyncio.run(main())


def test_rewards_are_held_for_a_bounded_time() -> None:
    """Holding only orders the work: with the decisions still behind after
    ``HOLD_MAX_S`` seconds, the held rewards are taken anyway (as orphans)."""
    w = make_world(
        [(f"ev{i}", [0], T0 + i) for i in range(4)],
        [(T0 + 10 + i, f"ev{i}", ARMS[0], 1.0) for i in range(4)],
    )
    run = Run(w, hold=True)

    async def main() -> None:
        await run.start()
        part = run.join.partitions[0]
        await run.read("d", 1)
        await run.read("f", 4)
        assert part.fb_next == 0 and run.flow.deferred(0) == 4
        run.clock += HOLD_MAX_S / 2
        assert run.flow.release(0) == []  # still waiting for decisions 1..3
        run.clock += HOLD_MAX_S
        for batch in run.flow.release(0):
            run.join.take_rewards(0, decode_rewards(batch))
        assert part.fb_next == 4 and not run.flow.deferred(0)
        assert len(part.orphans) == 3  # taken: 1 joined, 3 wait for their decisions
        await run.read("d", 3)
        assert not part.orphans and run.join.counters[("e", "rewards_applied")] == 4
        run.committer.close()

    asyncio.run(main())


def test_a_decision_with_a_deadline_that_is_not_finite_is_malformed() -> None:
    """It would never close (and a NaN unsettles the deadline order): counted
    ``malformed_decision``."""
    deadlines = [T0 + 5, math.nan, math.inf, T0 + 6, -math.inf, T0 + 7]
    recs = [
        record("d", i, decision_value(f"ev{i}", [0], T0, d, np.zeros(2)), None, 0)
        for i, d in enumerate(deadlines)
    ]
    run = Run(make_world([], []))

    async def main() -> None:
        await run.start()
        assert await run.committer.take_decisions(0, decode_decisions(recs))
        assert sorted(run.join.partitions[0].pending) == ["ev0", "ev3", "ev5"]
        assert run.join.counters[("e", "malformed_decision")] == 3
        run.committer.close()

    asyncio.run(main())
