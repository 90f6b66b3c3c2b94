"""Admin operations on an experiment's policy set: add and remove
challengers, promote one, roll a promotion back, and the report
(``Engine.challengers``).

Every operation is checked completely first (a bad name, too many
challengers, bad settings: an error naming the value, nothing changed),
then stored as a ``PolicyChange`` with who made it and when, then applied
in memory, under the experiment's lock. ``replay_changes`` applies the
stored changes when an experiment is loaded.

In Kafka mode the change is stored in MySQL and applied here at once; the
other servers apply it at their next refresh (``recovery.refresh``) and the
learners before their next commit (``stream.learner.models``), which feed
the challengers from then on. The servers' shadow rankings travel with the
decision records; the learners add them to the window, which the report
reads from the snapshot a server last loaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bandit_engine._exceptions import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    ResourceExhausted,
)
from bandit_engine.core.challengers import challenger_config, check_name
from bandit_engine.core.experiment import Experiment
from bandit_engine.core.ports import PolicyChange
from bandit_engine.core.shadow import Estimates
from bandit_engine.core.types import ExperimentInfo, Report

if TYPE_CHECKING:
    from bandit_engine.core.engine import Engine

__all__ = ["ChallengerAdmin", "replay_changes"]


def replay_changes(exp: Experiment, changes: Sequence[PolicyChange]) -> int:
    """Apply an experiment's stored policy changes that are newer than the
    last one applied, in order (policies at their priors: states come from
    the snapshot); how many."""
    n = 0
    for ch in changes:
        if ch.seq > exp.policies.last_change:
            exp.apply_change(ch)
            n += 1
    return n


class ChallengerAdmin:
    """The policy-set operations of one engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _exp(self, experiment_id: str) -> Experiment:
        return self._engine._exp(experiment_id)

    def _commit(self, exp: Experiment, action: str, name: str, settings: Mapping[str, Any],
                actor: str) -> None:  # fmt: skip
        engine = self._engine
        change = PolicyChange(
            exp.experiment_id,
            action,
            name,
            dict(settings),
            actor or "anonymous",
            float(engine.clock()),
            exp.last_seq,
        )
        seq = engine.store.record_policy_change(change)
        exp.apply_change(PolicyChange(**{**change.__dict__, "seq": seq}))

    def add(
        self,
        experiment_id: str,
        name: str,
        settings: Mapping[str, Any],
        actor: str = "",
    ) -> ExperimentInfo:
        """Add challenger ``name`` with policy ``settings`` (``POLICY_FIELDS``;
        the others are the experiment's). It learns from the rewards applied
        from now on."""
        exp = self._exp(experiment_id)
        check_name(name)
        limits = self._engine.limits
        with exp.lock:
            ps = exp.policies
            if name in ps.challengers or name == ps.champion:
                raise AlreadyExists(f"experiment {experiment_id!r} has a policy named {name!r}")
            if len(ps.challengers) >= limits.max_challengers:
                raise ResourceExhausted(
                    f"experiment {experiment_id!r} has {len(ps.challengers)} challengers; the "
                    f"limit is max_challengers={limits.max_challengers}"
                )
            cfg = challenger_config(exp.cfg, settings)
            limits.check_experiment(cfg, len(exp.arm_ids))
            self._commit(exp, "add", name, settings, actor)
        return self._engine.get_experiment(experiment_id)

    def remove(self, experiment_id: str, name: str, actor: str = "") -> ExperimentInfo:
        """Remove challenger ``name`` and its state."""
        exp = self._exp(experiment_id)
        with exp.lock:
            self._challenger(exp, name)
            self._commit(exp, "remove", name, {}, actor)
        return self._engine.get_experiment(experiment_id)

    def promote(self, experiment_id: str, name: str, actor: str = "") -> ExperimentInfo:
        """Make challenger ``name`` the champion; the champion becomes a
        challenger under its name, and both keep their states."""
        exp = self._exp(experiment_id)
        with exp.lock:
            self._challenger(exp, name)
            previous = exp.policies.champion
            self._commit(exp, "promote", name, {"previous": previous}, actor)
        return self._engine.get_experiment(experiment_id)

    def rollback(self, experiment_id: str, actor: str = "") -> ExperimentInfo:
        """Undo the last promotion (or rollback): its previous champion
        serves again; the champion becomes a challenger."""
        exp = self._exp(experiment_id)
        with exp.lock:
            changes = self._engine.store.policy_changes(experiment_id)
            last = next((c for c in reversed(changes) if c.action in ("promote", "rollback")), None)
            if last is None:
                raise FailedPrecondition(
                    f"experiment {experiment_id!r} has no promotion to roll back"
                )
            previous = str(last.settings.get("previous", ""))
            if previous not in exp.policies.challengers:
                raise FailedPrecondition(
                    f"the champion before the last promotion, {previous!r}, is no longer a "
                    f"challenger of experiment {experiment_id!r}"
                )
            current = exp.policies.champion
            self._commit(exp, "rollback", previous, {"previous": current}, actor)
        return self._engine.get_experiment(experiment_id)

    def report(self, experiment_id: str) -> Report:
        """Estimates of the champion and each challenger over the window, and
        the policy changes."""
        exp = self._engine._exp(experiment_id)
        changes = self._engine.store.policy_changes(experiment_id)
        with exp.lock:
            cfg = exp.cfg
            return Report(
                experiment_id,
                exp.policies.champion,
                cfg.shadow_rate,
                cfg.shadow_window,
                exp.policies.report(cfg),
                changes,
            )

    def posterior_state(self, experiment_id: str, name: str) -> dict[str, Any]:
        """A copy of policy ``name``'s posterior state (champion or challenger)."""
        exp = self._engine._exp(experiment_id)
        with exp.lock:
            if name == exp.policies.champion:
                return exp.policy.state_dict()
            self._challenger(exp, name)
            return exp.policies.challengers[name].policy.state_dict()

    def estimates(self, experiment_id: str) -> list[Estimates]:
        """``report``'s estimates alone (no store read: for scrapes)."""
        exp = self._engine._exp(experiment_id)
        with exp.lock:
            return exp.policies.report(exp.cfg)

    @staticmethod
    def _challenger(exp: Experiment, name: str) -> None:
        if name not in exp.policies.challengers:
            if name == exp.policies.champion:
                raise FailedPrecondition(f"{name!r} is the champion of {exp.experiment_id!r}")
            known = sorted(exp.policies.challengers)
            raise NotFound(
                f"challenger {name!r} not found in experiment {exp.experiment_id!r} "
                f"(challengers: {known})"
            )
