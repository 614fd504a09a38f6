"""Access control of the gateway: tokens and their roles, the browser session cookie, origin
checks and CORS.

With ``PITCHSIDE_TOKEN`` (or its file) set, every API call and every WebSocket needs a
credential, one of (in this order):

- ``Authorization: Bearer <token>``: the operator's token (``PITCHSIDE_TOKEN``, role
  ``operator``: everything) or the viewer's (``PITCHSIDE_VIEWER_TOKEN``, role ``viewer``: GET,
  HEAD and the viewer WebSocket, nothing that changes anything);
- the session cookie ``pitchside_session`` that ``POST /api/session`` sets for a browser in
  exchange for a token: HttpOnly, SameSite=Strict, HMAC-signed with a key derived from the
  tokens, naming its role and its expiry (``PITCHSIDE_SESSION_TTL_S``), renewed when past half
  its life;
- WebSocket only: the subprotocol ``pitchside.token.<base64url(token)>`` offered beside
  ``pitchside`` (which the gateway then selects), for browser clients that hold a token.

A token is never read from a URL: query strings end up in access logs. Without a credential
the answer is 401 (``WWW-Authenticate: Bearer``) and a WebSocket is closed with 4401. The
viewer shell (``/``, ``/static/``), ``POST``/``DELETE /api/session`` and, unless
``PITCHSIDE_HEALTH_AUTH`` or ``PITCHSIDE_METRICS_AUTH`` say otherwise, ``/healthz``,
``/readyz`` and ``/metrics`` stay open. Tokens are compared in constant time
(:func:`hmac.compare_digest`), and the credential headers are taken out of the request before
any route sees it, so no route can log them.

Origins: a viewer WebSocket opened by a page of another origin than the gateway's own is
closed with 4403, unless that origin is in ``PITCHSIDE_WS_ORIGINS`` (by default
``PITCHSIDE_CORS_ORIGINS``), with or without tokens; a state-changing request authenticated by
the cookie from a foreign origin is refused with 403. CORS headers are sent only for the
origins of ``PITCHSIDE_CORS_ORIGINS`` (none by default).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import protocol
from pitchside.errors import (
    OriginNotAllowedError,
    PitchsideError,
    ReadOnlyError,
    UnauthorizedError,
)
from pitchside.settings import Settings

log = logging.getLogger(__name__)

SESSION_COOKIE = "pitchside_session"
SESSION_PATH = "/api/session"
WS_PROTOCOL = "pitchside"  # the subprotocol the gateway selects when a client offers it
WS_TOKEN_PREFIX = "pitchside.token."  # + base64url(token), no padding
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # all a viewer token may do over HTTP
REALM = 'Bearer realm="pitchside"'
_CREDENTIAL_HEADERS = (b"authorization", b"cookie")
_COOKIE_VERSION = "v1"

NEEDS_TOKEN = (
    "this gateway needs a token: send 'Authorization: Bearer <token>' (PITCHSIDE_TOKEN, or "
    f"PITCHSIDE_VIEWER_TOKEN to watch only), or sign in with POST {SESSION_PATH}"
)
BAD_TOKEN = "the token is not valid"
BAD_SESSION = f"the session has expired or is not valid: sign in again with POST {SESSION_PATH}"


class Role(StrEnum):
    """What a credential may do: ``operator`` everything, ``viewer`` watch only."""

    OPERATOR = "operator"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class Credential:
    """Who a request is: its role, how it proved it, and when a session cookie expires."""

    role: Role
    via: str  # "bearer", "cookie", "subprotocol", or "none" (no token configured)
    expires_s: int | None = None  # epoch s; a session cookie's expiry


class TokenRefusedError(UnauthorizedError):
    """A credential came and is not valid (``error="invalid_token"`` in WWW-Authenticate)."""


class Authenticator:
    """Checks credentials against the configured tokens and issues session cookies.

    Args:
        settings: ``token``, ``viewer_token``, ``session_ttl_s`` and the origin lists.
        clock: epoch seconds now; tests pass their own to expire a session without waiting.
    """

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.enabled = settings.token is not None
        self.ttl_s = int(settings.session_ttl_s)
        self.metrics_open = not settings.metrics_auth
        self.health_open = not settings.health_auth
        self.cors_origins = settings.cors_origins
        self.ws_origins = settings.websocket_origins
        self._clock = clock
        self._tokens: list[tuple[bytes, Role]] = []
        if settings.token is not None:
            self._tokens.append((settings.token.encode(), Role.OPERATOR))
        if settings.viewer_token is not None:
            self._tokens.append((settings.viewer_token.encode(), Role.VIEWER))
        # The cookies' key comes from both tokens: every gateway holding them accepts the
        # others' cookies, a restart keeps the sessions, and changing a token ends them all.
        material = b"pitchside session cookie v1\0" + (settings.viewer_token or "").encode()
        self._key = hmac.new((settings.token or "").encode(), material, hashlib.sha256).digest()

    # ---------------------------------------------------------------- tokens

    def role_of(self, token: bytes) -> Role | None:
        """The role of ``token``, or None; every token is compared, in constant time."""
        found: Role | None = None
        for secret, role in self._tokens:
            if hmac.compare_digest(token, secret) and found is None:
                found = role
        return found

    # ---------------------------------------------------------------- sessions

    def issue(self, role: Role) -> tuple[str, int]:
        """A session cookie value for ``role`` and its expiry (epoch s)."""
        expires = int(self._clock()) + self.ttl_s
        payload = f"{_COOKIE_VERSION}.{role.value}.{expires}"
        return f"{payload}.{self._sign(payload)}", expires

    def session(self, value: str) -> Credential | None:
        """The credential a session cookie value carries; None when it is forged, malformed,
        expired, or lives longer than the sessions this gateway issues now."""
        version, _, rest = value.partition(".")
        role_name, _, rest = rest.partition(".")
        expires_raw, _, signature = rest.partition(".")
        if version != _COOKIE_VERSION or not expires_raw.isdigit():
            return None
        payload = f"{version}.{role_name}.{expires_raw}"
        if not hmac.compare_digest(self._sign(payload).encode(), signature.encode()):
            return None
        try:
            role = Role(role_name)
        except ValueError:
            return None
        expires, now = int(expires_raw), self._clock()
        if not now < expires <= now + self.ttl_s:
            return None
        return Credential(role, "cookie", expires)

    def needs_renewal(self, credential: Credential) -> bool:
        """Whether a session cookie is past half its life (it is then issued again)."""
        if credential.via != "cookie" or credential.expires_s is None:
            return False
        return credential.expires_s - self._clock() < self.ttl_s / 2

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    # ---------------------------------------------------------------- requests

    def authenticate(self, headers: Headers, ws_token: bytes | None = None) -> Credential:
        """The credential of a request: its bearer token, else its session cookie, else (a
        WebSocket) the token of its subprotocol.

        Raises:
            UnauthorizedError: none came (:class:`TokenRefusedError`: one came, not valid).
        """
        if not self.enabled:
            return Credential(Role.OPERATOR, "none")
        # Another scheme (a proxy's Basic) is not this gateway's business: the others may do.
        scheme, _, token = headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer":
            role = self.role_of(token.strip().encode())
            if role is None:
                raise TokenRefusedError(BAD_TOKEN)
            return Credential(role, "bearer")
        cookie = cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE)
        if cookie:
            session = self.session(cookie)
            if session is None:
                raise TokenRefusedError(BAD_SESSION)
            return session
        if ws_token is not None:
            role = self.role_of(ws_token)
            if role is None:
                raise TokenRefusedError(BAD_TOKEN)
            return Credential(role, "subprotocol")
        raise UnauthorizedError(NEEDS_TOKEN)

    def is_open(self, method: str, path: str) -> bool:
        """Whether an HTTP request needs no credential (the viewer shell, signing in and out,
        and the probes and metrics unless configured otherwise)."""
        if path == "/" or path.startswith("/static/"):
            return True
        if path == SESSION_PATH:
            return method in ("POST", "DELETE")
        if path in ("/healthz", "/readyz"):
            return self.health_open
        if path == "/metrics":
            return self.metrics_open
        return False

    def set_cookie(self, value: str, headers: Headers, scheme: str) -> str:
        """The ``Set-Cookie`` header value of a session (``Secure`` when the page is HTTPS)."""
        secure = scheme in ("https", "wss") or headers.get("origin", "").startswith("https://")
        return (
            f"{SESSION_COOKIE}={value}; Max-Age={self.ttl_s}; Path=/; HttpOnly; SameSite=Strict"
            + ("; Secure" if secure else "")
        )


def clear_cookie() -> str:
    """A ``Set-Cookie`` header value that ends the session in the browser."""
    return f"{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"


def same_origin(origin: str, host: str) -> bool:
    """Whether a page of ``origin`` (``scheme://host[:port]``) is the gateway's own, as the
    request's ``Host`` header names it."""
    try:
        page = urlsplit(origin)
        served = urlsplit(f"//{host}")
        default = {"http": 80, "https": 443}.get(page.scheme)
        page_port, served_port = page.port or default, served.port or default
    except ValueError:
        return False
    if not page.hostname or not served.hostname:
        return False
    return page.hostname == served.hostname and page_port == served_port


def origin_allowed(headers: Headers, allowed: Sequence[str]) -> bool:
    """Whether the request's ``Origin`` (browsers send one) may act: none (not a browser),
    the gateway's own, or one of ``allowed`` (``*``: any)."""
    origin = headers.get("origin")
    if origin is None:
        return True
    if "*" in allowed or origin.lower().rstrip("/") in allowed:
        return True
    return same_origin(origin.lower(), headers.get("host", ""))


class AccessControl:
    """ASGI middleware: every HTTP request and WebSocket passes :class:`Authenticator`'s
    checks, or is refused (401/403, or WebSocket close 4401/4403) before the app sees it."""

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        auth, method, path = self.auth, scope["method"], scope["path"]
        if not auth.enabled or auth.is_open(method, path):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            credential = auth.authenticate(headers)
            if credential.role is Role.VIEWER and method not in READ_METHODS:
                raise ReadOnlyError(
                    f"the viewer token may watch, not change anything: {method} {path} needs "
                    "the operator's token (PITCHSIDE_TOKEN)"
                )
            if credential.via == "cookie" and method not in READ_METHODS:
                if not origin_allowed(headers, auth.cors_origins):
                    raise OriginNotAllowedError(
                        "a page of another origin may not change anything with this "
                        "gateway's session (PITCHSIDE_CORS_ORIGINS lists the origins allowed)"
                    )
        except PitchsideError as exc:
            if isinstance(exc, UnauthorizedError):
                log.debug("%s %s refused: %s", method, path, exc)
            await _refuse_http(exc)(scope, receive, send)
            return
        if auth.needs_renewal(credential):
            value, _ = auth.issue(credential.role)
            renewed = auth.set_cookie(value, headers, scope.get("scheme", "http"))
            send = _with_header(send, b"set-cookie", renewed.encode())
        await self.app(_inner_scope(scope, credential), receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        offered: list[str] = list(scope.get("subprotocols") or ())
        if not origin_allowed(headers, self.auth.ws_origins):
            await _refuse_ws(receive, send, offered, protocol.CLOSE_FORBIDDEN, "origin not allowed")
            return
        ws_token = _subprotocol_token(offered)
        try:
            credential = self.auth.authenticate(headers, ws_token)
        except UnauthorizedError as exc:
            log.debug("viewer WebSocket %s refused: %s", scope["path"], exc)
            reason = "token not valid" if isinstance(exc, TokenRefusedError) else "token needed"
            await _refuse_ws(receive, send, offered, protocol.CLOSE_UNAUTHORIZED, reason)
            return
        inner = _inner_scope(scope, credential)
        inner["subprotocols"] = [p for p in offered if not p.startswith(WS_TOKEN_PREFIX)]

        async def selecting(message: Message) -> None:
            if message["type"] == "websocket.accept" and message.get("subprotocol") is None:
                if WS_PROTOCOL in offered:
                    message = {**message, "subprotocol": WS_PROTOCOL}
            await send(message)

        await self.app(inner, receive, selecting)


def install(
    app: FastAPI, settings: Settings, clock: Callable[[], float] = time.time
) -> Authenticator:
    """Add access control (and CORS, when origins are configured) to ``app``; call it after
    every other middleware is added, so that these run first."""
    auth = Authenticator(settings, clock)
    app.add_middleware(AccessControl, auth=auth)
    if settings.cors_origins:
        # Outermost: preflights are answered before access control, and every answer (a 401
        # too) carries the headers a page of an allowed origin needs to read it.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "HEAD", "POST", "DELETE"],
            allow_headers=["authorization", "content-type"],
            expose_headers=["location", "www-authenticate"],
            max_age=600,
        )
    return auth


# -------------------------------------------------------------------- helpers


def _inner_scope(scope: Scope, credential: Credential) -> Scope:
    """The request as the app sees it: its credential in ``scope["auth"]``
    (``request.auth``), its credential headers gone."""
    headers = [(k, v) for k, v in scope["headers"] if k not in _CREDENTIAL_HEADERS]
    return {**scope, "headers": headers, "auth": credential}


def _subprotocol_token(offered: Sequence[str]) -> bytes | None:
    for name in offered:
        if name.startswith(WS_TOKEN_PREFIX):
            encoded = name.removeprefix(WS_TOKEN_PREFIX)
            try:
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            except (binascii.Error, ValueError):
                return b""  # not base64url: no token can match it
    return None


def _refuse_http(exc: PitchsideError) -> JSONResponse:
    headers = {}
    if isinstance(exc, UnauthorizedError):
        invalid = isinstance(exc, TokenRefusedError)
        headers["WWW-Authenticate"] = REALM + (', error="invalid_token"' if invalid else "")
    body = {"error": exc.code, "detail": str(exc)}
    return JSONResponse(body, status_code=exc.status, headers=headers)


async def _refuse_ws(
    receive: Receive, send: Send, offered: Sequence[str], code: int, reason: str
) -> None:
    """Accept the handshake and close at once with ``code``: a browser sees the code (a
    refused handshake would reach it as a bare 1006)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    accept: Message = {"type": "websocket.accept"}
    if WS_PROTOCOL in offered:
        accept["subprotocol"] = WS_PROTOCOL
    await send(accept)
    await send({"type": "websocket.close", "code": code, "reason": protocol.close_reason(reason)})


def _with_header(send: Send, name: bytes, value: bytes) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (name, value)]}
        await send(message)

    return sending
