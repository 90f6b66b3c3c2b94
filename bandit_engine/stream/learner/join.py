"""The join of rewards to decisions, without I/O: no asyncio, Kafka or SQL.

``JoinState`` takes decoded records (``decode``) of each partition number,
with their offsets, and a clock value; it keeps what waits (decisions
waiting for their window, rewards waiting for their decision), closes
windows, and hands a commit everything it must store (``checkpoint``).
The rules it keeps are the learner's (``bandit_engine.stream.learner``):
a replay rebuilds the join state and changes no statistics; a replayed
reward is resolved only by its decision or by the committed held rewards,
never by the clock or the order in which the two logs come back. With an
``owner`` (the learner's), a reward whose decision lives on another
partition is handed to the commit to be forwarded there (``forward``).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from bandit_engine.core import ExperimentConfig
from bandit_engine.core.event_ids import decision_time
from bandit_engine.store import HeldRewards, LearnerOffsets
from bandit_engine.stream.learner.checkpoint import Checkpoint, DeadLetter, Event
from bandit_engine.stream.learner.decode import DecisionIn, RewardIn
from bandit_engine.stream.learner.forward import Forward, Headers, source_of
from bandit_engine.stream.learner.partition import (
    CLICKED,
    DEADLINE,
    EVENT,
    EXPERIMENT,
    REWARDED,
    SHADOW,
    SLOTS,
    SOURCES,
    Partition,
    Pending,
    Reward,
    X,
)

__all__ = ["JoinExperiment", "JoinState", "Need"]

#: Closed events are forgotten past ``closed_retention`` once a partition
#: holds more than this many.
_CLOSED_PRUNE = 100_000


class Need(NamedTuple):
    """A decision names an experiment, or an arm slot, not known yet: load
    it, then call ``take_decisions`` again from ``at`` with ``loaded``."""

    at: int  # the record's index in the rows
    experiment_id: str
    slot: int  # the highest slot the decision shows (-1: none)


class JoinExperiment:
    """What the join needs of an experiment: its reward range and arms."""

    __slots__ = ("click", "config", "default", "default_raw", "dim_bytes", "n_arms", "slots")

    def __init__(self, config: ExperimentConfig, slots: Mapping[str, int], n_arms: int) -> None:
        self.config = config
        self.slots = dict(slots)  # arm id -> slot
        self.n_arms = n_arms
        self.dim_bytes = 8 * config.dim
        self.default_raw = float(config.default_reward)  # type: ignore[arg-type]
        self.default = config.normalise_reward(self.default_raw)
        self.click = config.click


class JoinState:
    """Per partition number, the decisions and rewards that wait, and the
    updates, counters and dead letters not yet committed.

    ``lateness``: seconds a window stays open past its deadline (and the
    slack on the newest record times while a log has a backlog).
    ``orphan_grace``: seconds a reward waits for its decision before it is
    dead-lettered as ``unknown_event``. ``closed_retention``: seconds a
    closed event is remembered (to call a late copy late, not unknown).
    ``owner``: the partition that owns an event id (``owner_partition`` of
    its bytes and the partition count); a new reward that meets no decision
    on a partition that does not own it is forwarded. None: no forwarding.
    """

    def __init__(
        self,
        *,
        lateness: float = 2.0,
        orphan_grace: float = 10.0,
        closed_retention: float = 3600.0,
        owner: Callable[[str], int] | None = None,
    ) -> None:
        self.lateness = lateness
        self.orphan_grace = orphan_grace
        self.closed_retention = closed_retention
        self.owner = owner
        #: bumped whenever partitions are rebuilt: records decoded for an
        #: older epoch are void (the consumer reads them again)
        self.epoch = 0
        self._parts: dict[int, Partition] = {}
        self._exps: dict[str, JoinExperiment] = {}
        self._events: defaultdict[str, list[Event]] = defaultdict(list)
        self._counters: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._dead: list[DeadLetter] = []
        self._forwards: list[Forward] = []
        self._reward_times: list[float] = []

    # ----------------------------------------------------------- partitions
    def assign(
        self, p: int, committed: LearnerOffsets | None = None, held: HeldRewards | None = None
    ) -> Partition:
        """(Re)build partition ``p`` from its committed positions (a new
        partition starts at 0); the consumer reads it again from
        ``committed.dec_resume`` and ``committed.fb_resume``."""
        self.epoch += 1
        part = Partition(p, committed or LearnerOffsets(0, 0, 0, 0, 0.0), held or HeldRewards())
        self._parts[p] = part
        return part

    def revoke(self, p: int) -> None:
        """Forget partition ``p`` (another learner owns it now)."""
        self.epoch += 1
        self._parts.pop(p, None)

    def clear(self) -> list[int]:
        """Forget everything not committed (after a failed commit); returns
        the partition numbers held, to be assigned again."""
        self.epoch += 1
        parts = sorted(self._parts)
        self._parts.clear()
        self._exps.clear()
        self._events.clear()
        self._counters.clear()
        self._dead.clear()
        self._forwards.clear()
        self._reward_times.clear()
        return parts

    @property
    def partitions(self) -> Mapping[int, Partition]:
        return self._parts

    @property
    def counters(self) -> Mapping[tuple[str, str], int]:
        """Counters since the last checkpoint, by (experiment, name)."""
        return self._counted()

    def _counted(self) -> dict[tuple[str, str], int]:
        # ``rewards_applied`` is not counted reward by reward: each event of
        # an experiment is an applied feedback reward or a default one.
        out = dict(self._counters)
        for exp_id, events in self._events.items():
            n = len(events) - out.get((exp_id, "rewards_defaulted"), 0)
            if n:
                out[(exp_id, "rewards_applied")] = n
        return out

    # ---------------------------------------------------------- experiments
    def set_experiment(
        self, experiment_id: str, config: ExperimentConfig, slots: Mapping[str, int], n_arms: int
    ) -> None:
        """Learn (or refresh) an experiment: its config, arm slots and arm count."""
        self._exps[experiment_id] = JoinExperiment(config, slots, n_arms)

    def experiment(self, experiment_id: str) -> JoinExperiment | None:
        return self._exps.get(experiment_id)

    # ------------------------------------------------------------ decisions
    def take_decisions(
        self, p: int, rows: Sequence[DecisionIn], start: int = 0, loaded: bool = False
    ) -> Need | None:
        """Take decisions of partition ``p`` from ``rows[start:]``, in offset order.

        Stops at the first that names an experiment or arm slot this state
        does not know, and returns what to load (``Need``): nothing of that
        record is taken yet. ``loaded``: the record at ``start`` was asked
        for and loaded; what is still unknown now does not exist.
        """
        part = self._parts[p]
        exps, closed = self._exps, part.closed
        committed = part.committed
        counters = self._counters
        taken: list[str] = []
        newest, log_ms = part.dec_time, part.dec_log_ms
        i = start
        need = None
        for i in range(start, len(rows)):
            off, ms, ev, exp_id, created, deadline, x, slots, shadow = rows[i]
            if ms > log_ms:
                log_ms = ms
            replay = off < committed.dec_next
            if x is None:  # not a DecisionRecord
                if not replay:
                    counters[("", "malformed_decision")] += 1
                continue
            top = max(slots) if slots else -1
            exp = exps.get(exp_id)
            settled = replay and deadline <= committed.watermark
            if not settled and (exp is None or top >= exp.n_arms):
                if not (loaded and i == start):
                    need = Need(i, exp_id, top)
                    break
            if created > newest:
                newest = created
            if settled:
                self._closed_on_replay(part, ev, deadline)
                continue
            # a decision the model cannot learn from (wrong experiment, arms
            # or context) is counted here, never handed to an update that fails
            if (
                exp is None
                or top < 0
                or top >= exp.n_arms
                or len(x) != exp.dim_bytes
                or not math.isfinite(deadline)  # (it would never close)
            ):
                if not replay:
                    counters[(exp_id, "malformed_decision")] += 1
                continue
            pend = [ev, exp_id, x, slots, deadline, off, 0, -1, True, None, 0, shadow]  # Pending
            if ev in closed or not part.add_pending(pend):
                # A second copy (a producer's retry of a batch the broker had
                # written): the first one holds the join state.
                if not replay:
                    counters[(exp_id, "duplicate_decision")] += 1
                continue
            if not replay:
                taken.append(exp_id)
            # replayed rewards that waited for it were resolved before the
            # commit; orphans (new, or waiting at the commit) never were
            if part.replay_wait and ev in part.replay_wait:
                for fb_offset, fb in part.replay_wait.pop(ev):
                    self._join(part, pend, fb_offset, fb, True)
            if part.orphans and ev in part.orphans:
                for fb_offset, fb in part.orphans.pop(ev):
                    self._join(part, pend, fb_offset, fb, False)
        else:
            i = len(rows)
        if i > start:
            part.dec_next = max(part.dec_next, rows[i - 1][0] + 1)
        part.dec_time, part.dec_log_ms = newest, log_ms
        if taken:
            for exp_id, n in Counter(taken).items():
                counters[(exp_id, "decisions")] += n
        return need

    def _closed_on_replay(self, part: Partition, ev: str, deadline: float) -> None:
        """A replayed decision whose window closed before the commit."""
        part.closed[ev] = deadline
        # replayed rewards that waited for it were resolved before the
        # commit; an orphan (new, or waiting at the commit) is late
        part.replay_wait.pop(ev, None)
        for fb_offset, fb in part.orphans.pop(ev, ()):
            self._dead_letter(part, fb_offset, "", "late", "window already closed", ev, fb)

    # -------------------------------------------------------------- rewards
    def take_rewards(self, p: int, rows: Sequence[RewardIn]) -> None:
        """Take rewards of partition ``p``, in offset order."""
        if not rows:
            return
        part = self._parts[p]
        committed = part.committed.fb_next
        pending, exps = part.pending, self._exps
        events, times = self._events, self._reward_times
        mark = part.mark_rewarded
        newest = part.fb_time
        for off, key, value, ev, arm, reward, ts, error, ms, headers in rows:
            if off < committed:
                if off in part.held_unknown:
                    continue  # dead-lettered as unknown_event before the commit
            elif error is None and not headers and (pend := pending.get(ev)) is not None:
                # The common case: a new reward for a decision waiting for it.
                # The test is ``_join``'s for an applied reward; any other goes
                # to ``_join``, which says why not.
                if ts > newest:
                    newest = ts
                exp_id = pend[EXPERIMENT]
                exp = exps[exp_id]
                cfg = exp.config
                slot = exp.slots.get(arm, -1)
                bits = pend[REWARDED]
                if (
                    slot in pend[SLOTS]
                    and cfg.reward_min <= reward <= cfg.reward_max
                    and ts <= pend[DEADLINE]
                    and not bits >> slot & 1
                ):
                    mark(pend, bits | 1 << slot, off)
                    if reward > exp.default_raw:  # a click, which click models read
                        pend[CLICKED] |= 1 << slot
                    events[exp_id].append(_event(slot, pend, cfg.normalise_reward(reward)))
                    times.append(ts)
                else:
                    self._join(part, pend, off, (ev, arm, reward, ts, value, None), False)
                continue
            if error is not None:
                if off >= committed:
                    self._dead.append(
                        DeadLetter("", error.reason, str(error), key, value, part.p, off)
                    )
                    self._counters[("", f"dead_{error.reason}")] += 1
                continue
            if ts > newest:
                newest = ts
            source = source_of(headers) if headers else None
            self._reward(part, off, key, (ev, arm, reward, ts, value, source), ms, headers)
        part.fb_next = max(part.fb_next, rows[-1][0] + 1)
        part.fb_time = newest

    def _reward(
        self,
        part: Partition,
        offset: int,
        key: bytes | None,
        fb: Reward,
        ms: int = 0,
        headers: Headers = (),
    ) -> None:
        """A reward that is replayed, or meets no pending decision."""
        ev = fb[0]
        if offset < part.committed.fb_next and offset not in part.held_orphans:
            # Resolved before the commit, by a decision this replay has met or
            # will meet (or that is before the resume point), or forwarded
            # before the commit: rebuild only. Whatever the clock says now,
            # it is not an orphan.
            pend = part.pending.get(ev)
            if pend is not None:
                self._join(part, pend, offset, fb, True)
            elif ev not in part.closed and self._elsewhere(part, fb) < 0:
                part.replay_wait.setdefault(ev, []).append((offset, fb))
            return
        # New, or an orphan at the commit (unresolved then): resolved now.
        pend = part.pending.get(ev)
        if pend is not None:
            self._join(part, pend, offset, fb, False)
        elif ev in part.closed:
            letter = DeadLetter("", "late", "window already closed", key, fb[4], part.p, offset)
            self._dead.append(letter)
            self._counters[("", "dead_late")] += 1
        elif (to := self._elsewhere(part, fb)) >= 0:
            self._forwards.append(Forward(to, part.p, offset, key, fb[4], ms, headers))
            self._counters[("", "rewards_forwarded")] += 1
        else:
            part.add_orphan(offset, fb, fb[3] + self.orphan_grace)

    def _elsewhere(self, part: Partition, fb: Reward) -> int:
        """The partition to forward ``fb`` to, -1 if it stays: it is owned
        here, it is a forwarded copy already, or nothing is forwarded."""
        owner = self.owner
        if owner is None or fb[5] is not None:
            return -1
        p = owner(fb[0])
        return -1 if p == part.p else p

    def _join(self, part: Partition, pend: Pending, offset: int, fb: Reward, replay: bool) -> None:
        """Join a reward to its decision: apply it, or say why not."""
        ev, arm, reward, ts, _, source = fb
        exp_id, deadline = pend[EXPERIMENT], pend[DEADLINE]
        if source is not None:  # a forwarded copy: the first of its source counts
            seen = pend[SOURCES]
            if seen is None:
                pend[SOURCES] = {source}
            elif source in seen:
                if not replay:
                    self._counters[(exp_id, "duplicate_forward")] += 1
                return
            else:
                seen.add(source)
        exp = self._exps[exp_id]
        cfg = exp.config
        slot = exp.slots.get(arm, -1)
        bits = pend[REWARDED]
        if slot not in pend[SLOTS]:  # (-1 never is)
            reason, detail = "invalid", f"arm {arm!r} was not shown in {ev!r}"
        elif not cfg.reward_min <= reward <= cfg.reward_max:
            reason = "invalid"
            detail = f"reward={reward!r} outside [{cfg.reward_min!r}, {cfg.reward_max!r}]"
        elif ts > deadline:  # late whatever else came for this arm
            reason, detail = "late", f"timestamp {ts!r} after deadline {deadline!r}"
        elif bits >> slot & 1:
            reason, detail = "duplicate", f"({ev!r}, {arm!r}) already rewarded"
        else:
            part.mark_rewarded(pend, bits | 1 << slot, offset)
            if reward > exp.default_raw:  # a click, which click models read
                pend[CLICKED] |= 1 << slot
            if not replay:
                self._events[exp_id].append(_event(slot, pend, cfg.normalise_reward(reward)))
                self._reward_times.append(ts)
            return
        if not replay:
            self._dead_letter(part, offset, exp_id, reason, detail, ev, fb)

    def _dead_letter(
        self,
        part: Partition,
        offset: int,
        exp_id: str,
        reason: str,
        detail: str,
        ev: str,
        fb: Reward,
    ) -> None:
        self._dead.append(DeadLetter(exp_id, reason, detail, ev.encode(), fb[4], part.p, offset))
        self._counters[(exp_id, f"dead_{reason}")] += 1

    # -------------------------------------------------------------- windows
    def advance(self, now: float, behind: Callable[[int], tuple[bool, bool]] | None = None) -> None:
        """Close windows and expire orphans up to each restored partition's watermark.

        The watermark is the clock less ``lateness``, held back by a lagging
        log: ``behind(p)`` says whether partition ``p``'s decisions and its
        rewards have records still to come. While they do, records older
        than the clock are still to come: windows close only up to the
        newest reward time seen, and orphans expire only up to the newest
        decision time seen (each less ``lateness``, for producer skew).
        Otherwise a learner catching up after downtime would close windows
        before their rewards and call rewards unknown before their decisions.
        """
        for p, part in self._parts.items():
            if not part.restored:
                continue
            if part.replay_wait:
                part.replay_wait.clear()  # their decisions are before the resume point
            bound = now - self.lateness
            dec_behind, fb_behind = behind(p) if behind is not None else (False, False)
            if dec_behind:
                bound = min(bound, part.dec_time - self.lateness)
            if fb_behind:
                bound = min(bound, part.fb_time - self.lateness)
            part.watermark = wm = max(part.watermark, bound)
            for pend in part.due(wm):
                exp_id = pend[EXPERIMENT]
                defaults = _defaults(self._exps[exp_id], pend)
                self._events[exp_id] += defaults
                self._counters[(exp_id, "rewards_defaulted")] += len(defaults)
            for o, fb in part.expired_orphans(wm):
                ev = fb[0]
                self._dead_letter(part, o, "", "unknown_event", f"no decision {ev!r}", ev, fb)
            if len(part.closed) > _CLOSED_PRUNE:
                part.forget_closed(wm - self.closed_retention)

    # --------------------------------------------------------------- commit
    def checkpoint(self) -> Checkpoint:
        """Take what the next commit stores; the updates, counters and dead
        letters taken are no longer here (on success, ``confirm``; on
        failure the state is void: ``clear`` and assign again)."""
        cp = Checkpoint(partitions=dict(self._parts))
        for p, part in self._parts.items():
            cp.offsets[p] = off = part.positions()
            held = part.take_held(off.fb_resume)
            if held is not None:
                cp.held[p] = held
        if cp.offsets or self._events or self._counters:
            cp.events = {e: v for e, v in self._events.items() if v}
            cp.counters = self._counted()
            cp.dead_letters, cp.reward_times = self._dead, self._reward_times
            cp.forwards = self._forwards
            self._events = defaultdict(list)
            self._counters = defaultdict(int)
            self._dead, self._reward_times, self._forwards = [], [], []
        return cp

    def confirm(self, cp: Checkpoint) -> None:
        """``cp`` is committed: its positions become each partition's
        committed ones (unless the partition was rebuilt since)."""
        for p, off in cp.offsets.items():
            part = self._parts.get(p)
            if part is not None and part is cp.partitions[p]:
                part.committed_as(off, cp.held.get(p))


def _event(slot: int, pend: Pending, reward: float) -> Event:
    """A posterior update: a shown slot of a pending decision and its reward."""
    shadow = pend[SHADOW] if slot == pend[SLOTS][0] else None
    return (slot, pend[X], reward, decision_time(pend[EVENT]), 1.0, shadow)


def _defaults(exp: JoinExperiment, pend: Pending) -> list[Event]:
    """The default rewards of a decision whose window closed: its shown arms
    without a reward, each weighted as the click model says."""
    t = decision_time(pend[EVENT])
    shown, bits, clicked = pend[SLOTS], pend[REWARDED], pend[CLICKED]
    ws = exp.click.default_weights(
        len(shown), [p for p, s in enumerate(shown) if clicked >> s & 1]
    ).tolist()
    first = pend[SHADOW]  # the shadow ranking goes with the first slot's reward
    return [
        (s, pend[X], exp.default, t, ws[p], None if p else first)
        for p, s in enumerate(shown)
        if not bits >> s & 1
    ]
