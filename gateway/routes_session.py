"""``/api/session``: a browser signs in with a token and gets the session cookie.

``POST /api/session`` ``{"token": ...}`` answers the role the token grants and sets the
``pitchside_session`` cookie (HttpOnly, SameSite=Strict, ``PITCHSIDE_SESSION_TTL_S``), so that
the bundled viewer keeps the token out of URLs, scripts and storage; ``GET`` says who the
caller is; ``DELETE`` signs out. See gateway/auth.py.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from gateway.auth import Authenticator, Credential, Role, clear_cookie
from pitchside.errors import UnauthorizedError
from pitchside.settings import TOKEN_MAX_CHARS


class SessionRequest(BaseModel):
    token: str = Field(
        min_length=1, max_length=TOKEN_MAX_CHARS,
        description="the operator's token (PITCHSIDE_TOKEN) or the viewer's "
        "(PITCHSIDE_VIEWER_TOKEN)",
    )  # fmt: skip


class SessionInfo(BaseModel):
    auth: bool = Field(description="whether this gateway asks for a token at all")
    role: Literal["operator", "viewer"] = Field(
        description="operator: everything; viewer: watch streams, change nothing"
    )
    expires: int | None = Field(
        description="when the session cookie expires (epoch s); null for a bearer token, or "
        "when the gateway asks for no token"
    )


def router_for(auth: Authenticator) -> APIRouter:
    """The session routes of a gateway whose access control is ``auth``."""
    router = APIRouter(tags=["session"])

    @router.post(
        "/api/session",
        summary="Sign in with a token: sets the session cookie",
        responses={401: {"description": "the token is not valid"}},
    )
    async def sign_in(body: SessionRequest, request: Request, response: Response) -> SessionInfo:
        if not auth.enabled:
            return SessionInfo(auth=False, role=Role.OPERATOR.value, expires=None)
        role = auth.role_of(body.token.encode())
        if role is None:
            raise UnauthorizedError("the token is not valid")
        value, expires = auth.issue(role)
        cookie = auth.set_cookie(value, request.headers, request.url.scheme)
        response.headers.append("set-cookie", cookie)
        return SessionInfo(auth=True, role=role.value, expires=expires)

    @router.get("/api/session", summary="Who the caller is: its role and its session's expiry")
    async def whoami(request: Request) -> SessionInfo:
        credential = request.scope.get("auth")
        if not isinstance(credential, Credential) or credential.via == "none":
            return SessionInfo(auth=False, role=Role.OPERATOR.value, expires=None)
        return SessionInfo(auth=True, role=credential.role.value, expires=credential.expires_s)

    @router.delete("/api/session", status_code=204, summary="Sign out: ends the session cookie")
    async def sign_out() -> Response:
        return Response(status_code=204, headers={"set-cookie": clear_cookie()})

    return router
