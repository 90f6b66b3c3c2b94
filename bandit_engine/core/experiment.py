"""One experiment's runtime state: its policy, arm table and journal."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bandit_engine import kernels
from bandit_engine._exceptions import InvalidArgument, NotFound
from bandit_engine.core.challengers import PolicySet, ShadowRecord, update_after
from bandit_engine.core.config import ExperimentConfig, Limits, check_id
from bandit_engine.core.journal import BLOCK_ROWS, Journal
from bandit_engine.core.ports import ArmRow, PolicyChange
from bandit_engine.core.types import ArmInfo, Context, ExperimentInfo
from bandit_engine.features import ArmFeatures, FeatureSpace
from bandit_engine.policies import MAX_ABS_FEATURE, FloatArray, IntArray, Policy

__all__ = ["Experiment", "clean_arms", "state_checksum"]


class Experiment:
    """Runtime state of one experiment. Every mutation holds ``lock``.

    Arms have slots (their index in the policy) in the order they were
    added; a retired arm keeps its slot and its posterior.
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        limits: Limits,
        seed: int | None,
        journal_block_rows: int = BLOCK_ROWS,
    ) -> None:
        self.cfg = cfg
        self.space: FeatureSpace = cfg.feature_space(limits.max_features)
        self.policy: Policy = cfg.make_policy()
        self.arm_ids: list[str] = []
        self.slots: dict[str, int] = {}
        self.active: list[bool] = []
        self.features: list[dict[str, Any]] = []
        self.arm_changes = 0
        self.applied = 0
        self.last_seq = 0
        self.snapshot_version = -1
        self.lock = threading.RLock()
        #: open decisions and the decisions not yet stored (embedded mode)
        self.journal = Journal(cfg.experiment_id, self.space.dim, journal_block_rows)
        # one stream per experiment, so that experiments do not share draws
        key = int.from_bytes(hashlib.blake2b(cfg.experiment_id.encode(), digest_size=8).digest())
        self.rng = np.random.default_rng(None if seed is None else [seed, key])
        self._all_active: IntArray | None = None
        #: the champion's name, the challengers and their shadow evaluation
        self.policies = PolicySet(cfg, seed)

    @property
    def experiment_id(self) -> str:
        return self.cfg.experiment_id

    @property
    def version(self) -> int:
        """Model version: rewards applied plus arm changes."""
        return self.applied + self.arm_changes

    # ------------------------------------------------------------------ arms
    def active_slots(self) -> IntArray:
        if self._all_active is None:
            self._all_active = np.flatnonzero(np.asarray(self.active, dtype=bool)).astype(np.int64)
        return self._all_active

    def add_arm(self, arm_id: str, features: dict[str, Any], active: bool = True) -> int:
        af = ArmFeatures.build(arm_id, features.get("numeric"), features.get("categorical"))
        slot = self.policy.add_arm(af)
        self.policies.add_arm(af, slot)
        self.arm_ids.append(arm_id)
        self.slots[arm_id] = slot
        self.active.append(active)
        self.features.append(features)
        self._all_active = None
        return slot

    def set_active(self, slot: int, active: bool) -> None:
        self.active[slot] = active
        self._all_active = None

    def sync_arms(self, rows: Sequence[ArmRow], arm_changes: int) -> None:
        """Bring the arm table (ids, flags, policy slots) up to the store's rows."""
        for row in rows:
            if row.slot < len(self.arm_ids):
                self.set_active(row.slot, row.active)
            elif row.slot < self.policy.n_arms:  # in the loaded snapshot already
                self.arm_ids.append(row.arm_id)
                self.slots[row.arm_id] = row.slot
                self.active.append(row.active)
                self.features.append(row.features)
            else:
                self.add_arm(row.arm_id, row.features, row.active)
        self._all_active = None
        self.arm_changes = arm_changes
        self.policies.align(len(self.arm_ids), self.features, self.arm_ids)

    def trim_arms(self) -> None:
        """Forget arms beyond the policy's (after loading an older snapshot)."""
        n = self.policy.n_arms
        self.arm_ids = self.arm_ids[:n]
        self.active = self.active[:n]
        self.features = self.features[:n]
        self.slots = {a: i for i, a in enumerate(self.arm_ids)}
        self._all_active = None

    def slot(self, arm_id: str) -> int:
        slot = self.slots.get(arm_id)
        if slot is None:
            raise NotFound(f"arm {arm_id!r} not found in experiment {self.experiment_id!r}")
        return slot

    def candidate_slots(self, candidates: Sequence[str]) -> IntArray:
        """The slots of ``candidates`` (every active arm if empty); raises,
        naming the arm, for an unknown, retired or repeated one."""
        if not candidates:
            slots = self.active_slots()
            if slots.shape[0] == 0:
                raise InvalidArgument(
                    f"empty candidate set: experiment {self.experiment_id!r} has no active arms"
                )
            return slots
        out = np.empty(len(candidates), dtype=np.int64)
        lookup, active = self.slots, self.active
        for i, arm_id in enumerate(candidates):
            s = lookup.get(arm_id)
            if s is None:
                check_id(arm_id, "candidate arm_id")
                raise NotFound(
                    f"candidate arm {arm_id!r} not found in experiment {self.experiment_id!r}"
                )
            if not active[s]:
                raise InvalidArgument(f"candidate arm {arm_id!r} is retired")
            out[i] = s
        if len(set(candidates)) != len(candidates):
            dup = next(a for i, a in enumerate(candidates) if a in candidates[:i])
            raise InvalidArgument(f"candidate arm {dup!r} given more than once")
        return out

    def decide(
        self, slots: IntArray, x: FloatArray, k: int
    ) -> tuple[IntArray, FloatArray, FloatArray, FloatArray | None]:
        """The shown arms' slots, their sampled scores, their propensities
        (``propensity_kind``) and, for ``per_slot``, the prefix propensities,
        for checked candidate ``slots``, context and ``k``; the caller holds
        ``lock``."""
        draws = self.cfg.propensity_draws
        if self.cfg.propensity_kind == "per_slot":
            order, scores, slot_n, prefix_n = self.policy.decide_slots_unchecked(
                slots, x, k, draws, self.rng
            )
            shown, props, prefix = kernels.slot_propensities(slots, order, slot_n, prefix_n, draws)
            return shown, scores, props, prefix
        order, scores, counts = self.policy.decide_unchecked(slots, x, k, draws, self.rng)
        shown, props = kernels.first_slot_propensities(slots, order, counts, draws)
        return shown, scores, props, None

    # ------------------------------------------------------ learning and state
    def learn_batch(
        self,
        arms: IntArray,
        xs: FloatArray,
        rewards: FloatArray,
        times: FloatArray | None,
        weights: FloatArray | None,
        seqs: Sequence[int] | None = None,
    ) -> None:
        """Apply events to the champion and, the same, to every challenger."""
        ps = self.policies
        update_after(self.policy, ps.champion_from_seq, arms, xs, rewards, times, weights, seqs)
        if ps.challengers:
            self.policies.learn_batch(arms, xs, rewards, times, weights, seqs)

    def all_policies(self) -> list[Policy]:
        """The champion's policy, then the challengers'."""
        return [self.policy, *(c.policy for c in self.policies.challengers.values())]

    def state_dict(self, windows: bool = True) -> dict[str, Any]:
        """The snapshot state: every policy's (``PolicySet.state``)."""
        return self.policies.state(self.policy.state_dict(), windows)

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Load a snapshot's policies by name (``PolicySet.load_state``); a
        policy it does not have starts from its prior."""
        self.policies.load_state(self.policy, state)

    def apply_change(self, change: PolicyChange) -> None:
        """Apply a stored policy change (``PolicySet.apply``) and give a new
        challenger the arms."""
        self.cfg, self.policy = self.policies.apply(change, self.cfg, self.policy)
        self.policies.align(len(self.arm_ids), self.features, self.arm_ids)

    def shadow(
        self,
        event_id: str,
        slots: IntArray,
        x: FloatArray,
        shown: IntArray,
        props: FloatArray,
        keep: bool,
    ) -> ShadowRecord | None:
        """Let the challengers rank decision ``event_id`` in shadow (a
        ``shadow_rate`` share of decisions; ``PolicySet.shadow``)."""
        if not self.policies.challengers:
            return None
        first, p = int(shown[0]), float(props[0])
        return self.policies.shadow(self.cfg, self.policy, event_id, slots, x, first, p, keep)

    def info(self, counters: dict[str, int]) -> ExperimentInfo:
        """The experiment's summary with ``counters``."""
        with self.lock:
            ps = self.policies
            rivals = tuple((n, c.cfg) for n, c in ps.challengers.items())
            n_active = sum(self.active)
            return ExperimentInfo(
                self.cfg, n_active, len(self.active), self.version, counters, ps.champion, rivals
            )

    def names(self, slots: IntArray) -> tuple[str, ...]:
        ids = self.arm_ids
        return tuple([ids[s] for s in slots.tolist()])

    # -------------------------------------------------------------- contexts
    def vector(self, context: Context | FloatArray | None) -> FloatArray:
        """The context vector of a request, checked: every value finite and
        within ``MAX_ABS_FEATURE``. ``context`` is a ``Context`` (features
        before hashing), a ready vector of length ``dim``, or None (the
        intercept alone)."""
        if context is None:
            context = Context()
        if isinstance(context, Context):
            return self.space.vector(
                context.dense, context.numeric, context.categorical, MAX_ABS_FEATURE
            )
        return self.space.check_vector(context, MAX_ABS_FEATURE)

    # -------------------------------------------------------------- summaries
    def arm_info(self, slot: int, x: FloatArray | None) -> ArmInfo:
        """An arm's posterior summary in reward units (at ``x``, or the
        intercept alone). Call with ``lock`` held."""
        cfg, policy = self.cfg, self.policy
        mean, std = policy.posterior(slot, x)
        span = 1.0
        if cfg.policy != "logistic_ts":  # logistic scores are logits, not rewards
            span = cfg.reward_max - cfg.reward_min
            mean = cfg.reward_min + span * mean
        pulls = policy.pulls(slot)
        return ArmInfo(
            self.arm_ids[slot],
            self.active[slot],
            mean,
            std * span,
            pulls,
            cfg.reward_min * pulls + span * policy.reward_sum(slot),
            self.features[slot],
        )


