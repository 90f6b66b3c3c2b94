"""The learner's copy of each experiment's posterior, and its commit updates.

Loading and updating run on the learner's database thread; the join state
keeps its own copy of what it needs (``JoinState.set_experiment``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from bandit_engine.core import ExperimentConfig
from bandit_engine.features import ArmFeatures
from bandit_engine.policies import Policy
from bandit_engine.store import ArmRow, LearnerStore, Snapshot
from bandit_engine.stream.learner.checkpoint import Event

__all__ = ["Model", "Models", "PosteriorUpdate"]


class Model:
    """One experiment: its config, policy (posterior), arms, and the stored
    snapshot version the policy reflects."""

    def __init__(self, config: ExperimentConfig, snapshot: Snapshot | None) -> None:
        self.config = config
        self.policy: Policy = config.make_policy()
        self.version = 0
        self.slots: dict[str, int] = {}  # arm id -> slot
        self._arms: list[ArmRow] = []
        self.rebuild(snapshot)

    def rebuild(self, snapshot: Snapshot | None) -> None:
        """Start again from ``snapshot`` (the prior if None), with the arms known."""
        self.policy = self.config.make_policy()
        if snapshot is not None:
            self.policy.load_state_dict(snapshot.state)
            self.version = snapshot.last_seq
        self.add_arms(self._arms)

    def add_arms(self, rows: Sequence[ArmRow]) -> None:
        """Take the experiment's arm rows (ordered by slot): new ones join the
        policy at their prior."""
        for row in rows:
            if row.slot >= self.policy.n_arms:
                f = row.features
                self.policy.add_arm(
                    ArmFeatures.build(row.arm_id, f.get("numeric"), f.get("categorical"))
                )
            self.slots[row.arm_id] = row.slot
        if rows is not self._arms:
            self._arms = list(rows)


class PosteriorUpdate:
    """One experiment's part of a commit (a ``SnapshotUpdate``): its events
    applied to the learner's copy of the posterior, which is first reloaded
    from the store if another learner committed since."""

    __slots__ = ("events", "experiment_id", "model")

    def __init__(self, experiment_id: str, model: Model, events: list[Event]) -> None:
        self.experiment_id = experiment_id
        self.model = model
        self.events = events

    def __call__(self, version: int, load: Callable[[], Snapshot | None]) -> dict[str, np.ndarray]:
        m = self.model
        if version != m.version:  # another learner committed in between
            m.rebuild(load())
        slots, xs, rewards, times, weights = zip(*self.events, strict=True)
        n = len(slots)
        w = np.array(weights, dtype=np.float64)
        m.policy.update_batch(
            np.array(slots, dtype=np.int64),
            # one copy: the contexts are float64 bytes, checked on arrival
            np.frombuffer(b"".join(xs), dtype="<f8").reshape(n, -1),
            np.array(rewards, dtype=np.float64),
            np.array(times, dtype=np.float64),
            None if (w == 1.0).all() else w,
        )
        return m.policy.state_dict()


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
        )
        model.add_arms(self.store.load_arms(experiment_id))
        return model

    def sync(self, experiment_id: str, model: Model) -> None:
        """Read the arms added to an experiment since it was loaded."""
        model.add_arms(self.store.load_arms(experiment_id))

    def update(self, experiment_id: str, events: list[Event]) -> PosteriorUpdate:
        return PosteriorUpdate(experiment_id, self._models[experiment_id], events)

    def committed(self, versions: dict[str, int]) -> None:
        """A commit stored these snapshot versions of the posteriors held here."""
        for experiment_id, version in versions.items():
            model = self._models.get(experiment_id)
            if model is not None:
                model.version = version
