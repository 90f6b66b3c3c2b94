"""A Python client of a bandit-engine server (``bandit.v1.BanditService``).

``BanditClient`` sends the engine's own types and answers with them
(``ExperimentConfig`` in, ``ExperimentInfo``, ``ArmInfo``, ``Decision`` and
``FeedbackResult`` out), so code written against an in-process ``Engine``
drives a server the same way::

    from bandit_engine import Context, ExperimentConfig
    from bandit_engine.client import BanditClient

    with BanditClient("127.0.0.1:50051") as client:
        client.create_experiment(ExperimentConfig("trips", dim=16))
        client.add_arms("trips", ["paris", ("rome", {"categorical": ["country=IT"]})])
        d = client.recommend("trips", Context(categorical=["device=mobile"]), k=2)
        client.feedback(d.event_id, d.arm_ids[0], 1.0)

Security: ``root_certificates`` (PEM bytes, or the path of a PEM file) turns
TLS on and names the CA that signed the server's certificate;
``certificate_chain`` and ``private_key`` add a client certificate (mutual
TLS). ``token`` is sent as ``authorization: Bearer <token>`` on every call.

Errors: a refused call raises the engine's exception for its status, with
the call, the target and the server's message in its text:
INVALID_ARGUMENT ``InvalidArgument``, NOT_FOUND ``NotFound``, ALREADY_EXISTS
``AlreadyExists``, RESOURCE_EXHAUSTED ``ResourceExhausted``,
FAILED_PRECONDITION ``FailedPrecondition``, UNAVAILABLE and
DEADLINE_EXCEEDED ``Unavailable``; any other status ``BanditError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import numpy as np

from bandit_engine._exceptions import (
    AlreadyExists,
    BanditError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc
from bandit_engine.core import (
    ArmInfo,
    Context,
    Decision,
    ExperimentConfig,
    ExperimentInfo,
    FeedbackResult,
    RecommendItem,
)
from bandit_engine.server.convert import config_from_spec, spec_from_config

__all__ = ["ArmSpec", "BanditClient", "error_for"]

Pem = bytes | str | PathLike[str]
#: An arm to add: its id, or ``(arm_id, {"numeric": {...}, "categorical": [...]})``.
ArmSpec = str | tuple[str, Mapping[str, Any] | None]

_ERRORS: dict[grpc.StatusCode, type[BanditError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
}


def error_for(call: str, target: str, exc: grpc.RpcError) -> BanditError:
    """The engine's exception for a failed call (see the module docstring)."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    cls = _ERRORS.get(code, BanditError)
    return cls(f"{call} on {target} failed: {code.name}: {details}")


def _pem(value: Pem | None, what: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"{what}: cannot read {str(value)!r}: {exc}") from exc


