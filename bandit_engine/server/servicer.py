"""The gRPC servicer: converts messages (``convert``) and maps engine errors
to status codes. All logic lives in the engine.

Every handler catches every exception: engine errors map to their status,
anything else is logged and answered INTERNAL, so no call ends UNKNOWN.
Requests arrive as bytes and are parsed in the handler, so that bytes
protobuf cannot parse get INVALID_ARGUMENT naming the message (grpcio's own
deserializer step would answer INTERNAL).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError

from bandit_engine._exceptions import (
    AlreadyExists,
    BanditError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    StoreError,
    Unavailable,
)
from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc
from bandit_engine.core import Engine
from bandit_engine.server import convert as cv
from bandit_engine.server.convert_report import report_msg
from bandit_engine.server.security import caller_name

log = logging.getLogger(__name__)

__all__ = ["SERVICE_NAME", "BanditServicer", "add_servicer", "status_of"]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BanditService"].full_name

_STATUS: list[tuple[type[BanditError], grpc.StatusCode]] = [
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (StoreError, grpc.StatusCode.UNAVAILABLE),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
]

F = TypeVar("F", bound=Callable[..., Any])


def status_of(exc: BanditError) -> grpc.StatusCode:
    """The gRPC status code of an engine error."""
    for cls, code in _STATUS:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL


def _rpc(fn: F) -> F:
    """Map engine errors to gRPC status codes; never let an exception escape."""

    @functools.wraps(fn)
    def wrapper(self: BanditServicer, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(self, request, context)
        except BanditError as exc:
            context.abort(status_of(exc), str(exc))
        except Exception as exc:
            log.exception("%s failed", fn.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")

    return wrapper  # type: ignore[return-value]


class BanditServicer(pb_grpc.BanditServiceServicer):
    def __init__(self, engine: Engine, token_names: Mapping[str, str] | None = None) -> None:
        self.engine = engine
        #: token -> name, with auth on (``security.load_tokens``); None: auth off
        self.token_names = token_names

    def _actor(self, context: Any) -> str:
        """Who makes an admin call: its token's name (``security.caller_name``)."""
        if self.token_names is None:
            return "anonymous"
        return caller_name(context.invocation_metadata(), self.token_names)

    @_rpc
    def Recommend(self, request: pb.RecommendRequest, context: Any) -> pb.RecommendResponse:
        d = self.engine.recommend(
            request.experiment_id,
            cv.context_from_msg(request.context),
            request.candidates,
            request.k or 1,
        )
        return cv.recommend_response(d)

    @_rpc
    def RecommendBatch(
        self, request: pb.RecommendBatchRequest, context: Any
    ) -> pb.RecommendBatchResponse:
        items = [cv.recommend_item(r) for r in request.requests]
        resp = pb.RecommendBatchResponse()
        add = resp.results.add
        for i, outcome in enumerate(self.engine.recommend_batch(items)):
            _fill_result(add(index=i), outcome)
        return resp

    def RecommendStream(
        self, requests: Iterator[bytes], context: Any
    ) -> Iterator[pb.RecommendResult]:
        """One result per request, in order; a request that is refused (or
        that protobuf cannot parse) gets its error, and the stream goes on."""
        for i, raw in enumerate(requests):
            try:
                request = pb.RecommendRequest.FromString(raw)
            except DecodeError as exc:
                yield _error(
                    i, grpc.StatusCode.INVALID_ARGUMENT, f"malformed RecommendRequest: {exc}"
                )
                continue
            try:
                outcome: Any = self.engine.recommend(
                    request.experiment_id,
                    cv.context_from_msg(request.context),
                    request.candidates,
                    request.k or 1,
                )
            except BanditError as exc:
                outcome = exc
            except Exception as exc:
                log.exception("RecommendStream request %d failed", i)
                outcome = exc
            yield _result(i, outcome)

    @_rpc
    def Feedback(self, request: pb.FeedbackRequest, context: Any) -> pb.FeedbackResponse:
        r = self.engine.feedback(
            request.event_id,
            request.arm_id,
            request.reward,
            request.timestamp if request.HasField("timestamp") else None,
        )
        return pb.FeedbackResponse(
            outcome=cv.OUTCOME_TO_PB[r.outcome], model_version=r.model_version
        )

    @_rpc
    def CreateExperiment(self, request: pb.CreateExperimentRequest, context: Any) -> pb.Experiment:
        return cv.experiment_msg(self.engine.create_experiment(cv.config_from_spec(request.spec)))

    @_rpc
    def GetExperiment(self, request: pb.GetExperimentRequest, context: Any) -> pb.Experiment:
        return cv.experiment_msg(self.engine.get_experiment(request.experiment_id))

    @_rpc
    def ListExperiments(
        self, request: pb.ListExperimentsRequest, context: Any
    ) -> pb.ListExperimentsResponse:
        return pb.ListExperimentsResponse(
            experiments=[cv.experiment_msg(i) for i in self.engine.list_experiments()]
        )

    @_rpc
    def AddArms(self, request: pb.AddArmsRequest, context: Any) -> pb.AddArmsResponse:
        arms = [(a.arm_id, cv.features_dict(a.features)) for a in request.arms]
        infos = self.engine.add_arms(request.experiment_id, arms)
        version = self.engine.get_experiment(request.experiment_id).model_version
        return pb.AddArmsResponse(arms=[cv.arm_msg(a) for a in infos], model_version=version)

    @_rpc
    def RetireArm(self, request: pb.RetireArmRequest, context: Any) -> pb.Arm:
        return cv.arm_msg(self.engine.retire_arm(request.experiment_id, request.arm_id))

    @_rpc
    def GetArm(self, request: pb.GetArmRequest, context: Any) -> pb.Arm:
        ctx = cv.context_from_msg(request.context) if request.HasField("context") else None
        return cv.arm_msg(self.engine.arm_info(request.experiment_id, request.arm_id, ctx))

    @_rpc
    def ListArms(self, request: pb.ListArmsRequest, context: Any) -> pb.ListArmsResponse:
        infos = self.engine.list_arms(request.experiment_id, request.include_retired)
        return pb.ListArmsResponse(arms=[cv.arm_msg(a) for a in infos])

    @_rpc
    def AddChallenger(self, request: pb.AddChallengerRequest, context: Any) -> pb.Experiment:
        settings = cv.settings_from_msg(request.settings)
        info = self.engine.challengers.add(
            request.experiment_id, request.name, settings, self._actor(context)
        )
        return cv.experiment_msg(info)

    @_rpc
    def RemoveChallenger(self, request: pb.RemoveChallengerRequest, context: Any) -> pb.Experiment:
        info = self.engine.challengers.remove(
            request.experiment_id, request.name, self._actor(context)
        )
        return cv.experiment_msg(info)

    @_rpc
    def PromoteChallenger(
        self, request: pb.PromoteChallengerRequest, context: Any
    ) -> pb.Experiment:
        info = self.engine.challengers.promote(
            request.experiment_id, request.name, self._actor(context)
        )
        return cv.experiment_msg(info)

    @_rpc
    def RollbackChampion(self, request: pb.RollbackChampionRequest, context: Any) -> pb.Experiment:
        info = self.engine.challengers.rollback(request.experiment_id, self._actor(context))
        return cv.experiment_msg(info)

    @_rpc
    def GetReport(self, request: pb.GetReportRequest, context: Any) -> pb.Report:
        return report_msg(self.engine.challengers.report(request.experiment_id))


