from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PolicyKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POLICY_KIND_UNSPECIFIED: _ClassVar[PolicyKind]
    BETA_TS: _ClassVar[PolicyKind]
    LIN_TS_DISJOINT: _ClassVar[PolicyKind]
    LIN_TS_SHARED: _ClassVar[PolicyKind]
    LOGISTIC_TS: _ClassVar[PolicyKind]

class ClickModel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEPENDENT: _ClassVar[ClickModel]
    CASCADE: _ClassVar[ClickModel]
    POSITION_BASED: _ClassVar[ClickModel]

class PropensityKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROPENSITY_KIND_UNSPECIFIED: _ClassVar[PropensityKind]
    FIRST_SLOT: _ClassVar[PropensityKind]
    PER_SLOT: _ClassVar[PropensityKind]

class FeedbackOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEEDBACK_OUTCOME_UNSPECIFIED: _ClassVar[FeedbackOutcome]
    APPLIED: _ClassVar[FeedbackOutcome]
    DUPLICATE: _ClassVar[FeedbackOutcome]
    LATE: _ClassVar[FeedbackOutcome]
    QUEUED: _ClassVar[FeedbackOutcome]
POLICY_KIND_UNSPECIFIED: PolicyKind
BETA_TS: PolicyKind
LIN_TS_DISJOINT: PolicyKind
LIN_TS_SHARED: PolicyKind
LOGISTIC_TS: PolicyKind
INDEPENDENT: ClickModel
CASCADE: ClickModel
POSITION_BASED: ClickModel
PROPENSITY_KIND_UNSPECIFIED: PropensityKind
FIRST_SLOT: PropensityKind
PER_SLOT: PropensityKind
FEEDBACK_OUTCOME_UNSPECIFIED: FeedbackOutcome
APPLIED: FeedbackOutcome
DUPLICATE: FeedbackOutcome
LATE: FeedbackOutcome
QUEUED: FeedbackOutcome

class Features(_message.Message):
    __slots__ = ("dense", "numeric", "categorical")
    class NumericEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    DENSE_FIELD_NUMBER: _ClassVar[int]
    NUMERIC_FIELD_NUMBER: _ClassVar[int]
    CATEGORICAL_FIELD_NUMBER: _ClassVar[int]
    dense: _containers.RepeatedScalarFieldContainer[float]
    numeric: _containers.ScalarMap[str, float]
    categorical: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dense: _Optional[_Iterable[float]] = ..., numeric: _Optional[_Mapping[str, float]] = ..., categorical: _Optional[_Iterable[str]] = ...) -> None: ...

