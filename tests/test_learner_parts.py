"""Learners that share the partitions store plain experiments' evidence
beside the snapshot (``SnapshotPart``), and the learner of partition 0
absorbs it: the posterior and the counters are those of taking turns on
the snapshot's row, without services (the in-memory store)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from learner_world import ARMS, T0, Run, World, make_world, seeded_store

from bandit_engine.core.ports import PolicyChange

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
