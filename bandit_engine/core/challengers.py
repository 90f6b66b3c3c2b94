"""An experiment's policy set: its champion, its challengers, and their
shadow evaluation (``core.shadow``).

Every policy of the set has a name: the policy an experiment is created
with is ``INITIAL``; a challenger gets its name when it is added. Only the
champion serves. Every policy learns from every reward the experiment
applies, through ``PolicySet.learn_batch`` (the same events, weights and
decision times as the champion), once.

The set is rebuilt from the store's policy changes (``PolicyChange``: add,
remove, promote, rollback, in order) and the experiment's snapshot, whose
state holds the champion's arrays under their own keys (as before
challengers existed), each challenger's under ``ch.<name>.``, the
champion's name under ``champion_name`` and the evaluation window under
``win.``. A challenger added at reward seq ``from_seq`` learns only from
rewards after it, in replay too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bandit_engine._exceptions import InvalidArgument
from bandit_engine.core.config import ExperimentConfig
from bandit_engine.core.ports import PolicyChange
from bandit_engine.core.shadow import LOGGED, Estimates, Window, estimates, terms
from bandit_engine.features import ArmFeatures
from bandit_engine.policies import FloatArray, IntArray, Policy
from bandit_engine.policies.gaussian import PerArmGaussian

__all__ = [
    "INITIAL",
    "POLICY_FIELDS",
    "Challenger",
    "PolicySet",
    "ShadowRecord",
    "challenger_config",
    "check_name",
    "policy_settings",
    "update_after",
]

#: The name of the policy an experiment is created with.
INITIAL = "initial"
#: The settings a challenger may set; the others are the experiment's.
POLICY_FIELDS = (
    "policy",
    "joint_dim",
    "decay",
    "half_life_s",
    "prior_precision",
    "noise_scale",
    "exploration",
    "prior_alpha",
    "prior_beta",
    "propensity_draws",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def check_name(name: object) -> str:
    """A policy name: 1-64 letters, digits, ``_`` and ``-``, starting with a
    letter or digit; raises naming the value."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(
            f"challenger name {name!r} must be 1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def challenger_config(base: ExperimentConfig, settings: Mapping[str, Any]) -> ExperimentConfig:
    """The experiment's config with a challenger's policy ``settings``
    (``POLICY_FIELDS``; the others at their defaults), validated."""
    unknown = sorted(set(settings) - set(POLICY_FIELDS), key=str)
    if unknown:
        raise InvalidArgument(
            f"challenger settings {unknown!r} unknown; a challenger sets {list(POLICY_FIELDS)}"
        )
    data = {k: v for k, v in base.to_dict().items() if k not in POLICY_FIELDS}
    data.update(settings)
    return ExperimentConfig.from_dict(data)


def policy_settings(cfg: ExperimentConfig) -> dict[str, Any]:
    """The policy settings of a config (``POLICY_FIELDS``)."""
    d = cfg.to_dict()
    return {k: d[k] for k in POLICY_FIELDS}


@dataclass
class Challenger:
    """A named policy of the set and the config it was built from."""

    name: str
    cfg: ExperimentConfig
    policy: Policy
    #: the last reward seq before it was added: it learns from later ones
    from_seq: int = 0
    #: the store seq of the change that added it (0: the experiment's own)
    added: int = 0


@dataclass
class ShadowRecord:
    """A shadow decision waiting for its first-slot reward (in Kafka mode it
    travels with the decision record to the learner)."""

    p: float  # the logged champion propensity of the first-slot arm
    q: float  # q(x, a) of that arm
    names: tuple[str, ...]
    pi: FloatArray  # each challenger's pi(a | x)
    dm: FloatArray  # each challenger's sum_b pi(b | x) q(x, b)