def _error(index: int, code: grpc.StatusCode, message: str) -> pb.RecommendResult:
    return pb.RecommendResult(
        index=index, error=pb.RecommendError(code=code.value[0], message=message)
    )


def _result(index: int, outcome: Any) -> pb.RecommendResult:
    result = pb.RecommendResult(index=index)
    _fill_result(result, outcome)
    return result


def _fill_result(result: pb.RecommendResult, outcome: Any) -> None:
    """A batch or stream result: the answer, or the error a single Recommend
    would have answered (INTERNAL for anything but an engine error)."""
    if isinstance(outcome, BanditError):
        result.error.code = status_of(outcome).value[0]
        result.error.message = str(outcome)
    elif isinstance(outcome, Exception):
        result.error.code = grpc.StatusCode.INTERNAL.value[0]
        result.error.message = f"internal error: {type(outcome).__name__}"
    else:
        cv.fill_recommend_response(result.response, outcome)


def _parsing(method: Callable[[Any, Any], Any], request_cls: Any) -> Callable[[bytes, Any], Any]:
    """``method`` behind a parse of its request bytes that answers
    INVALID_ARGUMENT, naming the message, when protobuf cannot parse them."""

    def handler(raw: bytes, context: Any) -> Any:
        try:
            request = request_cls.FromString(raw)
        except DecodeError as exc:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"malformed {request_cls.DESCRIPTOR.name} ({len(raw)} bytes): {exc}",
            )
        return method(request, context)

    return handler


def add_servicer(servicer: BanditServicer, server: Any) -> None:
    """Register ``servicer`` for every RPC of ``bandit.v1.BanditService``, as
    the generated ``add_BanditServiceServicer_to_server`` does, except that
    each handler parses its own request bytes (``_parsing``)."""
    handlers = {}
    for method in pb.DESCRIPTOR.services_by_name["BanditService"].methods:
        request = getattr(pb, method.input_type.name)
        response = getattr(pb, method.output_type.name)
        if method.client_streaming:
            # each message's bytes reach the handler, which parses them itself
            handlers[method.name] = grpc.stream_stream_rpc_method_handler(
                getattr(servicer, method.name),
                response_serializer=response.SerializeToString,
            )
            continue
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _parsing(getattr(servicer, method.name), request),
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
