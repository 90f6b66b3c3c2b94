"""Transport security and bearer tokens for the gRPC server.

Tokens: each has scopes. ``serve`` allows Recommend (single, batch and
stream) and Feedback; ``admin``
allows the experiment and arm RPCs; ``metrics`` (or ``admin``) allows
Prometheus ``/metrics``. Health and reflection need no token.
Clients send ``authorization: Bearer <token>`` metadata. A missing or
unknown token is refused with UNAUTHENTICATED, a token without the scope
with PERMISSION_DENIED. Tokens are compared in constant time and never
logged.

Where tokens come from (first found wins):
``--auth-tokens FILE`` or ``BANDIT_AUTH_TOKENS_FILE`` (one ``TOKEN SCOPE[,SCOPE]
[name=NAME]`` per line, ``#`` comments), or ``BANDIT_AUTH_TOKENS``
(``TOKEN:SCOPE[,SCOPE][@NAME]`` entries separated by ``;``). A token's NAME
(1-128 letters, digits and ``._@+-``) is who the policy changes it makes are
recorded under (``caller_name``); a token without one is recorded as
``token-`` and the first 8 hex digits of its SHA-256. With none, the server runs without auth (the
embedded default for local use).

TLS: ``--tls-cert`` and ``--tls-key`` (PEM files) turn TLS on;
``--tls-client-ca`` also requires client certificates signed by that CA
(mutual TLS).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import re
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from bandit_engine._exceptions import InvalidArgument
from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb

log = logging.getLogger(__name__)

__all__ = [
    "SCOPES",
    "AuthInterceptor",
    "TLSConfig",
    "TokenChecker",
    "caller_name",
    "is_loopback",
    "load_tokens",
    "method_scope",
    "token_name",
]

SCOPES = ("serve", "admin", "metrics")
_TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
#: The shortest token accepted.
MIN_TOKEN_LENGTH = 16
_SERVE_METHODS = {"Recommend", "RecommendBatch", "RecommendStream", "Feedback"}
_SERVICE_PREFIX = "/bandit.v1.BanditService/"
#: Methods whose requests stream (their handlers take an iterator).
_STREAMING = {
    _SERVICE_PREFIX + m.name
    for m in pb.DESCRIPTOR.services_by_name["BanditService"].methods
    if m.client_streaming
}


def method_scope(method: str) -> str | None:
    """The scope a full method name needs, or None (health, reflection)."""
    if not method.startswith(_SERVICE_PREFIX):
        return None
    return "serve" if method[len(_SERVICE_PREFIX) :] in _SERVE_METHODS else "admin"


def _parse_scopes(text: str, where: str) -> frozenset[str]:
    scopes = frozenset(s.strip() for s in text.split(",") if s.strip())
    bad = scopes - set(SCOPES)
    if not scopes:
        raise InvalidArgument(f"{where}: no scope; use {', '.join(SCOPES)}")
    if bad:
        # An unknown scope as long as a token may be a token written in the
        # scope's place: it is not shown, only its length.
        shown = [
            repr(b) if len(b) < MIN_TOKEN_LENGTH else f"({len(b)} characters, not shown)"
            for b in sorted(bad)
        ]
        raise InvalidArgument(
            f"{where}: unknown scope {', '.join(shown)}; scopes are {', '.join(SCOPES)}, "
            "written after the token"
        )
    return scopes


def _check_token_name(name: str, where: str) -> str:
    if not _TOKEN_NAME.match(name):
        raise InvalidArgument(
            f"{where}: token name {name!r:.140} must be 1-128 letters, digits and ._@+-"
        )
    return name


def load_tokens(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    names: dict[str, str] | None = None,
) -> dict[str, frozenset[str]]:
    """Tokens and their scopes from a file or the environment (see the module
    doc); the names given to tokens go into ``names`` (token -> name)."""
    names = {} if names is None else names
    env = os.environ if env is None else env
    path = path or env.get("BANDIT_AUTH_TOKENS_FILE")
    tokens: dict[str, frozenset[str]] = {}
    if path:
        for n, line in enumerate(Path(path).read_text().splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) == 3 and parts[2].startswith("name="):
                names[parts[0]] = _check_token_name(parts.pop()[5:], f"{path}:{n}")
            if len(parts) != 2:
                raise InvalidArgument(
                    f"{path}:{n}: expected 'TOKEN SCOPE[,SCOPE] [name=NAME]' ({len(parts)} fields; "
                    "the line is not shown, as it may hold a token)"
                )
            if parts[0] in SCOPES and parts[1] not in SCOPES:
                raise InvalidArgument(
                    f"{path}:{n}: the scope {parts[0]!r} comes first; write 'TOKEN SCOPE[,SCOPE]'"
                )
            tokens[parts[0]] = _parse_scopes(parts[1], f"{path}:{n}")
    elif env.get("BANDIT_AUTH_TOKENS"):
        for n, item in enumerate(env["BANDIT_AUTH_TOKENS"].split(";"), 1):
            if not item.strip():
                continue
            token, sep, scopes = item.strip().rpartition(":")
            scopes, at, name = scopes.partition("@")
            if at:
                names[token] = _check_token_name(name, f"BANDIT_AUTH_TOKENS entry {n}")
            if token in SCOPES and scopes not in SCOPES:
                raise InvalidArgument(
                    f"BANDIT_AUTH_TOKENS entry {n}: the scope {token!r} comes first; "
                    "write TOKEN:SCOPES"
                )
            if not sep or not token:
                raise InvalidArgument(f"BANDIT_AUTH_TOKENS entry {n}: expected TOKEN:SCOPES")
            tokens[token] = _parse_scopes(scopes, f"BANDIT_AUTH_TOKENS entry {n}")
    for token in tokens:
        if len(token) < MIN_TOKEN_LENGTH:
            raise InvalidArgument(
                f"auth tokens must be at least {MIN_TOKEN_LENGTH} characters long"
            )
    return tokens


def _deny(code: grpc.StatusCode, message: str, streaming: bool) -> grpc.RpcMethodHandler:
    def abort(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    if streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)


def token_name(token: str, names: Mapping[str, str]) -> str:
    """A token's name (``load_tokens``), compared in constant time; else
    ``token-`` and the first 8 hex digits of its SHA-256."""
    given = token.encode()
    found = None
    for t, name in names.items():  # every entry compared: no timing hint
        if hmac.compare_digest(t.encode(), given):
            found = name
    return found or "token-" + hashlib.sha256(given).hexdigest()[:8]


def caller_name(metadata: Iterable[tuple[str, Any]] | None, names: Mapping[str, str]) -> str:
    """Who made a call: its bearer token's name; ``anonymous`` without a token."""
    for key, value in metadata or ():
        if key == "authorization":
            header = value if isinstance(value, str) else value.decode()
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token_name(token.strip(), names)
    return "anonymous"


