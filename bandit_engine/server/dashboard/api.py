"""The dashboard's Starlette application: the page, its static files and the
JSON endpoints (``docs/dashboard.md``).

Every endpoint calls what the gRPC servicer calls (``Engine.list_experiments``,
``get_experiment``, ``list_arms``, ``challengers.report``, ``promote``,
``rollback``), and maps engine errors to HTTP statuses with a JSON body
``{"error": message, "code": "NOT_FOUND"}``; the message names the bad value.
With tokens, reads need a token of scope ``admin`` or ``metrics`` and the
admin actions one of scope ``admin``, sent as ``Authorization: Bearer``;
the admin actions are recorded under the token's name. A POST must send
``Content-Type: application/json``: an HTML form of another site cannot.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

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
from bandit_engine.server.dashboard.rates import RateHistory
from bandit_engine.server.dashboard.views import experiment_doc, report_doc, summary_doc
from bandit_engine.server.security import TokenChecker, token_name

log = logging.getLogger(__name__)

__all__ = ["READ_SCOPES", "STATIC", "build_app"]

STATIC = Path(__file__).with_name("static")
#: Scopes that may read the dashboard's JSON (as /metrics).
READ_SCOPES = ("admin", "metrics")
#: Arms listed per experiment unless ``?limit=`` says otherwise, and the most.
DEFAULT_ARM_LIMIT = 1_000
MAX_ARM_LIMIT = 100_000
#: Every response: nothing but this origin's own files and requests.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

_STATUS: list[tuple[type[BanditError], int, str]] = [
    (InvalidArgument, 400, "INVALID_ARGUMENT"),
    (NotFound, 404, "NOT_FOUND"),
    (AlreadyExists, 409, "ALREADY_EXISTS"),
    (FailedPrecondition, 409, "FAILED_PRECONDITION"),
    (ResourceExhausted, 429, "RESOURCE_EXHAUSTED"),
    (StoreError, 503, "UNAVAILABLE"),
    (Unavailable, 503, "UNAVAILABLE"),
]


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status)


def _engine_error(exc: BanditError) -> JSONResponse:
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return error(status, code, str(exc))
    return error(500, "INTERNAL", str(exc))


Handler = Callable[[Request], Any]


class _Api:
    """The endpoints of one engine."""

    def __init__(
        self,
        engine: Any,
        rates: RateHistory,
        tokens: Mapping[str, frozenset[str]],
        names: Mapping[str, str],
    ) -> None:
        self.engine = engine
        self.rates = rates
        self.checker = TokenChecker(tokens) if tokens else None
        self.names = names

    # -------------------------------------------------------------- guards
    def _auth(self, request: Request, need: tuple[str, ...]) -> Response | None:
        """None when the request may go on, else the refusal."""
        if self.checker is None:
            return None
        status, reason = self.checker.check_header(request.headers.get("authorization", ""), need)
        if status == 401:
            return error(401, "UNAUTHENTICATED", reason)
        if status == 403:
            return error(403, "PERMISSION_DENIED", reason)
        return None

    def _actor(self, request: Request) -> str:
        if self.checker is None:
            return "anonymous"
        _, _, token = request.headers.get("authorization", "").partition(" ")
        return token_name(token.strip(), self.names)

    def guarded(self, need: tuple[str, ...], fn: Handler) -> Callable[[Request], Response]:
        """``fn`` behind the token check, with engine errors as JSON."""

        def endpoint(request: Request) -> Response:
            refused = self._auth(request, need)
            if refused is not None:
                return refused
            try:
                out = fn(request)
            except BanditError as exc:
                return _engine_error(exc)
            except Exception as exc:
                log.exception("dashboard %s failed", request.url.path)
                return error(500, "INTERNAL", f"internal error: {type(exc).__name__}")
            return out if isinstance(out, Response) else JSONResponse(out)

        return endpoint

    # ---------------------------------------------------------------- reads
    def experiments(self, request: Request) -> dict[str, Any]:
        return {"experiments": [summary_doc(i) for i in self.engine.list_experiments()]}

    def experiment(self, request: Request) -> Any:
        exp_id = request.path_params["experiment_id"]
        raw = request.query_params.get("limit", str(DEFAULT_ARM_LIMIT))
        try:
            limit = int(raw)
        except ValueError:
            limit = -1
        if not 0 <= limit <= MAX_ARM_LIMIT:
            message = f"limit={raw!r:.40} must be an integer in 0..{MAX_ARM_LIMIT}"
            return error(400, "INVALID_ARGUMENT", message)
        info = self.engine.get_experiment(exp_id)
        arms = self.engine.list_arms(exp_id, include_retired=True)
        return experiment_doc(info, arms, limit)

    def report(self, request: Request) -> dict[str, Any]:
        return report_doc(self.engine.challengers.report(request.path_params["experiment_id"]))

    def rates_of(self, request: Request) -> dict[str, Any]:
        exp_id = request.path_params["experiment_id"]
        self.engine.get_experiment(exp_id)  # NotFound naming it
        return {
            "experiment_id": exp_id,
            "interval_seconds": self.rates.interval,
            "window_seconds": self.rates.window_seconds,
            "points": self.rates.series(exp_id),
        }

    # --------------------------------------------------------------- admin
    def promote(self, request: Request) -> Any:
        exp_id = request.path_params["experiment_id"]
        body = request.state.body
        name = body.get("name")
        if not isinstance(name, str) or not name:
            return error(
                400, "INVALID_ARGUMENT", f"'name' must be a challenger's name, got {name!r:.80}"
            )
        info = self.engine.challengers.promote(exp_id, name, self._actor(request))
        return summary_doc(info)

    def rollback(self, request: Request) -> Any:
        exp_id = request.path_params["experiment_id"]
        info = self.engine.challengers.rollback(exp_id, self._actor(request))
        return summary_doc(info)


def _json_body(
    endpoint: Callable[[Request], Response],
) -> Callable[[Request], Awaitable[Response]]:
    """Read and check a POST's JSON body (an object) before ``endpoint`` runs
    in the thread pool; refuse anything else with 415 or 400."""

    async def post(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return error(
                415,
                "INVALID_ARGUMENT",
                f"Content-Type {ctype or '(none)'!r:.60} refused: send application/json",
            )
        raw = await request.body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            return error(400, "INVALID_ARGUMENT", f"body is not JSON: {exc}")
        if not isinstance(body, dict):
            return error(400, "INVALID_ARGUMENT", "body must be a JSON object")
        request.state.body = body
        return await run_in_threadpool(endpoint, request)

    return post


def build_app(
    engine: Any,
    rates: RateHistory,
    tokens: Mapping[str, frozenset[str]] | None = None,
    names: Mapping[str, str] | None = None,
    allowed_hosts: list[str] | None = None,
) -> Starlette:
    """The dashboard of ``engine``: ``/`` the page, ``/static`` its files,
    ``/api/...`` the JSON (module doc). ``allowed_hosts``: the ``Host``
    headers answered (others get 400: a page of another site that renames
    itself to a loopback address, DNS rebinding, reads nothing); None: any."""
    api = _Api(engine, rates, tokens or {}, names or {})
    read, admin = READ_SCOPES, ("admin",)
    # ids may hold '/' (``a/report`` is an id): the action comes first and
    # the id, through the path convertor, last
    eid, post = "/{experiment_id:path}", ["POST"]

    def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    routes = [
        Route("/", page),
        Route("/api/experiments", api.guarded(read, api.experiments)),
        Route("/api/experiments" + eid, api.guarded(read, api.experiment)),
        Route("/api/report" + eid, api.guarded(read, api.report)),
        Route("/api/rates" + eid, api.guarded(read, api.rates_of)),
        Route("/api/promote" + eid, _json_body(api.guarded(admin, api.promote)), methods=post),
        Route("/api/rollback" + eid, _json_body(api.guarded(admin, api.rollback)), methods=post),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        code = "NOT_FOUND" if status == 404 else "INVALID_ARGUMENT"
        return error(status, code, f"{request.method} {request.url.path}: {exc}")

    async def headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    return Starlette(
        routes=routes,
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or ["*"]),
            Middleware(BaseHTTPMiddleware, dispatch=headers),
        ],
        exception_handlers={404: not_found, 405: not_found},
    )
