"""Experiment configuration and engine limits, validated when built."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from bandit_engine._exceptions import InvalidArgument, ResourceExhausted
from bandit_engine.core.click_models import ClickModel
from bandit_engine.features import FeatureSpace
from bandit_engine.policies import (
    DEFAULT_HALF_LIFE_S,
    LIN_EXPLORATION,
    LOGISTIC_EXPLORATION,
    POLICIES,
    Policy,
    default_joint_dim,
    make_policy,
)

__all__ = ["PROPENSITY_KINDS", "ExperimentConfig", "GiB", "Limits", "check_id"]

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


def _finite(name: str, v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise InvalidArgument(f"{name}={v!r} must be a number")
    f = float(v)
    if not math.isfinite(f):
        raise InvalidArgument(f"{name}={f!r} must be finite")
    return f


def _bounded(name: str, v: object, lo: float, hi: float) -> float:
    """A finite number in [lo, hi]; raises, naming the value and the range."""
    f = _finite(name, v)
    if not lo <= f <= hi:
        raise InvalidArgument(f"{name}={f!r} must be in [{lo:g}, {hi:g}]")
    return f


def _integer(name: str, v: object, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise InvalidArgument(f"{name}={v!r} must be an integer")
    if v < lo:
        raise InvalidArgument(f"{name}={v!r} must be at least {lo}")
    return int(v)


GiB = 1 << 30

#: Largest magnitude of ``reward_min``, ``reward_max`` and ``default_reward``.
MAX_ABS_REWARD = 1e12
#: Longest reward window: 30 days. Open decisions stay in memory that long.
MAX_REWARD_WINDOW_S = 30 * 24 * 3600.0
#: Range of ``decay`` (gamma): 1 is no forgetting; 0.5 keeps about two events.
DECAY_RANGE = (0.5, 1.0)
#: Range of ``half_life_s`` when not 0 (0: no forgetting by time): a minute
#: to ten years.
HALF_LIFE_RANGE = (60.0, 10 * 365.25 * 86_400.0)
#: Range of ``prior_precision`` (lambda). Below 1e-3 the precision of a
#: model fed features of magnitude ``MAX_ABS_FEATURE`` loses its prior to
#: rounding and stops being positive definite.
PRIOR_PRECISION_RANGE = (1e-3, 1e6)
#: Range of ``noise_scale`` (sigma, the noise scale of the linear models).
NOISE_SCALE_RANGE = (1e-6, 1e6)
#: ``noise_scale`` of lin_ts_shared when none is given (lin_ts_disjoint: learned).
SHARED_NOISE_SCALE = 0.25
#: Range of ``exploration`` (lin_ts_disjoint, logistic_ts), and its defaults.
EXPLORATION_RANGE = (1e-3, 100.0)
DEFAULT_EXPLORATION = {"lin_ts_disjoint": LIN_EXPLORATION, "logistic_ts": LOGISTIC_EXPLORATION}
#: What ``Decision.propensities`` holds (``propensity_kind``): ``first_slot``,
#: the probability that the policy ranks the arm first for this context;
#: ``per_slot``, that it ranks it at the slot it was shown in.
PROPENSITY_KINDS = ("first_slot", "per_slot")
#: Range of ``shadow_window`` (rewarded shadow decisions an estimate covers).
SHADOW_WINDOW_RANGE = (10, 10_000_000)
#: Range of ``prior_alpha`` and ``prior_beta`` (the Beta prior).
BETA_PRIOR_RANGE = (1e-3, 1e6)


@dataclass(frozen=True)
class Limits:
    """Engine limits. A request over a per-request limit, and an experiment
    or arm set over a size limit, is refused with RESOURCE_EXHAUSTED naming
    the value and the limit (``bandit_engine.ResourceExhausted``).

    Per request: ``max_candidates`` (Recommend ``candidates``),
    ``max_features`` (named plus dense context features), ``max_k``
    (Recommend ``k``), ``max_arms_per_call`` (AddArms ``arms``), ``max_batch``
    (RecommendBatch ``requests``).

    Per experiment (CreateExperiment, AddArms, and loading on start):
    ``max_arms`` (arms, retired ones included), ``max_dim``
    (ExperimentSpec ``dim``), ``max_joint_dim`` (``joint_dim`` of
    LIN_TS_SHARED, ``default_joint_dim`` unless given), ``max_propensity_draws``
    (``propensity_draws``: a Recommend costs draws x candidates), and
    ``max_experiment_bytes``, the memory of the experiment's posterior
    (``ExperimentConfig.state_bytes``): LIN_TS_DISJOINT and LOGISTIC_TS keep
    about 18 * dim^2 bytes per arm (precision and covariance in float64, a
    float32 scoring row), LIN_TS_SHARED 16 * joint_dim^2 bytes in all, BETA_TS
    32 bytes per arm. With the default 4 GiB, dim 1024 takes up to 227 arms,
    dim 4096 up to 14. Arrays grow by doubling and a checkpoint copies
    the statistics, so the peak can reach about twice the figure.

    ``max_challengers``: challenger policies per experiment
    (``docs/challengers.md``).

    ``max_clock_skew_s``: a Feedback ``timestamp`` may lie this far before
    its decision's time (clocks of different servers and callers differ);
    earlier ones are refused.

    ``sweep_chunk``: expired reward windows closed per hold of an
    experiment's lock (embedded mode); a sweep goes on chunk by chunk, so a
    Recommend waits for one chunk at most. 0 closes them all at once.
    """

    max_candidates: int = 10_000
    max_features: int = 1_024
    max_arms: int = 100_000
    max_k: int = 1_000
    max_arms_per_call: int = 10_000
    max_batch: int = 1_000
    max_dim: int = 4_096
    max_joint_dim: int = 4_096
    max_propensity_draws: int = 100_000
    max_experiment_bytes: int = 4 * GiB
    max_clock_skew_s: float = 1.0
    max_challengers: int = 4
    sweep_chunk: int = 32

    def check_experiment(self, cfg: ExperimentConfig, n_arms: int = 0) -> None:
        """Refuse ``cfg`` with ``n_arms`` arms if it is over a limit
        (``ResourceExhausted``, naming the setting, its value and the limit)."""
        if cfg.dim > self.max_dim:
            raise ResourceExhausted(f"dim={cfg.dim} is over the limit max_dim={self.max_dim}")
        jd = cfg.effective_joint_dim
        if jd is not None and jd > self.max_joint_dim:
            given = "" if cfg.joint_dim is not None else " (the default)"
            raise ResourceExhausted(
                f"joint_dim={jd}{given} is over the limit max_joint_dim={self.max_joint_dim}"
            )
        if cfg.propensity_draws > self.max_propensity_draws:
            raise ResourceExhausted(
                f"propensity_draws={cfg.propensity_draws} is over the limit "
                f"max_propensity_draws={self.max_propensity_draws}"
            )
        if n_arms > self.max_arms:
            raise ResourceExhausted(
                f"experiment {cfg.experiment_id!r} would have {n_arms} arms; "
                f"the limit is max_arms={self.max_arms}"
            )
        need = cfg.state_bytes(n_arms)
        if need > self.max_experiment_bytes:
            raise ResourceExhausted(
                f"experiment {cfg.experiment_id!r} ({cfg.policy}, dim={cfg.dim}) with "
                f"{n_arms} arms needs {need / GiB:.2f} GiB of posterior state ({need} bytes); "
                f"the limit is max_experiment_bytes={self.max_experiment_bytes} "
                f"({self.max_experiment_bytes / GiB:.2f} GiB)"
            )


_FIELD_TYPES = {"intercept": bool, "policy": str, "click_model": str, "propensity_kind": str}
_INTEGERS = {"dim": 1, "dense_dim": 0, "joint_dim": 1, "propensity_draws": 1}


@dataclass(frozen=True)
class ExperimentConfig:
    """An experiment: its policy, feature layout, reward semantics and priors.

    Validated when built: each field's type and range (the module's
    constants). The limits an engine sets (``Limits``: ``dim``,
    ``joint_dim``, ``propensity_draws``, memory) are checked by the engine
    when it creates, grows or loads an experiment (``Limits.check_experiment``).
    Nothing here allocates the model.
    """

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
    #: forgetting by time: evidence this many seconds old counts half; 0: never
    #: forgotten; None: the default (``DEFAULT_HALF_LIFE_S``, a day)
    half_life_s: float | None = None
    prior_precision: float = 1.0
    #: lin_ts_disjoint: None learns each arm's noise scale; lin_ts_shared: None is 0.25
    noise_scale: float | None = None
    #: lin_ts_disjoint and logistic_ts: the draw's spread relative to the
    #: posterior's; None: the policy's default (``DEFAULT_EXPLORATION``)
    exploration: float | None = None
    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    propensity_draws: int = 1000
    #: what a ranked list's default rewards teach (``core.click_models``)
    click_model: str = "independent"
    #: position_based: the examination probability of each slot; empty: the
    #: default curve 1/log2(slot + 2)
    examination: Sequence[float] = ()
    #: what ``propensities`` hold: ``first_slot`` or ``per_slot``
    propensity_kind: str = "first_slot"
    #: share of Recommends its challengers rank in shadow (``docs/challengers.md``)
    shadow_rate: float = 0.1
    #: rewarded shadow decisions the challengers' estimates cover (the newest)
    shadow_window: int = 10_000

    def __post_init__(self) -> None:
        check_id(self.experiment_id, "experiment_id")
        for name, typ in _FIELD_TYPES.items():
            if not isinstance(getattr(self, name), typ):
                raise InvalidArgument(f"{name}={getattr(self, name)!r} must be a {typ.__name__}")
        if self.policy not in POLICIES:
            raise InvalidArgument(
                f"policy {self.policy!r} unknown; expected one of {sorted(POLICIES)}"
            )
        for name, lowest in _INTEGERS.items():
            value = getattr(self, name)
            if value is not None or name != "joint_dim":  # joint_dim: lin_ts_shared only
                object.__setattr__(self, name, _integer(name, value, lowest))
        lo = _bounded("reward_min", self.reward_min, -MAX_ABS_REWARD, MAX_ABS_REWARD)
        hi = _bounded("reward_max", self.reward_max, -MAX_ABS_REWARD, MAX_ABS_REWARD)
        if not lo < hi:
            raise InvalidArgument(
                f"reward range [{lo!r}, {hi!r}] must have reward_min < reward_max"
            )
        w = _finite("reward_window_s", self.reward_window_s)
        if not 0 < w <= MAX_REWARD_WINDOW_S:
            raise InvalidArgument(
                f"reward_window_s={w!r} must be positive and at most {MAX_REWARD_WINDOW_S:g} "
                "(30 days)"
            )
        if self.default_reward is None:
            object.__setattr__(self, "default_reward", lo)
        d = _finite("default_reward", self.default_reward)
        if not lo <= d <= hi:
            raise InvalidArgument(f"default_reward={d!r} must lie in [{lo!r}, {hi!r}]")
        _bounded("decay", self.decay, *DECAY_RANGE)
        if self.half_life_s is None:
            object.__setattr__(self, "half_life_s", DEFAULT_HALF_LIFE_S)
        h = _finite("half_life_s", self.half_life_s)
        if h != 0.0 and not HALF_LIFE_RANGE[0] <= h <= HALF_LIFE_RANGE[1]:
            raise InvalidArgument(
                f"half_life_s={h!r} must be 0 (no forgetting) or in "
                f"[{HALF_LIFE_RANGE[0]:g}, {HALF_LIFE_RANGE[1]:g}] seconds"
            )
        object.__setattr__(self, "half_life_s", h)
        _bounded("prior_precision", self.prior_precision, *PRIOR_PRECISION_RANGE)
        if self.noise_scale is not None:
            _bounded("noise_scale", self.noise_scale, *NOISE_SCALE_RANGE)
        elif self.policy == "lin_ts_shared":
            object.__setattr__(self, "noise_scale", SHARED_NOISE_SCALE)
        if self.exploration is not None:
            _bounded("exploration", self.exploration, *EXPLORATION_RANGE)
        elif self.policy in DEFAULT_EXPLORATION:
            object.__setattr__(self, "exploration", DEFAULT_EXPLORATION[self.policy])
        _bounded("prior_alpha", self.prior_alpha, *BETA_PRIOR_RANGE)
        _bounded("prior_beta", self.prior_beta, *BETA_PRIOR_RANGE)
        click = ClickModel(self.click_model, self.examination)  # raises, naming the value
        object.__setattr__(self, "examination", click.examination)
        if self.propensity_kind not in PROPENSITY_KINDS:
            raise InvalidArgument(
                f"propensity_kind={self.propensity_kind!r} unknown; expected one of "
                f"{list(PROPENSITY_KINDS)}"
            )
        object.__setattr__(self, "shadow_rate", _bounded("shadow_rate", self.shadow_rate, 0, 1))
        w_lo, w_hi = SHADOW_WINDOW_RANGE
        window = _integer("shadow_window", self.shadow_window, 1)
        if not w_lo <= window <= w_hi:
            raise InvalidArgument(f"shadow_window={window!r} must be in [{w_lo}, {w_hi}]")
        object.__setattr__(self, "shadow_window", window)
        # the feature layout (dense_dim within dim); FeatureSpace allocates nothing
        FeatureSpace(self.dim, self.dense_dim, self.intercept)

    @property
    def effective_joint_dim(self) -> int | None:
        """``joint_dim`` of lin_ts_shared (``default_joint_dim`` unless given);
        None for the other policies."""
        if self.policy != "lin_ts_shared":
            return None
        return default_joint_dim(self.dim) if self.joint_dim is None else self.joint_dim

    def state_bytes(self, n_arms: int) -> int:
        """Bytes of posterior state the experiment holds with ``n_arms`` arms
        (the arrays of its policy, caches included; see ``Limits``)."""
        d = self.dim
        if self.policy == "beta_ts":
            return 32 * n_arms
        if self.policy == "lin_ts_shared":
            jd = self.effective_joint_dim
            assert jd is not None
            # A and its Cholesky factor, b and mu; per arm its hashed features
            return 16 * jd * jd + 16 * jd + n_arms * (16 + 16 * 258)
        # precision and covariance (float64), center and weights, the float32
        # scoring row (packed_width), counters, the score scale and noise sums
        packed = d * (d + 1) // 2 + d
        return n_arms * (16 * d * d + 16 * d + 4 * packed + 33 + 24)

    @property
    def click(self) -> ClickModel:
        """The experiment's click model."""
        return ClickModel(self.click_model, self.examination)

    def feature_space(self, max_features: int = 1024) -> FeatureSpace:
        return FeatureSpace(self.dim, self.dense_dim, self.intercept, max_features)

    def make_policy(self) -> Policy:
        common: dict[str, Any] = {
            "dim": self.dim,
            "decay": self.decay,
            "half_life_s": self.half_life_s,
        }
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
        out = asdict(self)
        out["examination"] = list(self.examination)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        """The config ``to_dict`` wrote, validated; raises ``InvalidArgument``
        naming what is wrong."""
        if not isinstance(data, dict):
            raise InvalidArgument(f"experiment settings must be a mapping, got {data!r:.200}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            extra = {str(k): data[k] for k in sorted(unknown, key=str)}
            raise InvalidArgument(f"unknown experiment settings {extra!r:.300}")
        if "experiment_id" not in data:
            raise InvalidArgument("experiment settings without an experiment_id")
        return cls(**data)