class TokenChecker:
    """The scopes of a bearer token, compared in constant time."""

    def __init__(self, tokens: Mapping[str, frozenset[str]]) -> None:
        self._tokens = [(t.encode(), scopes) for t, scopes in tokens.items()]

    def scopes(self, token: str) -> frozenset[str] | None:
        """The token's scopes, or None for an unknown token."""
        given = token.encode()
        found = None
        for t, scopes in self._tokens:  # every entry compared: no timing hint
            if hmac.compare_digest(t, given):
                found = scopes
        return found

    def check_header(self, header: str, need: Iterable[str]) -> tuple[int, str]:
        """Check an ``Authorization`` header for one of the scopes ``need``:
        (0, "") if allowed, else (401 or 403, the reason)."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return 401, "missing bearer token"
        scopes = self.scopes(token.strip())
        if scopes is None:
            return 401, "invalid token"
        wanted = sorted(need)
        if not scopes.intersection(wanted):
            return 403, f"needs scope {' or '.join(wanted)}; the token has {sorted(scopes)}"
        return 0, ""


class AuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Checks ``authorization: Bearer`` metadata against tokens and scopes."""

    def __init__(self, tokens: Mapping[str, frozenset[str]]) -> None:
        self._checker = TokenChecker(tokens)

    def intercept_service(
        self, continuation: Callable[[Any], grpc.RpcMethodHandler], details: Any
    ) -> grpc.RpcMethodHandler:
        need = method_scope(details.method)
        if need is None:
            return continuation(details)
        header = ""
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                header = value if isinstance(value, str) else value.decode()
        status, reason = self._checker.check_header(header, (need,))
        streaming = details.method in _STREAMING
        if status == 401:
            return _deny(grpc.StatusCode.UNAUTHENTICATED, reason, streaming)
        if status == 403:
            return _deny(grpc.StatusCode.PERMISSION_DENIED, f"{details.method} {reason}", streaming)
        return continuation(details)


@dataclass(frozen=True)
class TLSConfig:
    cert: Path
    key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        try:
            pair = (self.key.read_bytes(), self.cert.read_bytes())
            ca = self.client_ca.read_bytes() if self.client_ca else None
        except OSError as exc:
            raise InvalidArgument(f"cannot read TLS file: {exc}") from exc
        return grpc.ssl_server_credentials(
            [pair], root_certificates=ca, require_client_auth=ca is not None
        )

    def server_context(self) -> ssl.SSLContext:
        """The same certificate (and client CA) for an HTTPS server."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(self.cert, self.key)
            if self.client_ca is not None:
                ctx.load_verify_locations(self.client_ca)
                ctx.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgument(f"cannot load TLS files for HTTPS: {exc}") from exc
        return ctx


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