class ExperimentSpec(_message.Message):
    __slots__ = ("experiment_id", "policy", "dim", "dense_dim", "no_intercept", "joint_dim", "reward_min", "reward_max", "reward_window_seconds", "default_reward", "decay", "prior_precision", "noise_scale", "prior_alpha", "prior_beta", "propensity_draws", "exploration", "half_life_seconds", "click_model", "examination", "propensity_kind", "shadow_rate", "shadow_window")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    DENSE_DIM_FIELD_NUMBER: _ClassVar[int]
    NO_INTERCEPT_FIELD_NUMBER: _ClassVar[int]
    JOINT_DIM_FIELD_NUMBER: _ClassVar[int]
    REWARD_MIN_FIELD_NUMBER: _ClassVar[int]
    REWARD_MAX_FIELD_NUMBER: _ClassVar[int]
    REWARD_WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_REWARD_FIELD_NUMBER: _ClassVar[int]
    DECAY_FIELD_NUMBER: _ClassVar[int]
    PRIOR_PRECISION_FIELD_NUMBER: _ClassVar[int]
    NOISE_SCALE_FIELD_NUMBER: _ClassVar[int]
    PRIOR_ALPHA_FIELD_NUMBER: _ClassVar[int]
    PRIOR_BETA_FIELD_NUMBER: _ClassVar[int]
    PROPENSITY_DRAWS_FIELD_NUMBER: _ClassVar[int]
    EXPLORATION_FIELD_NUMBER: _ClassVar[int]
    HALF_LIFE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CLICK_MODEL_FIELD_NUMBER: _ClassVar[int]
    EXAMINATION_FIELD_NUMBER: _ClassVar[int]
    PROPENSITY_KIND_FIELD_NUMBER: _ClassVar[int]
    SHADOW_RATE_FIELD_NUMBER: _ClassVar[int]
    SHADOW_WINDOW_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    policy: PolicyKind
    dim: int
    dense_dim: int
    no_intercept: bool
    joint_dim: int
    reward_min: float
    reward_max: float
    reward_window_seconds: float
    default_reward: float
    decay: float
    prior_precision: float
    noise_scale: float
    prior_alpha: float
    prior_beta: float
    propensity_draws: int
    exploration: float
    half_life_seconds: float
    click_model: ClickModel
    examination: _containers.RepeatedScalarFieldContainer[float]
    propensity_kind: PropensityKind
    shadow_rate: float
    shadow_window: int
    def __init__(self, experiment_id: _Optional[str] = ..., policy: _Optional[_Union[PolicyKind, str]] = ..., dim: _Optional[int] = ..., dense_dim: _Optional[int] = ..., no_intercept: _Optional[bool] = ..., joint_dim: _Optional[int] = ..., reward_min: _Optional[float] = ..., reward_max: _Optional[float] = ..., reward_window_seconds: _Optional[float] = ..., default_reward: _Optional[float] = ..., decay: _Optional[float] = ..., prior_precision: _Optional[float] = ..., noise_scale: _Optional[float] = ..., prior_alpha: _Optional[float] = ..., prior_beta: _Optional[float] = ..., propensity_draws: _Optional[int] = ..., exploration: _Optional[float] = ..., half_life_seconds: _Optional[float] = ..., click_model: _Optional[_Union[ClickModel, str]] = ..., examination: _Optional[_Iterable[float]] = ..., propensity_kind: _Optional[_Union[PropensityKind, str]] = ..., shadow_rate: _Optional[float] = ..., shadow_window: _Optional[int] = ...) -> None: ...

class PolicySettings(_message.Message):
    __slots__ = ("policy", "joint_dim", "decay", "half_life_seconds", "prior_precision", "noise_scale", "exploration", "prior_alpha", "prior_beta", "propensity_draws")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    JOINT_DIM_FIELD_NUMBER: _ClassVar[int]
    DECAY_FIELD_NUMBER: _ClassVar[int]
    HALF_LIFE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PRIOR_PRECISION_FIELD_NUMBER: _ClassVar[int]
    NOISE_SCALE_FIELD_NUMBER: _ClassVar[int]
    EXPLORATION_FIELD_NUMBER: _ClassVar[int]
    PRIOR_ALPHA_FIELD_NUMBER: _ClassVar[int]
    PRIOR_BETA_FIELD_NUMBER: _ClassVar[int]
    PROPENSITY_DRAWS_FIELD_NUMBER: _ClassVar[int]
    policy: PolicyKind
    joint_dim: int
    decay: float
    half_life_seconds: float
    prior_precision: float
    noise_scale: float
    exploration: float
    prior_alpha: float
    prior_beta: float
    propensity_draws: int
    def __init__(self, policy: _Optional[_Union[PolicyKind, str]] = ..., joint_dim: _Optional[int] = ..., decay: _Optional[float] = ..., half_life_seconds: _Optional[float] = ..., prior_precision: _Optional[float] = ..., noise_scale: _Optional[float] = ..., exploration: _Optional[float] = ..., prior_alpha: _Optional[float] = ..., prior_beta: _Optional[float] = ..., propensity_draws: _Optional[int] = ...) -> None: ...