class BanditClient:
    """Calls a bandit-engine server; one channel, reused by every call.

    ``timeout`` bounds each call in seconds. Safe to share between threads,
    as a gRPC channel is.
    """

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        root_certificates: Pem | None = None,
        certificate_chain: Pem | None = None,
        private_key: Pem | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not isinstance(target, str) or not target:
            raise InvalidArgument(f"target={target!r} must be an address such as host:port")
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            raise InvalidArgument(f"timeout={timeout!r} must be a positive number of seconds")
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise InvalidArgument("token must be a non-empty string")
        if (certificate_chain is None) != (private_key is None):
            raise InvalidArgument("certificate_chain and private_key go together")
        if certificate_chain is not None and root_certificates is None:
            raise InvalidArgument("a client certificate needs TLS: give root_certificates")
        self.target = target
        self.timeout = float(timeout)
        self._metadata = () if token is None else (("authorization", f"Bearer {token.strip()}"),)
        if root_certificates is None:
            self._channel = grpc.insecure_channel(target)
        else:
            creds = grpc.ssl_channel_credentials(
                root_certificates=_pem(root_certificates, "root_certificates"),
                private_key=_pem(private_key, "private_key"),
                certificate_chain=_pem(certificate_chain, "certificate_chain"),
            )
            self._channel = grpc.secure_channel(target, creds)
        self._stub = pb_grpc.BanditServiceStub(self._channel)  # type: ignore[no-untyped-call]

    # ------------------------------------------------------------ lifecycle
    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the channel connects; ``Unavailable`` after ``timeout``
        seconds (default: the client's)."""
        wait = self.timeout if timeout is None else timeout
        try:
            grpc.channel_ready_future(self._channel).result(timeout=wait)
        except grpc.FutureTimeoutError:
            raise Unavailable(f"no server answering at {self.target} within {wait:g}s") from None

    def close(self) -> None:
        """Close the channel; calls after this fail."""
        self._channel.close()

    def __enter__(self) -> BanditClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, method: str, request_cls: Any, **fields: Any) -> Any:
        try:
            request = request_cls(**fields)
        except (TypeError, ValueError):  # protobuf refuses a field's type or range
            raise _bad_field(method, request_cls, fields) from None
        try:
            return getattr(self._stub, method)(
                request, timeout=self.timeout, metadata=self._metadata
            )
        except grpc.RpcError as exc:
            raise error_for(method, self.target, exc) from exc

    # ------------------------------------------------------------ experiments
    def create_experiment(self, config: ExperimentConfig) -> ExperimentInfo:
        """Create an experiment; ``AlreadyExists`` if its id is taken."""
        if not isinstance(config, ExperimentConfig):
            raise InvalidArgument(f"config={config!r} must be an ExperimentConfig")
        msg = self._call(
            "CreateExperiment", pb.CreateExperimentRequest, spec=spec_from_config(config)
        )
        return _experiment_info(msg)

    def get_experiment(self, experiment_id: str) -> ExperimentInfo:
        msg = self._call("GetExperiment", pb.GetExperimentRequest, experiment_id=experiment_id)
        return _experiment_info(msg)

    def add_arms(self, experiment_id: str, arms: Sequence[ArmSpec]) -> list[ArmInfo]:
        """Add (or reactivate) arms: each an arm id, or ``(arm_id, features)``
        with features ``{"numeric": {...}, "categorical": [...]}`` or None."""
        if isinstance(arms, str):
            raise InvalidArgument(f"arms={arms!r} must be a sequence of arms, not one string")
        specs = []
        for arm in arms:
            if isinstance(arm, str):
                arm_id, features = arm, None
            elif isinstance(arm, tuple) and len(arm) == 2:
                arm_id, features = arm
            else:
                raise InvalidArgument(f"arm {arm!r} must be an arm id or (arm_id, features)")
            f = dict(features or {})
            specs.append(
                {
                    "arm_id": arm_id,
                    "features": {
                        "numeric": f.get("numeric") or {},
                        "categorical": f.get("categorical") or (),
                    },
                }
            )
        resp = self._call("AddArms", pb.AddArmsRequest, experiment_id=experiment_id, arms=specs)
        return [_arm_info(a) for a in resp.arms]

    # ------------------------------------------------------------ serving
    def recommend(
        self,
        experiment_id: str,
        context: Context | None = None,
        candidates: Sequence[str] = (),
        k: int = 1,
    ) -> Decision:
        """Rank ``candidates`` (default: every active arm) for ``context``."""
        fields = _recommend_fields(RecommendItem(experiment_id, context, candidates, k))
        return _decision(self._call("Recommend", pb.RecommendRequest, **fields))

    def recommend_batch(self, items: Sequence[RecommendItem]) -> list[Decision | BanditError]:
        """Many Recommends in one call (``RecommendBatch``): a ``Decision``
        for each item served, the error (``InvalidArgument``, ``NotFound``,
        ...) in the place of each refused."""
        requests = []
        for i, item in enumerate(items):
            if not isinstance(item, RecommendItem):
                raise InvalidArgument(f"items[{i}]={item!r:.100} must be a RecommendItem")
            requests.append(pb.RecommendRequest(**_recommend_fields(item)))
        resp = self._call("RecommendBatch", pb.RecommendBatchRequest, requests=requests)
        out: list[Decision | BanditError] = []
        for r in resp.results:
            if r.HasField("error"):
                code = grpc.StatusCode.UNKNOWN
                for c in grpc.StatusCode:
                    if c.value[0] == r.error.code:
                        code = c
                out.append(_ERRORS.get(code, BanditError)(r.error.message))
            else:
                out.append(_decision(r.response))
        return out

    def feedback(
        self, event_id: str, arm_id: str, reward: float, timestamp: float | None = None
    ) -> FeedbackResult:
        """Report the reward of one shown arm; the outcome is ``"applied"``,
        ``"duplicate"``, ``"late"`` or (Kafka mode) ``"queued"``."""
        fields: dict[str, Any] = {"event_id": event_id, "arm_id": arm_id, "reward": reward}
        if timestamp is not None:
            fields["timestamp"] = timestamp
        resp = self._call("Feedback", pb.FeedbackRequest, **fields)
        return FeedbackResult(pb.FeedbackOutcome.Name(resp.outcome).lower(), resp.model_version)


