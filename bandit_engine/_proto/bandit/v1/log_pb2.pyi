from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DecisionRecord(_message.Message):
    __slots__ = ("event_id", "experiment_id", "created_at", "deadline", "model_version", "x", "arms", "slots", "scores", "propensities", "candidates", "x_f64", "propensity_kind", "prefix_propensities", "shadow")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    PROPENSITIES_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    X_F64_FIELD_NUMBER: _ClassVar[int]
    PROPENSITY_KIND_FIELD_NUMBER: _ClassVar[int]
    PREFIX_PROPENSITIES_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    experiment_id: str
    created_at: float
    deadline: float
    model_version: int
    x: _containers.RepeatedScalarFieldContainer[float]
    arms: _containers.RepeatedScalarFieldContainer[str]
    slots: _containers.RepeatedScalarFieldContainer[int]
    scores: _containers.RepeatedScalarFieldContainer[float]
    propensities: _containers.RepeatedScalarFieldContainer[float]
    candidates: _containers.RepeatedScalarFieldContainer[str]
    x_f64: bytes
    propensity_kind: int
    prefix_propensities: _containers.RepeatedScalarFieldContainer[float]
    shadow: ShadowRanking
    def __init__(self, event_id: _Optional[str] = ..., experiment_id: _Optional[str] = ..., created_at: _Optional[float] = ..., deadline: _Optional[float] = ..., model_version: _Optional[int] = ..., x: _Optional[_Iterable[float]] = ..., arms: _Optional[_Iterable[str]] = ..., slots: _Optional[_Iterable[int]] = ..., scores: _Optional[_Iterable[float]] = ..., propensities: _Optional[_Iterable[float]] = ..., candidates: _Optional[_Iterable[str]] = ..., x_f64: _Optional[bytes] = ..., propensity_kind: _Optional[int] = ..., prefix_propensities: _Optional[_Iterable[float]] = ..., shadow: _Optional[_Union[ShadowRanking, _Mapping]] = ...) -> None: ...

class ShadowRanking(_message.Message):
    __slots__ = ("names", "pi", "dm", "q", "p")
    NAMES_FIELD_NUMBER: _ClassVar[int]
    PI_FIELD_NUMBER: _ClassVar[int]
    DM_FIELD_NUMBER: _ClassVar[int]
    Q_FIELD_NUMBER: _ClassVar[int]
    P_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    pi: _containers.RepeatedScalarFieldContainer[float]
    dm: _containers.RepeatedScalarFieldContainer[float]
    q: float
    p: float
    def __init__(self, names: _Optional[_Iterable[str]] = ..., pi: _Optional[_Iterable[float]] = ..., dm: _Optional[_Iterable[float]] = ..., q: _Optional[float] = ..., p: _Optional[float] = ...) -> None: ...

class FeedbackRecord(_message.Message):
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
