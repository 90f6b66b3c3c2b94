"""Learners that share the partitions store plain experiments' evidence
beside the snapshot (``SnapshotPart``), and the learner of partition 0
absorbs it: the posterior and the counters are those of taking turns on
the snapshot's row, without services (the in-memory store)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest
from learner_world import ARMS, SETTINGS, T0, Run, World, make_world, seeded_store

from bandit_engine.core.ports import PolicyChange
from bandit_engine.store import ArmRow, SnapshotPart
from bandit_engine.stream.learner import Committer, JoinState
from bandit_engine.stream.learner.join import Need
from bandit_engine.stream.learner.models import Models

Plan = list[tuple[str, list[int], float]]


def _worlds(seed: int) -> tuple[World, World]:
    """Two partitions' logs of experiment ``e``: decisions with one to three
    shown arms, rewards for some, a few late or for arms not shown."""
    rng = np.random.default_rng(seed)
    out = []
    for name in ("p", "q"):
        decisions: Plan = []
        feedback = []
        for i in range(40):
            ev = f"{name}{i}"
            t = T0 + i * 0.5
            shown = sorted(rng.choice(3, size=int(rng.integers(1, 4)), replace=False).tolist())
            decisions.append((ev, shown, t))
            for s in shown:
                if rng.random() < 0.6:
                    feedback.append((t + 0.2, ev, ARMS[s], float(rng.random())))
            if rng.random() < 0.05:
                feedback.append((t + 0.3, ev, "nope", 1.0))  # not shown: dead-lettered
        out.append(make_world(decisions, feedback, window=30.0))
    return out[0], out[1]


async def _learn(worlds: tuple[World, World], shared: bool, challenger: bool = False) -> Run:
    store = seeded_store()
    if challenger:
        store.record_policy_change(
            PolicyChange("e", "add", "alt", {"policy": "lin_ts_disjoint"}, "test", T0, 0)
        )
    runs = [Run(w, store=store, part=i) for i, w in enumerate(worlds)]
    for r in runs:
        r.n_partitions = 2
        r.snapshot_parts = shared
        await r.start()
    for step in range(60):  # interleaved reads and commits of both learners
        for r in runs:
            await r.read("d", 3)
            await r.read("f", 4)
            r.tick(0.7)
            if step % 3 == 0:
                assert await r.commit()
    for r in reversed(runs):  # the absorbing learner (partition 0) last
        await r.finish()
    written = sum(r.committer.parts_written for r in runs)
    runs[0].tick(1.0)
    await runs[0].start()  # a learner of partition 0 again: absorbs what waits
    runs[0].tick(1.0)
    assert await runs[0].commit()
    runs[0].committer.close()
    runs[0].written = written  # type: ignore[attr-defined]
    return runs[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shared_partitions_give_the_posterior_and_counters_of_taking_turns(seed: int) -> None:
    worlds = _worlds(seed)
    apart = asyncio.run(_learn(worlds, shared=True))
    turns = asyncio.run(_learn(worlds, shared=False))
    assert apart.store.pending_parts() == {}
    a, t = apart.store.load_snapshot("e"), turns.store.load_snapshot("e")
    assert a is not None and t is not None
    assert a.state.keys() == t.state.keys()
    for key in t.state:
        np.testing.assert_allclose(a.state[key], t.state[key], rtol=1e-9, atol=1e-12, err_msg=key)
    assert apart.store.learner_counters() == turns.store.learner_counters()
    assert turns.stored_counters()["rewards_applied"] > 50
    assert apart.written > 20 and turns.written == 0  # type: ignore[attr-defined]


def test_an_experiment_with_a_challenger_takes_turns() -> None:
    worlds = _worlds(4)
    run = asyncio.run(_learn(worlds, shared=True, challenger=True))
    assert run.written == 0  # type: ignore[attr-defined]
    assert run.store.pending_parts() == {}
    snap = run.store.load_snapshot("e")
    assert snap is not None and any(k.startswith("ch.alt.") for k in snap.state)


def test_parts_absorbed_while_the_loop_loads_the_same_experiment_are_kept() -> None:
    """After a reset no model is held: the absorbing commit and the loop's
    load of a decision's experiment may both load it at once. One copy is
    kept, and the version the absorb stored is that copy's, so the next
    absorb starts from the parts already absorbed."""
    store = seeded_store()
    join = JoinState(lateness=1.0, orphan_grace=5.0)
    committer = Committer(store, SETTINGS, join, clock=lambda: T0 + 10.0)
    join.assign(0, None, None)
    committer.n_partitions = 2

    def store_part(slot: int, n: int) -> None:
        model = Models(store).load("e")
        assert model is not None
        events = [(slot, np.array([1.0, 0.5]).tobytes(), 1.0, T0, 1.0, None)] * n
        part = SnapshotPart(model.learn_apart(events), {"rewards_applied": n})
        store.learner_commit(SETTINGS.group_id, {}, {}, {}, T0, None, {"e": part})

    loaded = store.load_experiments

    def slow_load() -> list[Any]:
        time.sleep(0.1)  # the other load starts meanwhile
        return loaded()

    async def main() -> None:
        store_part(0, 5)
        store.load_experiments = slow_load  # type: ignore[method-assign]

        async def loop_load() -> None:
            await asyncio.sleep(0.03)
            await committer.load(Need(0, "e", 0))

        ok, _ = await asyncio.gather(committer.commit(), loop_load())
        assert ok
        store.load_experiments = loaded  # type: ignore[method-assign]
        store_part(1, 3)
        committer.clock = lambda: T0 + 20.0  # the next absorb is due
        assert await committer.commit()

    asyncio.run(main())
    committer.close()
    snap = store.load_snapshot("e")
    assert snap is not None
    assert snap.state["pulls"].tolist() == [5, 3, 0]
    assert store.learner_counters() == {("e", "rewards_applied"): 8}


def test_a_part_naming_an_arm_added_since_the_model_loaded_is_absorbed() -> None:
    store = seeded_store()
    join = JoinState(lateness=1.0, orphan_grace=5.0)
    committer = Committer(store, SETTINGS, join, clock=lambda: T0 + 10.0)
    join.assign(0, None, None)
    committer.n_partitions = 2

    async def main() -> None:
        await committer.load(Need(0, "e", 0))  # the model, with arms a0..a2
        store.upsert_arms([ArmRow("e", "a3", 3, {}, True)])
        model = Models(store).load("e")  # another learner's copy, with a3
        assert model is not None
        events = [(3, np.array([1.0, 0.5]).tobytes(), 1.0, T0, 1.0, None)] * 2
        part = SnapshotPart(model.learn_apart(events), {"rewards_applied": 2})
        store.learner_commit(SETTINGS.group_id, {}, {}, {}, T0, None, {"e": part})
        assert await committer.commit()

    asyncio.run(main())
    committer.close()
    assert not committer.needs_reset and store.pending_parts() == {}
    snap = store.load_snapshot("e")
    assert snap is not None and snap.state["pulls"].tolist() == [0, 0, 0, 2]
