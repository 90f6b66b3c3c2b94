"""Embedded mode's reward join: Feedback and the closing of reward windows.

A decision is open for its experiment's reward window. Each shown arm gets
exactly one reward: the first Feedback for (event, arm) inside the window,
or the experiment's default reward when the window closes (impressions
without clicks teach too). Retries are DUPLICATE, rewards after the window
LATE; both are counted, not applied.

A ranked list's default rewards count as the experiment's click model says
(``click_models``); each row keeps its weight, so that recovery replays the
same events.

Durability: a reward row is committed to the store before it is applied in
memory, and the store refuses a second row for the same (event, arm). A
reward whose decision the writer has not stored yet is committed in one
transaction with it (``DecisionLog.commit_rewards``): a reward row is never
durable without its decision row. The in-memory posterior is the last
snapshot plus the rewards after it, replayed in commit order on start
(``recovery``). Counters are the store's (``Store.counters``): the rows count
themselves as they are stored, and duplicate, late and unknown Feedbacks are
added (``Store.add_counters``) before their answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from bandit_engine._exceptions import InvalidArgument, NotFound
from bandit_engine.core.decision_log import DecisionLog
from bandit_engine.core.event_ids import (
    check_feedback_time,
    decision_time,
    decision_times,
    event_time,
)
from bandit_engine.core.experiment import Experiment
from bandit_engine.core.ports import RewardRow, Store
from bandit_engine.core.types import FeedbackResult

__all__ = ["RewardJoin"]


class RewardJoin:
    """Joins rewards to the open decisions of embedded mode's journals."""

    def __init__(
        self,
        store: Store,
        experiments: Mapping[str, Experiment],
        decision_log: DecisionLog,
        clock: Callable[[], float],
        clock_skew: float = 1.0,
        sweep_chunk: int = 0,
    ) -> None:
        if type(sweep_chunk) is not int or sweep_chunk < 0:
            raise InvalidArgument(f"sweep_chunk={sweep_chunk!r} must be an int >= 0 (0: all)")
        #: Decisions closed per hold of an experiment's lock (0: all at once).
        self.sweep_chunk = sweep_chunk
        self._store = store
        #: how far a Feedback's timestamp may lie before its decision's time
        self._skew = clock_skew
        self._exps = experiments
        self._decision_log = decision_log
        self._clock = clock

    def _open(self, event_id: str) -> tuple[Experiment, int] | None:
        """The experiment and journal row of an open decision."""
        for exp in list(self._exps.values()):
            n = exp.journal.index.get(event_id)
            if n is not None:
                return exp, n
        return None

    def feedback(
        self, event_id: str, arm_id: str, reward: float, timestamp: float | None
    ) -> FeedbackResult:
        """Join a checked reward to its decision and apply it once."""
        found = self._open(event_id)
        if found is None:
            return self._closed(event_id, arm_id, reward, timestamp)
        exp, n = found
        _check_range(exp, reward)
        with exp.lock:
            j = exp.journal
            if j.index.get(event_id) != n:  # its window closed meanwhile
                return self._closed(event_id, arm_id, reward, timestamp)
            # the decision's time, on the engine's clock
            decided = j.deadline(n) - exp.cfg.reward_window_s
            check_feedback_time(event_id, timestamp, decided, self._skew)
            slot = exp.slots.get(arm_id, -1)
            p = -1 if slot < 0 else j.position(n, slot)
            if p < 0:
                shown = ", ".join(exp.names(j.shown(n)))
                raise InvalidArgument(
                    f"arm {arm_id!r} was not shown in event {event_id!r} (shown: {shown})"
                )
            if j.is_rewarded(n, p):
                return self._count(exp, "duplicate")
            now = self._clock()
            if max(now, timestamp or now) > j.deadline(n):
                return self._count(exp, "late")
            x = j.x(n)
            cfg = exp.cfg
            row = RewardRow(
                event_id,
                arm_id,
                cfg.experiment_id,
                slot,
                x,
                float(reward),
                cfg.normalise_reward(float(reward)),
                "feedback",
                timestamp or now,
            )
            close = [event_id] if j.closes_with_one_more(n) else []
            if n >= j.written:  # the decision is not stored yet: stored with it
                (seq,) = self._decision_log.commit_rewards(exp, [row], close)
            else:
                (seq,) = self._store.commit_rewards([row], close)
            if seq is None:  # the store had it already: applied before a restart
                j.set_rewarded(n, p, clicked=reward > float(cfg.default_reward))  # type: ignore[arg-type]
                return self._count(exp, "duplicate")
            if exp.policies.challengers:
                exp.learn_batch(
                    np.array([slot], dtype=np.int64),
                    x[None, :],
                    np.array([row.reward_norm]),
                    np.array([decision_time(event_id)]),
                    None,
                )
                if p == 0:  # the first slot's reward: a shadow decision's
                    exp.policies.complete(event_id, row.reward_norm)
            else:
                exp.policy.update(slot, x, row.reward_norm, decision_time(event_id))
            exp.last_seq = seq
            exp.applied += 1
            j.set_rewarded(n, p, clicked=reward > float(cfg.default_reward))  # type: ignore[arg-type]
            if close:
                j.close(n)
            return FeedbackResult("applied", exp.version)

    def _closed(
        self, event_id: str, arm_id: str, reward: float, timestamp: float | None
    ) -> FeedbackResult:
        """Feedback for an event no longer open: duplicate, late or unknown."""
        self._decision_log.flush()
        status = self._store.decision_status(event_id)
        exp = self._exps.get(status[0]) if status is not None else None
        if status is None or exp is None:
            self._store.add_counters({("", "rewards_unknown"): 1})
            raise NotFound(f"event_id {event_id!r} not found (no such decision)")
        _check_range(exp, reward)
        # the decision's time as its event id carries it (wall clock)
        check_feedback_time(event_id, timestamp, event_time(event_id), self._skew)
        # A second Feedback is a duplicate; one for an arm that got the
        # default reward when the window closed is late.
        source = self._store.reward_source(event_id, arm_id)
        outcome = "duplicate" if source == "feedback" else "late"
        with exp.lock:
            return self._count(exp, outcome)

    def _count(self, exp: Experiment, outcome: str) -> FeedbackResult:
        """Count a Feedback not applied (duplicate, late) in the store, and
        answer it."""
        self._store.add_counters({(exp.experiment_id, f"rewards_{outcome}"): 1})
        return FeedbackResult(outcome, exp.version)

    def sweep(self, now: float) -> int:
        """Close expired windows: default rewards for unrewarded shown arms,
        ``sweep_chunk`` decisions per transaction and per hold of the
        experiment's lock (a Recommend waits for one chunk at most).

        Returns how many were applied. An experiment whose store refuses
        (its decisions or rewards) does not hold up the others: the first
        error is raised once every experiment has been swept."""
        total = 0
        error: Exception | None = None
        for exp in list(self._exps.values()):
            try:
                while True:  # a chunk at a time: Recommend gets the lock between
                    n, more = self._sweep(exp, now)
                    total += n
                    if not more:
                        break
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error
        return total

    def _sweep(self, exp: Experiment, now: float) -> tuple[int, bool]:
        """Close up to ``sweep_chunk`` expired windows of ``exp`` in one
        transaction; (rewards applied, whether more may be due)."""
        with exp.lock:
            j = exp.journal
            j.release()  # the blocks of closed, stored decisions
            if not j.due(now):
                return 0, False
            expired = j.expired(now, self.sweep_chunk)
            if not expired:
                return 0, False
            more = len(expired) == self.sweep_chunk
            cfg = exp.cfg
            default = float(cfg.default_reward)  # type: ignore[arg-type]
            norm = cfg.normalise_reward(default)
            rows = []
            events = []
            first_default: list[str] = []
            click = cfg.click
            for n in expired:
                ev = j.event_id(n)
                events.append(ev)
                x = j.x(n)
                deadline = j.deadline(n)
                shown = j.shown(n).tolist()
                # how much each default reward counts (the click model)
                weights = click.default_weights(len(shown), j.clicked(n)).tolist()
                for p, s in enumerate(shown):
                    if not j.is_rewarded(n, p):
                        if p == 0:
                            first_default.append(ev)
                        rows.append(
                            RewardRow(
                                ev,
                                exp.arm_ids[s],
                                cfg.experiment_id,
                                s,
                                x,
                                default,
                                norm,
                                "default",
                                deadline,
                                weight=weights[p],
                            )
                        )
            # with the decisions not stored yet (the rows to close among
            # them); none can be added meanwhile (the experiment's lock is held)
            seqs = self._decision_log.commit_rewards(exp, rows, events)
            for n in expired:
                j.close(n)
            applied = [(r, q) for r, q in zip(rows, seqs, strict=True) if q is not None]
            if not applied:
                return 0, more
            if exp.policies.pending:
                for ev in first_default:  # shadow decisions: their first slot's reward
                    exp.policies.complete(ev, norm)
                for ev in events:
                    exp.policies.pending.pop(ev, None)
            exp.learn_batch(
                np.array([r.arm_slot for r, _ in applied], dtype=np.int64),
                np.stack([r.x for r, _ in applied]),
                np.array([r.reward_norm for r, _ in applied]),
                decision_times([r.event_id for r, _ in applied]),
                None
                if cfg.click_model == "independent"
                else np.array([r.weight for r, _ in applied]),
            )
            exp.last_seq = max(q for _, q in applied if q is not None)
            # the model version counts the events that changed the posterior
            exp.applied += sum(1 for r, _ in applied if r.weight > 0.0)
            return len(applied), more


def _check_range(exp: Experiment, reward: float) -> None:
    cfg = exp.cfg
    if not cfg.reward_min <= reward <= cfg.reward_max:
        raise InvalidArgument(
            f"reward={reward!r} outside the experiment's range "
            f"[{cfg.reward_min!r}, {cfg.reward_max!r}]"
        )
