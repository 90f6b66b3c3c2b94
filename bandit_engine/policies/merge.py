"""Posteriors as sums: evidence learned apart from disjoint events, merged.

A policy whose state is its prior plus a sum over events (``Policy.evidence_keys``
names those arrays; ``pulls`` and ``reward_sum`` are plain counts) can learn
on several machines at once: each learns its own events from the prior
(``evidence``), and ``absorb`` adds what they learned to one posterior.
Forgetting by time (``half_life_s``) keeps this exact: an event counts
2^((t - clock) / half_life_s), so evidence held at clock c is brought to a
later clock c' by the factor 2^(-(c' - c) / half_life_s), the same factor
the policy applies to its own evidence when its clock moves.

Not mergeable: the logistic model (its Laplace state is a mode, not a sum)
and a per-update ``decay`` below 1 (the weight of an event depends on how
many came after it, on whichever machine).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from bandit_engine._exceptions import InvalidArgument
from bandit_engine.policies.base import FloatArray, IntArray, Policy, check_events
from bandit_engine.policies.forgetting import Forgetting

__all__ = ["absorb", "evidence", "evidence_of", "mergeable"]

_COUNTS = ("pulls", "reward_sum")


def mergeable(policy: Policy) -> bool:
    """Whether ``policy``'s state is its prior plus a sum over its events."""
    return bool(policy.evidence_keys) and policy.decay == 1.0


def evidence(policy: Policy, prior: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What ``policy`` learned since its state was ``prior`` (its own
    ``state_dict`` then, with the same arms): ``arms``, the arms whose
    evidence moved; their rows of the per-arm evidence arrays and counts, as
    differences; the shared arrays whole; and the clock they are held at."""
    if not mergeable(policy):
        raise InvalidArgument(f"{policy.kind} with decay={policy.decay} is not a sum of events")
    state = policy.state_dict()
    diff = {k: state[k] - prior[k] for k in (*policy.evidence_keys, *_COUNTS)}
    moved = diff["pulls"] != 0
    for k in _per_arm(policy):
        moved |= diff[k].reshape(diff[k].shape[0], -1).any(axis=1)
    arms = np.flatnonzero(moved).astype(np.int64)
    rows = (*_per_arm(policy), *_COUNTS)
    out = {k: v[arms] if k in rows else v for k, v in diff.items()}
    out["arms"] = arms
    if "clock" in state:
        out["clock"] = state["clock"]
    return out


def evidence_of(
    policy: Policy,
    arms: IntArray,
    xs: FloatArray | None,
    rewards: FloatArray,
    times: FloatArray | None = None,
    weights: FloatArray | None = None,
) -> dict[str, np.ndarray]:
    """The evidence of events alone, as ``evidence`` gives it for a policy
    of ``policy``'s kind and arms, at its prior, after ``update_batch`` of
    them: summed directly, without the caches an update keeps (inverses,
    factors). ``policy`` does not change. Checked as ``update_batch``
    checks them; no events at all: no evidence."""
    if not mergeable(policy):
        raise InvalidArgument(f"{policy.kind} with decay={policy.decay} is not a sum of events")
    if np.size(arms) == 0:
        arms, xs, rewards = np.zeros(0, np.int64), np.zeros((0, policy.dim)), np.zeros(0)
        times = weights = None
    else:
        arms, xs, rewards, times, weights = check_events(policy, arms, xs, rewards, times, weights)
    w = np.ones(arms.shape[0]) if weights is None else weights
    keep = w > 0.0  # an event of weight 0 changes no arm (as in update_batch)
    clock = None
    if times is not None and policy.half_life_s > 0.0:
        # an event's weight at the clock it ends at: its weight when applied,
        # times every move of the clock after it (Forgetting)
        forget = Forgetting(policy.half_life_s)
        cuts, ws = forget.plan(times)
        after = np.ones(arms.shape[0])
        for stop, factor in cuts:
            after[:stop] *= factor
        keep &= w * ws > 0.0  # too small for a float when applied: skipped, as there
        w = w * ws * after
        clock = forget.clock if forget.started else None
    arms, rewards, w = arms[keep], rewards[keep], w[keep]
    xs = np.zeros((arms.shape[0], policy.dim)) if xs is None else xs[keep]
    n = policy.n_arms
    pulls = np.bincount(arms, minlength=n).astype(np.int64)
    moved = np.flatnonzero(pulls).astype(np.int64)
    sums = policy._evidence_sums(arms, xs, rewards, w)
    rows = _per_arm(policy)
    out = {k: v[moved] if k in rows else v for k, v in sums.items()}
    out["pulls"] = pulls[moved]
    out["reward_sum"] = np.bincount(arms, rewards, n)[moved]
    out["arms"] = moved
    if clock is not None:
        out["clock"] = np.array([clock])
    return out


def _per_arm(policy: Policy) -> tuple[str, ...]:
    return policy.evidence_keys if policy.evidence_per_arm else ()


def absorb(policy: Policy, parts: Sequence[Mapping[str, np.ndarray]]) -> None:
    """Add the evidence of ``parts`` (from ``evidence``, each learned from
    events ``policy`` has not seen) to ``policy``, at the latest clock among
    them. A part may know fewer arms than ``policy`` (arms added since),
    never more. Everything is checked first: a bad part raises and changes
    nothing."""
    if not parts:
        return
    if not mergeable(policy):
        raise InvalidArgument(f"{policy.kind} with decay={policy.decay} is not a sum of events")
    state = policy.state_dict()
    keys = (*policy.evidence_keys, *_COUNTS)
    per_arm = (*_per_arm(policy), *_COUNTS)
    for i, part in enumerate(parts):
        if "clock" in part and (
            np.shape(part["clock"]) != (1,) or not np.isfinite(part["clock"]).all()
        ):
            raise InvalidArgument(f"part[{i}] has clock {np.asarray(part['clock']).tolist()}")
        for k in ("arms", *keys):
            if k not in part:
                raise InvalidArgument(f"part[{i}] has no {k!r}")
            if not np.isfinite(part[k]).all():
                raise InvalidArgument(f"part[{i}][{k!r}] holds a NaN or an infinity")
        arms = np.asarray(part["arms"])
        if arms.ndim != 1 or (arms.size and (arms.min() < 0 or arms.max() >= policy.n_arms)):
            raise InvalidArgument(
                f"part[{i}] names arms {arms.tolist()[:8]}; the policy has {policy.n_arms}"
            )
        for k in keys:
            got, have = np.shape(part[k]), state[k].shape
            want = (arms.shape[0], *have[1:]) if k in per_arm else have
            if got != want:
                raise InvalidArgument(f"part[{i}][{k!r}] has shape {got}; expected {want}")
    h = policy.half_life_s
    clocks = [float(p["clock"][0]) for p in parts if "clock" in p]
    target = None
    if h > 0.0 and clocks:
        own = float(state["clock"][0]) if "clock" in state else -math.inf
        target = max(own, *clocks)
        policy.advance_clock(target + 0.5 * policy._forget.grid)  # mid-cell: no rounding
        state = policy.state_dict()
    for part in parts:
        factor = 1.0
        if target is not None and "clock" in part:
            factor = math.exp2(-(target - float(part["clock"][0])) / h)
        arms = np.asarray(part["arms"], dtype=np.int64)
        for k in keys:
            add = np.asarray(part[k], dtype=state[k].dtype)
            if factor != 1.0 and k in policy.evidence_keys:
                add = add * factor
            if k in per_arm:
                np.add.at(state[k], arms, add)
            else:
                state[k] = state[k] + add
    policy.load_state_dict(state)