def clean_arms(
    arms: Sequence[tuple[str, Mapping[str, Any] | None]],
) -> list[tuple[str, dict[str, Any]]]:
    """Arm ids and features checked and copied, before any state is touched."""
    seen: set[str] = set()
    clean: list[tuple[str, dict[str, Any]]] = []
    for arm_id, feats in arms:
        check_id(arm_id, "arm_id")
        if arm_id in seen:
            raise InvalidArgument(f"arm_id {arm_id!r} given twice")
        seen.add(arm_id)
        raw = feats or {}
        try:
            numeric = {str(k): float(v) for k, v in dict(raw.get("numeric") or {}).items()}
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(
                f"arm {arm_id!r}: numeric features must be numbers ({exc})"
            ) from None
        f: dict[str, Any] = {
            "numeric": numeric,
            "categorical": [str(c) for c in raw.get("categorical") or []],
        }
        ArmFeatures.build(arm_id, f["numeric"], f["categorical"])
        clean.append((arm_id, f))
    return clean


def state_checksum(experiments: Sequence[Experiment]) -> str:
    """SHA-256 over the experiments' configs, arms, posteriors and open
    decisions, in the order given (``Engine.state_checksum``)."""
    h = hashlib.sha256()
    pending = []
    for exp in experiments:
        with exp.lock:
            h.update(repr(sorted(exp.cfg.to_dict().items())).encode())
            h.update(repr((exp.arm_ids, exp.active, exp.features, exp.version)).encode())
            for key, arr in sorted(exp.state_dict(windows=False).items()):
                h.update(key.encode())
                h.update(np.ascontiguousarray(arr).tobytes())
            pending.extend(exp.journal.open_items())
    h.update(repr(sorted(pending)).encode())
    return h.hexdigest()
