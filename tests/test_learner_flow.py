"""Flow control: a partition's rewards are paused while thousands wait for
decisions still in the log, and resumed once few wait or the decisions have
caught up (``Learner._flow``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from test_learner_replay import (
    ARMS,
    GRACE,
    LATENESS,
    SETTINGS,
    T0,
    FakeConsumer,
    MemoryStore,
    make_world,
)
from test_wire import records_chunk

from bandit_engine.stream.learner import _HOLD_MAX_S, _PAUSE_ORPHANS, _RESUME_ORPHANS, Learner


def _learner(clock: Callable[[], float]) -> Learner:
    return Learner(
        MemoryStore(),  # type: ignore[arg-type]
        SETTINGS,
        lateness=LATENESS,
        orphan_grace=GRACE,
        clock=clock,
        gc_threshold=None,
    )


class PausingConsumer(FakeConsumer):
    def __init__(self, n_dec: int, n_fb: int) -> None:
        super().__init__(n_dec, n_fb)
        self._paused: set[Any] = set()

    def pause(self, *tps: Any) -> None:
        self._paused.update(tps)

    def resume(self, *tps: Any) -> None:
        self._paused.difference_update(tps)

    def paused(self) -> set[Any]:
        return set(self._paused)


def test_rewards_pause_while_their_decisions_lag_and_resume() -> None:
    n = _PAUSE_ORPHANS + 500
    strangers = _PAUSE_ORPHANS + 100  # rewards of events nobody decided
    w = make_world(
        [(f"ev{i}", [0], T0) for i in range(n)],
        [(T0, f"ev{i}", ARMS[0], 1.0) for i in range(n)]
        + [(T0, f"nobody{j}", ARMS[0], 1.0) for j in range(strangers)],
    )

    async def main() -> None:
        lr = _learner(lambda: T0)
        c = lr._consumer = PausingConsumer(len(w.decisions), len(w.feedback))
        await lr._restore({0})
        part = lr._parts[0]

        def rewards(a: int, b: int) -> None:
            for m in w.feedback[a:b]:
                lr._on_feedback(part, m.offset, m.key, m.value, m.timestamp)

        def paused() -> bool:
            lr._flow()
            return any(tp.topic == "f" for tp in c.paused())

        rewards(0, _PAUSE_ORPHANS)
        assert len(part.orphans) == _PAUSE_ORPHANS and not paused()  # at the limit: go on
        rewards(_PAUSE_ORPHANS, n)
        assert paused()  # 2,500 wait, and their decisions are still in the log
        await lr._take_decisions(part, w.decisions[: n - _RESUME_ORPHANS - 1])
        assert len(part.orphans) == _RESUME_ORPHANS + 1 and paused()  # not yet
        await lr._take_decisions(part, w.decisions[n - _RESUME_ORPHANS - 1 : n - 1])
        assert len(part.orphans) == 1 and not paused()  # few wait: resumed
        rewards(n, n + strangers)
        assert len(part.orphans) > _PAUSE_ORPHANS and paused()  # one decision still lags
        await lr._take_decisions(part, w.decisions[n - 1 :])
        # thousands still wait, but no decision lags behind them: resumed
        assert len(part.orphans) == strangers and not paused()
        lr._db.shutdown(wait=True)

    asyncio.run(main())


def test_rewards_logged_after_the_newest_decision_wait_in_their_fetch() -> None:
    """A fetch of rewards ahead of the decisions is taken only as far as the
    newest decision taken (by Kafka timestamp): the rest waits, unprocessed
    (not in the committed offsets), with the rewards paused, and is taken
    once the decisions are in. Chunks and ordinary records alike."""
    n = 50
    w = make_world(
        [(f"ev{i}", [0], T0 + i) for i in range(n)],
        [(T0 + i + 0.5, f"ev{i}", ARMS[0], 1.0) for i in range(n)],
    )

    async def main() -> None:
        lr = _learner(lambda: T0)
        c = lr._consumer = PausingConsumer(len(w.decisions), len(w.feedback))
        await lr._restore({0})
        part = lr._parts[0]

        def paused() -> bool:
            lr._flow()
            return any(tp.topic == "f" for tp in c.paused())

        lr._take_feedback(part, [records_chunk(w.feedback[:25]), *w.feedback[25:]])
        assert part.fb_next == 0 and not part.orphans and paused()  # no decision yet
        await lr._take_decisions(part, [records_chunk(w.decisions[:20])])
        lr._take_held(part)
        # rewards 0..18 were logged before decision 19 (the newest): taken, joined
        assert part.fb_next == 19 and not part.orphans and paused()
        assert lr._offsets()[0].fb_next == 19  # the held ones are not committed as read
        assert lr._counters[("e", "rewards_applied")] == 19
        await lr._take_decisions(part, w.decisions[20:])  # no backlog left: all go
        lr._take_held(part)
        assert part.fb_next == n and not part.held and not part.orphans and not paused()
        assert lr._counters[("e", "rewards_applied")] == n
        lr._db.shutdown(wait=True)

    asyncio.run(main())


def test_a_paused_or_just_resumed_reward_log_holds_the_watermark() -> None:
    """While the rewards are paused the consumer fetches none, so their
    highwater is stale: windows must not close on it, until a fetch of the
    rewards after the resume (found in review: rewards written during a
    pause were dead-lettered as late)."""
    w = make_world([("ev0", [0], T0)], [])

    async def main() -> None:
        clock = [T0 + 100.0]
        lr = _learner(lambda: clock[0])
        c = lr._consumer = PausingConsumer(1, 0)
        polls: dict[str, int | None] = {"f": None}
        c.last_poll_timestamp = lambda tp: polls[tp.topic]  # type: ignore[method-assign]
        await lr._restore({0})
        part = lr._parts[0]
        part.fb_time = T0
        await lr._take_decisions(part, w.decisions)
        fb = _tp("f")
        c.pause(fb)
        assert lr._bound(part, clock[0]) == T0 - LATENESS  # paused: held at the rewards seen
        lr._flow()  # nothing held, no orphans: resumed
        assert fb not in c.paused() and part.fb_resumed_ms
        assert lr._bound(part, clock[0]) == T0 - LATENESS  # resumed, not fetched yet
        polls["f"] = part.fb_resumed_ms - 1
        assert lr._bound(part, clock[0]) == T0 - LATENESS  # a fetch from before the resume
        polls["f"] = part.fb_resumed_ms + 5
        assert lr._bound(part, clock[0]) == clock[0] - LATENESS  # fetched since: the clock
        lr._db.shutdown(wait=True)

    asyncio.run(main())


def _tp(topic: str) -> Any:
    from aiokafka import TopicPartition

    return TopicPartition(topic, 0)


def test_rewards_are_held_for_a_bounded_time() -> None:
    """Holding only orders the work: with the decisions still behind after
    ``_HOLD_MAX_S`` seconds, the held rewards are taken anyway (as orphans)."""
    w = make_world(
        [(f"ev{i}", [0], T0 + i) for i in range(4)],
        [(T0 + 10 + i, f"ev{i}", ARMS[0], 1.0) for i in range(4)],
    )

    async def main() -> None:
        clock = [T0]
        lr = _learner(lambda: clock[0])
        lr._consumer = PausingConsumer(len(w.decisions), len(w.feedback))
        await lr._restore({0})
        part = lr._parts[0]
        await lr._take_decisions(part, w.decisions[:1])
        lr._take_feedback(part, [records_chunk(w.feedback)])
        assert part.fb_next == 0 and part.held
        clock[0] += _HOLD_MAX_S / 2
        lr._take_held(part)
        assert part.fb_next == 0  # still waiting for decisions 1..3
        clock[0] += _HOLD_MAX_S
        lr._take_held(part)
        assert part.fb_next == 4 and not part.held and part.held_since is None
        assert len(part.orphans) == 3  # taken: 1 joined, 3 wait for their decisions
        await lr._take_decisions(part, w.decisions[1:])
        assert not part.orphans and lr._counters[("e", "rewards_applied")] == 4
        lr._db.shutdown(wait=True)

    asyncio.run(main())


def test_a_decision_with_a_deadline_that_is_not_finite_is_malformed() -> None:
    """It would never close (and a NaN unsettles the deadline heap): counted
    ``malformed_decision``, record by record and in a chunk alike."""
    from test_learner_replay import _Rec

    from bandit_engine._proto.bandit.v1 import log_pb2

    def rec(i: int, deadline: float) -> Any:
        body = log_pb2.DecisionRecord(
            event_id=f"ev{i}",
            experiment_id="e",
            created_at=T0,
            deadline=deadline,
            x_f64=bytes(16),
            slots=[0],
        ).SerializeToString()
        return _Rec(i, body, timestamp=int(T0 * 1000))

    async def main() -> None:
        lr = _learner(lambda: T0)
        lr._consumer = PausingConsumer(6, 0)
        await lr._restore({0})
        part = lr._parts[0]
        recs = [rec(0, T0 + 5), rec(1, float("nan")), rec(2, float("inf"))]
        await lr._take_decisions(part, recs)
        more = [rec(3, T0 + 6), rec(4, float("nan")), rec(5, T0 + 7)]
        await lr._take_decisions(part, [records_chunk(more)])
        assert sorted(part.pending) == ["ev0", "ev3", "ev5"]
        assert lr._counters[("e", "malformed_decision")] == 3
        lr._db.shutdown(wait=True)

    asyncio.run(main())