class PolicySet:
    """The champion's name, the challengers, and their shadow evaluation.
    The owner (``Experiment``) holds its lock around every call."""

    def __init__(self, cfg: ExperimentConfig, seed: int | None) -> None:
        self.champion = INITIAL
        self.challengers: dict[str, Challenger] = {}
        #: the champion's ``Challenger.from_seq`` and ``added`` (after a promotion)
        self.champion_from_seq = 0
        self.champion_added = 0
        #: the seq of the last stored change applied
        self.last_change = 0
        self.window = Window(cfg.shadow_window)
        self.pending: dict[str, ShadowRecord] = {}
        key = hashlib.blake2b(cfg.experiment_id.encode(), digest_size=8).digest()
        # a stream of its own: the served decisions do not depend on the challengers
        self.rng = np.random.default_rng(
            None if seed is None else [seed, int.from_bytes(key), 0x5AD0]
        )

    # ---------------------------------------------------------------- learning
    def learn_batch(
        self,
        arms: IntArray,
        xs: FloatArray,
        rewards: FloatArray,
        times: FloatArray | None,
        weights: FloatArray | None,
        seqs: Sequence[int] | None = None,
    ) -> None:
        """Apply to every challenger the events the champion was given
        (``seqs``: their reward seqs in replay, where a challenger skips the
        ones at or before its ``from_seq``)."""
        for c in self.challengers.values():
            update_after(c.policy, c.from_seq, arms, xs, rewards, times, weights, seqs)

    def add_arm(self, features: ArmFeatures, slot: int) -> None:
        """Arm ``slot``, new to the champion, to the challengers that lack it."""
        for c in self.challengers.values():
            if c.policy.n_arms == slot:
                c.policy.add_arm(features)

    def align(self, n_arms: int, features: Sequence[Mapping[str, Any]], ids: list[str]) -> None:
        """Give every challenger the experiment's arms it lacks."""
        for c in self.challengers.values():
            for slot in range(c.policy.n_arms, n_arms):
                f = features[slot]
                c.policy.add_arm(
                    ArmFeatures.build(ids[slot], f.get("numeric"), f.get("categorical"))
                )

    # ------------------------------------------------------------------ changes
    def apply(
        self, ch: PolicyChange, cfg: ExperimentConfig, policy: Policy
    ) -> tuple[ExperimentConfig, Policy]:
        """Apply a stored change to the set whose champion has ``cfg`` and
        ``policy``; the champion's config and policy after it (another's
        after a promotion). A new challenger starts at its prior, with no arms."""
        if ch.action == "add":
            ccfg = challenger_config(cfg, ch.settings)
            self.challengers[ch.name] = Challenger(
                ch.name, ccfg, ccfg.make_policy(), ch.from_seq, ch.seq
            )
        elif ch.action == "remove":
            self.challengers.pop(ch.name, None)
            self.window.drop(ch.name)
        elif ch.action in ("promote", "rollback"):
            new = self.challengers.pop(ch.name)
            old = Challenger(
                self.champion, cfg, policy, self.champion_from_seq, self.champion_added
            )
            self.challengers[old.name] = old
            self.champion, self.champion_from_seq, self.champion_added = (
                ch.name,
                new.from_seq,
                new.added,
            )
            self.window.drop(ch.name)  # its estimates were of it as a challenger
            self.window.drop(LOGGED)  # the logged rewards start over with the new champion
            cfg, policy = new.cfg, new.policy
        else:
            raise ValueError(f"unknown policy change {ch.action!r} (seq {ch.seq})")
        self.last_change = max(self.last_change, ch.seq)
        return cfg, policy

    # ------------------------------------------------------------------ shadow
    def shadow(
        self,
        cfg: ExperimentConfig,
        champion: Policy,
        event_id: str,
        slots: IntArray,
        x: FloatArray,
        first: int,
        p: float,
        keep: bool = True,
    ) -> ShadowRecord | None:
        """Rank in shadow, with probability ``cfg.shadow_rate``: each
        challenger's first-slot propensities over the candidate ``slots``,
        for the reward of ``first`` (the logged first-slot arm, with logged
        propensity ``p``); ``keep``: wait for it here (``complete``)."""
        if not self.challengers or self.rng.random() >= cfg.shadow_rate:
            return None
        if not (0.0 < p <= 1.0):  # no behaviour probability to weigh by
            return None
        q = _means(champion, cfg.policy, slots, x)
        pos = slots.tolist().index(first)
        names = tuple(self.challengers)
        pi = np.empty(len(names))
        dm = np.empty(len(names))
        for i, c in enumerate(self.challengers.values()):
            draws = c.cfg.propensity_draws
            counts = c.policy.first_slot_counts(slots, x, draws, self.rng)
            pi[i] = counts[pos] / draws
            dm[i] = float(counts @ q) / draws
        rec = ShadowRecord(p, float(q[pos]), names, pi, dm)
        if keep:
            self.pending[event_id] = rec
        return rec

    def complete(self, event_id: str, reward_norm: float) -> None:
        """The first-slot reward (in [0, 1]) of a shadow decision: it joins the window."""
        rec = self.pending.pop(event_id, None)
        if rec is not None:
            self.rewarded(rec, reward_norm)

    def rewarded(self, rec: ShadowRecord, reward_norm: float) -> None:
        """A shadow decision and its first-slot reward join the window."""
        r = np.array([reward_norm])
        rows = {LOGGED: terms(np.ones(1), r, r)}
        for name, pi, dm in zip(rec.names, rec.pi, rec.dm, strict=True):
            if name in self.challengers:
                w = np.array([pi / rec.p])
                rows[name] = terms(w, r, dm + w * (r - rec.q))
        self.window.add(rows)

    def report(self, cfg: ExperimentConfig) -> list[Estimates]:
        """The champion's on-policy estimates, then each challenger's."""
        lo, hi = cfg.reward_min, cfg.reward_max
        out = [estimates(self.champion, "champion", self.window.total(LOGGED), lo, hi)]
        for name in self.challengers:
            out.append(estimates(name, "challenger", self.window.total(name), lo, hi))
        return out

    # -------------------------------------------------------------------- state
    def state(self, champion_state: dict[str, np.ndarray], windows: bool) -> dict[str, Any]:
        """The snapshot state: the champion's arrays, each challenger's under
        ``ch.<name>.``, the champion's name and (``windows``) the window."""
        out = dict(champion_state)
        if not self.challengers and self.champion == INITIAL:
            return out  # as before challengers existed
        out["champion_name"] = np.frombuffer(self.champion.encode(), dtype=np.uint8).copy()
        out[f"added.{self.champion}"] = np.array([self.champion_added], dtype=np.int64)
        for name, c in self.challengers.items():
            for k, v in c.policy.state_dict().items():
                out[f"ch.{name}.{k}"] = v
            out[f"added.{name}"] = np.array([c.added], dtype=np.int64)
        if windows:
            out.update(self.window.state())
        return out

    def states_by_name(self, state: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        """The states in a snapshot state of the policies of this set, by
        name: a policy's state only if the snapshot has it from the same
        change that added it (a name removed and added again starts over)."""
        raw = state.get("champion_name")
        champion = INITIAL if raw is None else bytes(np.asarray(raw, dtype=np.uint8)).decode()
        found: dict[str, dict[str, np.ndarray]] = {champion: {}}
        added: dict[str, int] = {}
        for key, arr in state.items():
            if key.startswith("ch."):
                name, _, sub = key[3:].partition(".")
                found.setdefault(name, {})[sub] = arr
            elif key.startswith("added."):
                added[key[6:]] = int(np.asarray(arr)[0])
            elif not key.startswith("win.") and key not in ("champion_name", "win_pos"):
                found[champion][key] = arr
        mine = {n: c.added for n, c in self.challengers.items()}
        mine[self.champion] = self.champion_added
        return {n: st for n, st in found.items() if n in mine and added.get(n, 0) == mine[n]}

    def load_state(self, champion: Policy, state: Mapping[str, np.ndarray]) -> None:
        """Load a snapshot's states into ``champion`` and the challengers, by
        name (``states_by_name``), and its window; a policy the snapshot
        does not have keeps its state."""
        by_name = self.states_by_name(state)
        if self.champion in by_name:
            champion.load_state_dict(by_name[self.champion])
        for name, c in self.challengers.items():
            if name in by_name:
                c.policy.load_state_dict(by_name[name])
        self.window.load(dict(state), set(self.challengers) | {LOGGED})


def update_after(
    policy: Policy,
    from_seq: int,
    arms: IntArray,
    xs: FloatArray,
    rewards: FloatArray,
    times: FloatArray | None,
    weights: FloatArray | None,
    seqs: Sequence[int] | None,
) -> None:
    """``policy.update_batch`` with the events whose seq is past ``from_seq``
    (all of them without ``seqs``: live rewards are all newer)."""
    if seqs is not None and from_seq > 0:
        keep = np.asarray(seqs, dtype=np.int64) > from_seq
        if not keep.all():
            if keep.any():
                policy.update_batch(
                    arms[keep],
                    xs[keep],
                    rewards[keep],
                    None if times is None else times[keep],
                    None if weights is None else weights[keep],
                )
            return
    policy.update_batch(arms, xs, rewards, times, weights)


def _means(policy: Policy, kind: str, slots: IntArray, x: FloatArray) -> FloatArray:
    """The champion's posterior mean reward of each candidate at ``x``, in
    [0, 1] (logistic scores are logits)."""
    if isinstance(policy, PerArmGaussian):  # one kernel call for every candidate
        q = policy.mean_std(slots, x)[0]
    else:
        q = np.array([policy.posterior(s, x)[0] for s in slots.tolist()])
    if kind == "logistic_ts":
        q = 1.0 / (1.0 + np.exp(-q))
    return np.minimum(np.maximum(q, 0.0), 1.0)