def _bad_field(method: str, request_cls: Any, fields: dict[str, Any]) -> InvalidArgument:
    """The error naming the field that protobuf refused."""
    for name, value in fields.items():
        try:
            request_cls(**{name: value})
        except (TypeError, ValueError) as exc:
            return InvalidArgument(f"{method}: {name}={value!r} ({exc})")
    return InvalidArgument(f"{method}: the request's fields {sorted(fields)} do not fit it")


def _experiment_info(msg: pb.Experiment) -> ExperimentInfo:
    counters = msg.counters
    return ExperimentInfo(
        config=config_from_spec(msg.spec),
        active_arms=msg.active_arms,
        total_arms=msg.total_arms,
        model_version=msg.model_version,
        counters={f.name: getattr(counters, f.name) for f in counters.DESCRIPTOR.fields},
    )


def _arm_info(msg: pb.Arm) -> ArmInfo:
    p = msg.posterior
    return ArmInfo(
        arm_id=msg.arm_id,
        active=msg.active,
        mean=p.mean,
        std=p.std,
        pulls=p.pulls,
        reward_sum=p.reward_sum,
        features={
            "numeric": dict(msg.features.numeric),
            "categorical": list(msg.features.categorical),
        },
    )


def _recommend_fields(item: RecommendItem) -> dict[str, Any]:
    """A ``RecommendRequest``'s fields, checked as far as the client can."""
    if isinstance(item.candidates, str):
        raise InvalidArgument(f"candidates={item.candidates!r} must be a sequence of arm ids")
    k = item.k
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidArgument(f"k={k!r} must be a positive integer")
    fields: dict[str, Any] = {
        "experiment_id": item.experiment_id,
        "candidates": item.candidates,
        "k": k,
    }
    context = item.context
    if context is not None:
        if not isinstance(context, Context):
            raise InvalidArgument(f"context={context!r} must be a Context or None")
        fields["context"] = {
            "dense": context.dense,
            "numeric": dict(context.numeric),
            "categorical": context.categorical,
        }
    return fields


def _decision(resp: Any) -> Decision:
    per_slot = resp.propensity_kind == pb.PER_SLOT
    return Decision(
        event_id=resp.event_id,
        arm_ids=tuple(a.arm_id for a in resp.arms),
        scores=np.array([a.score for a in resp.arms], dtype=np.float64),
        propensities=np.array([a.propensity for a in resp.arms], dtype=np.float64),
        model_version=resp.model_version,
        propensity_kind="per_slot" if per_slot else "first_slot",
        prefix_propensities=np.array([a.prefix_propensity for a in resp.arms], dtype=np.float64)
        if per_slot
        else None,
    )
