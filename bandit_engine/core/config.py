"""Experiment configuration and engine limits, validated when built."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from bandit_engine._exceptions import InvalidArgument
from bandit_engine.features import FeatureSpace
from bandit_engine.policies import POLICIES, Policy, make_policy

__all__ = ["ExperimentConfig", "Limits", "check_id"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}$")


def check_id(value: object, what: str) -> str:
    """Validate an experiment or arm id: 1-128 chars of [A-Za-z0-9._:@/+=-]."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty string, got {value!r}")
    if not _ID.match(value):
        raise InvalidArgument(
            f"{what} {value!r} must be 1-128 characters of letters, digits and ._:@/+=- "
            "starting with a letter or digit"
        )
    return value


def _finite(name: str, v: float) -> float:
    v = float(v)
    if not math.isfinite(v):
        raise InvalidArgument(f"{name}={v!r} must be finite")
    return v


@dataclass(frozen=True)
class Limits:
    """Per-request limits; a request over one is refused with RESOURCE_EXHAUSTED."""

    max_candidates: int = 10_000
    max_features: int = 1_024
    max_arms: int = 100_000
    max_k: int = 1_000


@dataclass(frozen=True)
class ExperimentConfig:
    """An experiment: its policy, feature layout, reward semantics and priors."""

    experiment_id: str
    policy: str = "lin_ts_disjoint"
    dim: int = 16
    dense_dim: int = 0
    intercept: bool = True
    joint_dim: int | None = None
    reward_min: float = 0.0
    reward_max: float = 1.0
    reward_window_s: float = 3600.0
    default_reward: float | None = None
    decay: float = 1.0
    prior_precision: float = 1.0
    #: lin_ts_disjoint: None learns each arm's noise scale; lin_ts_shared: None is 0.25
    noise_scale: float | None = None
    #: lin_ts_disjoint and logistic_ts: the draw's spread relative to the
    #: posterior's; None: the policy's default (0.5 linear, 0.25 logistic)
    exploration: float | None = None
    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    propensity_draws: int = 1000

    def __post_init__(self) -> None:
        check_id(self.experiment_id, "experiment_id")
        if self.policy not in POLICIES:
            raise InvalidArgument(
                f"policy {self.policy!r} unknown; expected one of {sorted(POLICIES)}"
            )
        lo = _finite("reward_min", self.reward_min)
        hi = _finite("reward_max", self.reward_max)
        if not lo < hi:
            raise InvalidArgument(
                f"reward range [{lo!r}, {hi!r}] must have reward_min < reward_max"
            )
        w = _finite("reward_window_s", self.reward_window_s)
        if not w > 0:
            raise InvalidArgument(f"reward_window_s={w!r} must be positive")
        if self.default_reward is None:
            object.__setattr__(self, "default_reward", lo)
        d = _finite("default_reward", self.default_reward)  # type: ignore[arg-type]
        if not lo <= d <= hi:
            raise InvalidArgument(f"default_reward={d!r} must lie in [{lo!r}, {hi!r}]")
        if not 1 <= self.propensity_draws <= 1_000_000:
            raise InvalidArgument(
                f"propensity_draws={self.propensity_draws!r} must be in [1, 1000000]"
            )
        self.feature_space()  # validates dim / dense_dim
        self.make_policy()  # validates the policy's own parameters

    def feature_space(self, max_features: int = 1024) -> FeatureSpace:
        return FeatureSpace(self.dim, self.dense_dim, self.intercept, max_features)

    def make_policy(self) -> Policy:
        common: dict[str, Any] = {"dim": self.dim, "decay": self.decay}
        extra: dict[str, Any]
        if self.policy == "beta_ts":
            extra = {"prior_alpha": self.prior_alpha, "prior_beta": self.prior_beta}
        elif self.policy == "logistic_ts":
            extra = {"prior_precision": self.prior_precision}
            if self.exploration is not None:
                extra["exploration"] = self.exploration
        elif self.policy == "lin_ts_shared":
            extra = {"prior_precision": self.prior_precision, "joint_dim": self.joint_dim}
            if self.noise_scale is not None:
                extra["noise_scale"] = self.noise_scale
        else:
            extra = {"prior_precision": self.prior_precision, "noise_scale": self.noise_scale}
            if self.exploration is not None:
                extra["exploration"] = self.exploration
        return make_policy(self.policy, **common, **extra)

    def normalise_reward(self, reward: float) -> float:
        """Map a reward in [reward_min, reward_max] onto [0, 1]."""
        return (reward - self.reward_min) / (self.reward_max - self.reward_min)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidArgument(f"unknown experiment settings {sorted(unknown)}")
        if "exploration" not in data:
            # stored before ``exploration`` existed: the draws it made then
            data = {**data, "exploration": 1.0}
        return cls(**data)
