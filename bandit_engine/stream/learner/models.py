"""The learner's copy of each experiment's posteriors, and its commit updates.

Every policy of an experiment's set (``core.challengers``: the champion and
its challengers) learns from each commit's events, once: the snapshot a
commit stores holds them all, by name. Policy changes stored by a server
are applied before a commit (``Models.sync_changes``), so a challenger
added meanwhile learns from that commit's events on.

Loading and updating run on the learner's database thread; the join state
keeps its own copy of what it needs (``JoinState.set_experiment``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from bandit_engine.core import ExperimentConfig
from bandit_engine.core.challengers import INITIAL, PolicySet
from bandit_engine.core.ports import PolicyChange
from bandit_engine.features import ArmFeatures
from bandit_engine.policies import Policy
from bandit_engine.policies.merge import absorb, evidence_of, mergeable
from bandit_engine.store import ArmRow, LearnerStore, Snapshot, SnapshotPart
from bandit_engine.stream.learner.checkpoint import Event

__all__ = ["Model", "Models", "PosteriorUpdate"]

log = logging.getLogger(__name__)


class Model:
    """One experiment: its config, its policies (the champion's and the
    challengers', ``core.challengers``), arms, and the stored snapshot
    version the policies reflect. ``config`` and ``policy`` are the
    champion's."""

    def __init__(
        self,
        config: ExperimentConfig,
        snapshot: Snapshot | None,
        changes: Sequence[PolicyChange] = (),
    ) -> None:
        self.base = config  # as stored; the challengers' settings apply to it
        self.changes = list(changes)
        self.version = 0
        self.slots: dict[str, int] = {}  # arm id -> slot
        self._arms: list[ArmRow] = []
        self.rebuild(snapshot)

    def rebuild(self, snapshot: Snapshot | None) -> None:
        """Start again from ``snapshot`` (the priors if None), with the
        policy changes and the arms known."""
        self.policies = PolicySet(self.base, None)
        self.config, self.policy = self.base, self.base.make_policy()
        for ch in self.changes:
            self.config, self.policy = self.policies.apply(ch, self.config, self.policy)
        if snapshot is not None:
            self.policies.load_state(self.policy, snapshot.state)
            self.version = snapshot.last_seq
        self.add_arms(self._arms)

    def take_changes(self, changes: Sequence[PolicyChange]) -> bool:
        """Apply the policy changes newer than those applied: a new
        challenger learns from the next commit's events on; True if any."""
        new = [ch for ch in changes if ch.seq > self.policies.last_change]
        for ch in new:
            self.config, self.policy = self.policies.apply(ch, self.config, self.policy)
            self.changes.append(ch)
        if new:
            self.add_arms(self._arms)
        return bool(new)

    def add_arms(self, rows: Sequence[ArmRow]) -> None:
        """Take the experiment's arm rows (ordered by slot): new ones join
        every policy at their prior."""
        policies = [self.policy, *(c.policy for c in self.policies.challengers.values())]
        for row in rows:
            for policy in policies:
                if row.slot >= policy.n_arms:
                    f = row.features
                    policy.add_arm(
                        ArmFeatures.build(row.arm_id, f.get("numeric"), f.get("categorical"))
                    )
            self.slots[row.arm_id] = row.slot
        if rows is not self._arms:
            self._arms = list(rows)

    @property
    def plain(self) -> bool:
        """One policy, the initial one, whose state is a sum of events: what
        a commit can learn apart (``learn_apart``)."""
        p = self.policies
        return not p.challengers and p.champion == INITIAL and mergeable(self.policy)

    def learn_apart(self, events: Sequence[Event]) -> dict[str, np.ndarray]:
        """The evidence of ``events`` alone, from the prior, for the
        champion's kind of policy and arms (``policies.merge.evidence_of``);
        the copy held here does not change."""
        if not events:
            return evidence_of(self.policy, np.zeros(0, dtype=np.int64), None, np.zeros(0))
        return evidence_of(self.policy, *event_args(events))

    def absorb(self, parts: Sequence[dict[str, np.ndarray]]) -> None:
        """Add stored parts (``learn_apart`` of other commits) to the initial
        policy, champion or challenger; dropped, with a warning, if the set
        no longer has it."""
        if not parts:
            return
        target: Policy | None = self.policy if self.policies.champion == INITIAL else None
        if target is None and INITIAL in self.policies.challengers:
            target = self.policies.challengers[INITIAL].policy
        if target is None:
            log.warning("%d stored parts of a policy no longer in the set: dropped", len(parts))
            return
        absorb(target, parts)


class PosteriorUpdate:
    """One experiment's part of a commit (a ``SnapshotUpdate``): its events
    applied to the learner's copy of the posterior, which is first reloaded
    from the store if another learner committed since."""

    __slots__ = ("events", "experiment_id", "model", "ran")

    def __init__(self, experiment_id: str, model: Model, events: list[Event]) -> None:
        self.experiment_id = experiment_id
        self.model = model
        self.events = events
        self.ran = False  # called: the copy held here changed

    def __call__(
        self,
        version: int,
        load: Callable[[], Snapshot | None],
        parts: Sequence[dict[str, np.ndarray]] = (),
    ) -> dict[str, np.ndarray]:
        m = self.model
        self.ran = True
        if version != m.version:  # another learner committed in between
            m.rebuild(load())
        m.absorb(parts)
        if self.events:
            args = event_args(self.events)
            m.policy.update_batch(*args)
            if m.policies.challengers:  # the same events, once each
                m.policies.learn_batch(*args)
                for rec, r in zip((e[5] for e in self.events), args[2], strict=True):
                    if rec is not None:  # a shadow decision's first-slot reward
                        m.policies.rewarded(rec, float(r))
        return m.policies.state(m.policy.state_dict(), windows=True)


def event_args(events: Sequence[Event]) -> tuple[Any, ...]:
    """``update_batch``'s arguments for joined events."""
    slots, xs, rewards, times, weights, _ = zip(*events, strict=True)
    n = len(slots)
    w = np.array(weights, dtype=np.float64)
    return (
        np.array(slots, dtype=np.int64),
        # one copy: the contexts are float64 bytes, checked on arrival
        np.frombuffer(b"".join(xs), dtype="<f8").reshape(n, -1),
        np.array(rewards, dtype=np.float64),
        np.array(times, dtype=np.float64),
        None if (w == 1.0).all() else w,
    )


class Models:
    """Experiments as the learner has loaded them from a ``LearnerStore``.

    ``load`` and ``sync`` call the store (the learner's database thread);
    ``get`` and ``put`` are for the event loop.
    """

    def __init__(self, store: LearnerStore) -> None:
        self.store = store
        self._models: dict[str, Model] = {}

    def get(self, experiment_id: str) -> Model | None:
        return self._models.get(experiment_id)

    def put(self, experiment_id: str, model: Model) -> None:
        self._models[experiment_id] = model

    def clear(self) -> None:
        self._models.clear()

    def load(self, experiment_id: str) -> Model | None:
        """Read an experiment's config, stored posterior and arms (None if
        the store has no such experiment)."""
        configs = {e: c for e, c, _ in self.store.load_experiments()}
        if experiment_id not in configs:
            return None
        model = Model(
            ExperimentConfig.from_dict(configs[experiment_id]),
            self.store.load_snapshot(experiment_id),
            self.store.policy_changes(experiment_id),
        )
        model.add_arms(self.store.load_arms(experiment_id))
        return model

    def sync(self, experiment_id: str, model: Model) -> None:
        """Read the arms added to an experiment since it was loaded."""
        model.add_arms(self.store.load_arms(experiment_id))

    def sync_changes(self) -> int:
        """Apply the policy changes stored since the experiments held here
        were loaded (before a commit); how many experiments changed."""
        if not self._models:
            return 0
        by_exp: dict[str, list[PolicyChange]] = {}
        for ch in self.store.policy_changes():
            by_exp.setdefault(ch.experiment_id, []).append(ch)
        return sum(m.take_changes(by_exp.get(e, [])) for e, m in self._models.items())

    def update(self, experiment_id: str, events: list[Event]) -> PosteriorUpdate:
        return PosteriorUpdate(experiment_id, self._models[experiment_id], events)

    def part(
        self, experiment_id: str, events: Sequence[Event], counters: Mapping[str, int]
    ) -> SnapshotPart:
        """A commit's events and counters of a plain experiment, learned
        apart (``Model.learn_apart``): stored beside the snapshot."""
        state = self._models[experiment_id].learn_apart(events)
        return SnapshotPart(state, dict(counters))

    def committed(self, versions: dict[str, int]) -> None:
        """A commit stored these snapshot versions of the posteriors held here."""
        for experiment_id, version in versions.items():
            model = self._models.get(experiment_id)
            if model is not None:
                model.version = version
