"""Exactly once across crashes, for any interleaving of the two logs.

The learner reads a decisions log and a feedback log. What it makes of a
reward can depend on the order in which records of the two logs reach it
(a reward before its decision waits as an orphan) and on the clock (an
orphan expires as ``unknown_event``). After a crash it replays both logs
from its resume offsets, and the consumer may interleave them differently
from the first time.

Here the learner's parts run against the in-memory store: Hypothesis picks
the logs, the interleaving, the clock, the commits, the commits that fail
(before or after they land) and the crashes. Whatever it picks, each reward
record must be resolved exactly once (applied or dead-lettered, by the
counters), no (event, arm) may be applied twice, and a reward is called a
duplicate only of one that was applied.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from learner_world import ARMS, T0, Run, World, make_world


@st.composite
def worlds(draw: Any) -> World:
    """A few decisions (some logged twice), their rewards (some copies, some
    before the decision in time), and rewards of events nobody decided, in a
    random log order."""
    decisions = []
    fb: list[tuple[float, str, str, float]] = []
    for i in range(draw(st.integers(1, 6))):
        ev = f"ev{i}"
        shown = draw(st.lists(st.sampled_from([0, 1, 2]), min_size=1, max_size=3, unique=True))
        t = T0 + draw(st.floats(0, 20))
        decisions.append((ev, shown, t))
        for s in shown:
            for _ in range(draw(st.integers(0, 3))):  # 0: no click; >1: retries
                fb.append((t + draw(st.floats(-1, 20)), ev, ARMS[s], draw(st.sampled_from([0, 1]))))
    for j in range(draw(st.integers(0, 2))):
        fb.append((T0 + draw(st.floats(0, 20)), f"nobody{j}", ARMS[0], 1.0))
    order = draw(st.permutations(range(len(fb))))
    copies = draw(st.lists(st.integers(0, len(decisions) - 1), max_size=3))
    return make_world(decisions, [fb[k] for k in order], copies=tuple(copies))


# Interleavings that must always be run.
#: joined and committed with the clock past its orphan expiry; after the
#: crash the reward is replayed before its decision; then a retried copy
#: (which must be a duplicate, not applied a second time)
REPLAYED_BEFORE_ITS_DECISION = (
    make_world(
        [("ev0", [0], T0), ("ev1", [0], T0 + 29)],
        [(T0 + 30, "ev1", "a0", 1.0), (T0 + 1, "ev0", "a0", 1.0), (T0 + 1, "ev0", "a0", 1.0)],
    ),
    [
        ("read", "d", 2),
        ("read", "f", 2),
        ("tick", 40.0, 0),
        ("commit", None, 0),
        ("crash", "", 0),
        ("read", "f", 2),
        ("read", "d", 2),
    ],
)
#: after a failed commit the join state is rebuilt; a new reward arrives
#: before the replay reaches its (committed) decision, so it is an orphan at
#: the next commit although its decision was processed before that commit
ORPHAN_OF_A_COMMITTED_DECISION = (
    make_world(
        [("ev0", [0], T0), ("ev1", [0], T0), ("ev2", [0], T0)],
        [(T0, "ev2", "a0", 1.0), (T0, "ev2", "a0", 1.0)],
    ),
    [("read", "d", 3), ("commit", "after", 0), ("read", "f", 1), ("commit", None, 0)],
)
#: an orphan stored at a commit must stay stored while a later commit is
#: made before the replay reaches it
ORPHAN_NOT_YET_REPLAYED = (
    make_world([("ev0", [0], T0)], [(T0, "nobody0", "a0", 1.0)]),
    [("read", "f", 1), ("commit", "after", 0), ("commit", "after", 0)],
)


STEP = st.one_of(
    st.tuples(st.just("read"), st.sampled_from(["d", "f"]), st.integers(1, 4)),
    st.tuples(st.just("tick"), st.floats(0.0, 12.0), st.just(0)),
    st.tuples(st.just("commit"), st.sampled_from([None, None, "before", "after"]), st.just(0)),
    st.tuples(st.just("crash"), st.just(""), st.just(0)),
)


def _play(world: World, steps: list[tuple[str, Any, int]], hold: bool) -> Run:
    run = Run(world, hold)

    async def main() -> None:
        await run.start()
        for kind, arg, n in steps:
            if kind == "read":
                await run.read(arg, n)
            elif kind == "tick":
                run.tick(arg)
            elif kind == "commit":
                await run.commit(arg)
            else:
                await run.crash()
        await run.finish()

    asyncio.run(main())
    return run


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(worlds(), st.lists(STEP, max_size=40))
@example(*REPLAYED_BEFORE_ITS_DECISION)
@example(*ORPHAN_OF_A_COMMITTED_DECISION)
@example(*ORPHAN_NOT_YET_REPLAYED)
@pytest.mark.parametrize("hold", [False, True], ids=["taken-at-once", "held-back"])
def test_every_reward_is_resolved_exactly_once(hold: bool, world: World, steps: list[Any]) -> None:
    run = _play(world, steps, hold)
    counters = run.stored_counters()
    dead = {k[5:]: v for k, v in counters.items() if k.startswith("dead_")}
    applied = counters.get("rewards_applied", 0)
    # each feedback record resolved once: applied, or dead-lettered with a reason
    assert applied + sum(dead.values()) == len(world.feedback), (counters, len(world.feedback))
    # nothing applied twice: the updates that reached the store, by (event, arm)
    keys = run.applied_keys()
    assert len(keys) == applied
    assert len(set(keys)) == len(keys), f"applied twice: {sorted(keys)}"
    # a copy is a duplicate only of an applied one
    dup_keys = {world.keys[off] for reason, off in run.dead.sent if reason == "duplicate"}
    assert dup_keys <= set(keys), f"duplicates of rewards never applied: {dup_keys - set(keys)}"
    # rewards of events nobody decided are unknown, never anything else
    nobody = sum(1 for ev, _ in world.keys if ev.startswith("nobody"))
    assert dead.get("unknown_event", 0) >= nobody
    # every decision counted once, however often it was logged or replayed
    events = len(world.x_of)
    assert counters.get("decisions", 0) == events
    assert counters.get("duplicate_decision", 0) == len(world.decisions) - events
