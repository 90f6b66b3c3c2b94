"""Kafka mode's learner feeds challengers: across crashes, failed commits
and any interleaving of the two logs, a challenger with the champion's
settings ends with the champion's state (the same events, once each), a
challenger added while the learner runs learns from its next commit on, and
the shadow rankings the decision records carry join the window once."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from learner_world import T0, Run, World, record, seeded_store
from test_learner_replay import STEP, worlds

from bandit_engine import ExperimentConfig
from bandit_engine.core.challengers import ShadowRecord, policy_settings
from bandit_engine.store import PolicyChange
from bandit_engine.stream import decode_decision, encode_decision

CFG = ExperimentConfig("e", policy="lin_ts_disjoint", dim=2, reward_window_s=1e6)


def _play(world: World, steps: list[tuple[str, Any, int]], add_at: int | None) -> Run:
    store = seeded_store()
    twin = PolicyChange("e", "add", "twin", policy_settings(CFG), "alice", T0)
    beta = PolicyChange("e", "add", "beta", {"policy": "beta_ts"}, "bob", T0)
    if add_at is None:
        store.record_policy_change(twin)
    run = Run(world, store=store)

    async def main() -> None:
        await run.start()
        for i, (kind, arg, n) in enumerate(steps):
            if i == add_at:
                store.record_policy_change(twin)
                store.record_policy_change(beta)
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


def _states(run: Run) -> dict[str, dict[str, np.ndarray]]:
    snap = run.store.load_snapshot("e")
    assert snap is not None
    out: dict[str, dict[str, np.ndarray]] = {"champion": {}}
    for key, arr in snap.state.items():
        if key.startswith("ch."):
            name, _, sub = key[3:].partition(".")
            out.setdefault(name, {})[sub] = arr
        elif "." not in key and key not in ("champion_name", "win_pos"):
            out["champion"][key] = arr
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.lists(STEP, max_size=30))
def test_a_twin_challenger_holds_the_champions_state(world: World, steps: list[Any]) -> None:
    run = _play(world, steps, add_at=None)
    if run.store.load_snapshot("e") is None:
        return  # nothing applied
    states = _states(run)
    assert set(states) == {"champion", "twin"}
    for key, arr in states["champion"].items():
        np.testing.assert_array_equal(states["twin"][key], arr, err_msg=key)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.lists(STEP, min_size=1, max_size=30), st.data())
def test_a_challenger_added_while_running_learns_from_then_on(
    world: World, steps: list[Any], data: st.DataObject
) -> None:
    add_at = data.draw(st.integers(0, len(steps) - 1))
    run = _play(world, steps, add_at)
    snap = run.store.load_snapshot("e")
    if snap is None:
        return
    states = _states(run)
    champion_pulls = int(states["champion"]["pulls"].sum())
    for name in ("twin", "beta"):
        if name in states:  # picked up at a commit that had events
            assert 0 <= int(states[name]["pulls"].sum()) <= champion_pulls
    if "beta" in states:
        b = states["beta"]
        # Beta-Bernoulli: alpha + beta = prior 2 per arm + its pulls (no forgetting
        # by time within a day of decisions)
        n = int(b["pulls"].sum())
        assert float(b["alpha"].sum() + b["beta"].sum()) == pytest.approx(2 * len(b["pulls"]) + n)


def with_shadow(world: World) -> World:
    """The same world, every decision record carrying a shadow ranking by ``twin``."""
    rec = ShadowRecord(0.5, 0.25, ("twin",), np.array([0.5]), np.array([0.3]))
    out = copy.copy(world)
    out.decisions = []
    for r in world.decisions:
        row = dataclasses.replace(decode_decision(r.value), shadow=rec)
        out.decisions.append(record("d", r.offset, encode_decision(row), r.key, r.timestamp))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.lists(STEP, max_size=30))
def test_shadow_rankings_join_the_window_once(world: World, steps: list[Any]) -> None:
    """Across crashes, failed commits and interleavings, the window counts each
    decision whose first shown arm got its reward once, for the challenger
    and for the champion."""
    world = with_shadow(world)
    run = _play(world, steps, add_at=None)
    first: dict[str, str] = {}
    for r in world.decisions:
        row = decode_decision(r.value)
        first.setdefault(row.event_id, row.arms[0])
    applied = set(run.applied_keys())
    want = sum(1 for ev, arm in first.items() if (ev, arm) in applied)
    snap = run.store.load_snapshot("e")
    if snap is None:
        assert want == 0
        return
    for name in ("twin", "@logged"):
        key = f"win.{name}"
        n = int(snap.state[key][:, 0].sum()) if key in snap.state else 0
        assert n == want, (name, n, want)
    if want:
        # w = pi / p = 1 for every row; the DR term is dm + w (r - q)
        sums = snap.state["win.twin"].sum(axis=0)
        assert sums[1] == pytest.approx(want)  # sum w