class Challenger(_message.Message):
    __slots__ = ("name", "settings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    settings: PolicySettings
    def __init__(self, name: _Optional[str] = ..., settings: _Optional[_Union[PolicySettings, _Mapping]] = ...) -> None: ...

class Experiment(_message.Message):
    __slots__ = ("spec", "active_arms", "total_arms", "model_version", "counters", "champion", "challengers")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_ARMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ARMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_FIELD_NUMBER: _ClassVar[int]
    CHALLENGERS_FIELD_NUMBER: _ClassVar[int]
    spec: ExperimentSpec
    active_arms: int
    total_arms: int
    model_version: int
    counters: ExperimentCounters
    champion: str
    challengers: _containers.RepeatedCompositeFieldContainer[Challenger]
    def __init__(self, spec: _Optional[_Union[ExperimentSpec, _Mapping]] = ..., active_arms: _Optional[int] = ..., total_arms: _Optional[int] = ..., model_version: _Optional[int] = ..., counters: _Optional[_Union[ExperimentCounters, _Mapping]] = ..., champion: _Optional[str] = ..., challengers: _Optional[_Iterable[_Union[Challenger, _Mapping]]] = ...) -> None: ...

class ExperimentCounters(_message.Message):
    __slots__ = ("decisions", "rewards_applied", "rewards_defaulted", "rewards_duplicate", "rewards_late", "rewards_unknown")
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    REWARDS_APPLIED_FIELD_NUMBER: _ClassVar[int]
    REWARDS_DEFAULTED_FIELD_NUMBER: _ClassVar[int]
    REWARDS_DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    REWARDS_LATE_FIELD_NUMBER: _ClassVar[int]
    REWARDS_UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    decisions: int
    rewards_applied: int
    rewards_defaulted: int
    rewards_duplicate: int
    rewards_late: int
    rewards_unknown: int
    def __init__(self, decisions: _Optional[int] = ..., rewards_applied: _Optional[int] = ..., rewards_defaulted: _Optional[int] = ..., rewards_duplicate: _Optional[int] = ..., rewards_late: _Optional[int] = ..., rewards_unknown: _Optional[int] = ...) -> None: ...

class CreateExperimentRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: ExperimentSpec
    def __init__(self, spec: _Optional[_Union[ExperimentSpec, _Mapping]] = ...) -> None: ...

class GetExperimentRequest(_message.Message):
    __slots__ = ("experiment_id",)
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    def __init__(self, experiment_id: _Optional[str] = ...) -> None: ...

class ListExperimentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListExperimentsResponse(_message.Message):
    __slots__ = ("experiments",)
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    experiments: _containers.RepeatedCompositeFieldContainer[Experiment]
    def __init__(self, experiments: _Optional[_Iterable[_Union[Experiment, _Mapping]]] = ...) -> None: ...

class ArmSpec(_message.Message):
    __slots__ = ("arm_id", "features")
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    arm_id: str
    features: Features
    def __init__(self, arm_id: _Optional[str] = ..., features: _Optional[_Union[Features, _Mapping]] = ...) -> None: ...

class AddArmsRequest(_message.Message):
    __slots__ = ("experiment_id", "arms")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    arms: _containers.RepeatedCompositeFieldContainer[ArmSpec]
    def __init__(self, experiment_id: _Optional[str] = ..., arms: _Optional[_Iterable[_Union[ArmSpec, _Mapping]]] = ...) -> None: ...

class AddArmsResponse(_message.Message):
    __slots__ = ("arms", "model_version")
    ARMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    arms: _containers.RepeatedCompositeFieldContainer[Arm]
    model_version: int
    def __init__(self, arms: _Optional[_Iterable[_Union[Arm, _Mapping]]] = ..., model_version: _Optional[int] = ...) -> None: ...

class RetireArmRequest(_message.Message):
    __slots__ = ("experiment_id", "arm_id")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    arm_id: str
    def __init__(self, experiment_id: _Optional[str] = ..., arm_id: _Optional[str] = ...) -> None: ...

class GetArmRequest(_message.Message):
    __slots__ = ("experiment_id", "arm_id", "context")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    arm_id: str
    context: Features
    def __init__(self, experiment_id: _Optional[str] = ..., arm_id: _Optional[str] = ..., context: _Optional[_Union[Features, _Mapping]] = ...) -> None: ...

class ListArmsRequest(_message.Message):
    __slots__ = ("experiment_id", "include_retired")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RETIRED_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    include_retired: bool
    def __init__(self, experiment_id: _Optional[str] = ..., include_retired: _Optional[bool] = ...) -> None: ...

class ListArmsResponse(_message.Message):
    __slots__ = ("arms",)
    ARMS_FIELD_NUMBER: _ClassVar[int]
    arms: _containers.RepeatedCompositeFieldContainer[Arm]
    def __init__(self, arms: _Optional[_Iterable[_Union[Arm, _Mapping]]] = ...) -> None: ...

class ArmPosterior(_message.Message):
    __slots__ = ("mean", "std", "pulls", "reward_sum")
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    PULLS_FIELD_NUMBER: _ClassVar[int]
    REWARD_SUM_FIELD_NUMBER: _ClassVar[int]
    mean: float
    std: float
    pulls: int
    reward_sum: float
    def __init__(self, mean: _Optional[float] = ..., std: _Optional[float] = ..., pulls: _Optional[int] = ..., reward_sum: _Optional[float] = ...) -> None: ...

class Arm(_message.Message):
    __slots__ = ("arm_id", "active", "posterior", "features")
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    POSTERIOR_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    arm_id: str
    active: bool
    posterior: ArmPosterior
    features: Features
    def __init__(self, arm_id: _Optional[str] = ..., active: _Optional[bool] = ..., posterior: _Optional[_Union[ArmPosterior, _Mapping]] = ..., features: _Optional[_Union[Features, _Mapping]] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("experiment_id", "context", "candidates", "k")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    context: Features
    candidates: _containers.RepeatedScalarFieldContainer[str]
    k: int
    def __init__(self, experiment_id: _Optional[str] = ..., context: _Optional[_Union[Features, _Mapping]] = ..., candidates: _Optional[_Iterable[str]] = ..., k: _Optional[int] = ...) -> None: ...

class RankedArm(_message.Message):
    __slots__ = ("arm_id", "score", "propensity", "prefix_propensity")
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PROPENSITY_FIELD_NUMBER: _ClassVar[int]
    PREFIX_PROPENSITY_FIELD_NUMBER: _ClassVar[int]
    arm_id: str
    score: float
    propensity: float
    prefix_propensity: float
    def __init__(self, arm_id: _Optional[str] = ..., score: _Optional[float] = ..., propensity: _Optional[float] = ..., prefix_propensity: _Optional[float] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("event_id", "arms", "model_version", "propensity_kind")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROPENSITY_KIND_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    arms: _containers.RepeatedCompositeFieldContainer[RankedArm]
    model_version: int
    propensity_kind: PropensityKind
    def __init__(self, event_id: _Optional[str] = ..., arms: _Optional[_Iterable[_Union[RankedArm, _Mapping]]] = ..., model_version: _Optional[int] = ..., propensity_kind: _Optional[_Union[PropensityKind, str]] = ...) -> None: ...

class RecommendBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[RecommendRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[RecommendRequest, _Mapping]]] = ...) -> None: ...

class RecommendError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class RecommendResult(_message.Message):
    __slots__ = ("index", "response", "error")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    response: RecommendResponse
    error: RecommendError
    def __init__(self, index: _Optional[int] = ..., response: _Optional[_Union[RecommendResponse, _Mapping]] = ..., error: _Optional[_Union[RecommendError, _Mapping]] = ...) -> None: ...

class RecommendBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RecommendResult]
    def __init__(self, results: _Optional[_Iterable[_Union[RecommendResult, _Mapping]]] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("event_id", "arm_id", "reward", "timestamp")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    arm_id: str
    reward: float
    timestamp: float
    def __init__(self, event_id: _Optional[str] = ..., arm_id: _Optional[str] = ..., reward: _Optional[float] = ..., timestamp: _Optional[float] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("outcome", "model_version")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    outcome: FeedbackOutcome
    model_version: int
    def __init__(self, outcome: _Optional[_Union[FeedbackOutcome, str]] = ..., model_version: _Optional[int] = ...) -> None: ...

class AddChallengerRequest(_message.Message):
    __slots__ = ("experiment_id", "name", "settings")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    name: str
    settings: PolicySettings
    def __init__(self, experiment_id: _Optional[str] = ..., name: _Optional[str] = ..., settings: _Optional[_Union[PolicySettings, _Mapping]] = ...) -> None: ...

class RemoveChallengerRequest(_message.Message):
    __slots__ = ("experiment_id", "name")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    name: str
    def __init__(self, experiment_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class PromoteChallengerRequest(_message.Message):
    __slots__ = ("experiment_id", "name")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    name: str
    def __init__(self, experiment_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class RollbackChampionRequest(_message.Message):
    __slots__ = ("experiment_id",)
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    def __init__(self, experiment_id: _Optional[str] = ...) -> None: ...

class GetReportRequest(_message.Message):
    __slots__ = ("experiment_id",)
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    def __init__(self, experiment_id: _Optional[str] = ...) -> None: ...

class Estimate(_message.Message):
    __slots__ = ("value", "low", "high")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    value: float
    low: float
    high: float
    def __init__(self, value: _Optional[float] = ..., low: _Optional[float] = ..., high: _Optional[float] = ...) -> None: ...

class PolicyEstimate(_message.Message):
    __slots__ = ("name", "role", "n", "ess", "ips", "snips", "dr")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    ESS_FIELD_NUMBER: _ClassVar[int]
    IPS_FIELD_NUMBER: _ClassVar[int]
    SNIPS_FIELD_NUMBER: _ClassVar[int]
    DR_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    n: int
    ess: float
    ips: Estimate
    snips: Estimate
    dr: Estimate
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., n: _Optional[int] = ..., ess: _Optional[float] = ..., ips: _Optional[_Union[Estimate, _Mapping]] = ..., snips: _Optional[_Union[Estimate, _Mapping]] = ..., dr: _Optional[_Union[Estimate, _Mapping]] = ...) -> None: ...

class PolicyChange(_message.Message):
    __slots__ = ("seq", "action", "name", "actor", "at", "previous", "settings")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    action: str
    name: str
    actor: str
    at: float
    previous: str
    settings: PolicySettings
    def __init__(self, seq: _Optional[int] = ..., action: _Optional[str] = ..., name: _Optional[str] = ..., actor: _Optional[str] = ..., at: _Optional[float] = ..., previous: _Optional[str] = ..., settings: _Optional[_Union[PolicySettings, _Mapping]] = ...) -> None: ...

class Report(_message.Message):
    __slots__ = ("experiment_id", "champion", "shadow_rate", "shadow_window", "estimates", "changes")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHAMPION_FIELD_NUMBER: _ClassVar[int]
    SHADOW_RATE_FIELD_NUMBER: _ClassVar[int]
    SHADOW_WINDOW_FIELD_NUMBER: _ClassVar[int]
    ESTIMATES_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    champion: str
    shadow_rate: float
    shadow_window: int
    estimates: _containers.RepeatedCompositeFieldContainer[PolicyEstimate]
    changes: _containers.RepeatedCompositeFieldContainer[PolicyChange]
    def __init__(self, experiment_id: _Optional[str] = ..., champion: _Optional[str] = ..., shadow_rate: _Optional[float] = ..., shadow_window: _Optional[int] = ..., estimates: _Optional[_Iterable[_Union[PolicyEstimate, _Mapping]]] = ..., changes: _Optional[_Iterable[_Union[PolicyChange, _Mapping]]] = ...) -> None: ...
