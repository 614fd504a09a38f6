"""A bound on every request body the gateway reads whole: :class:`BodyLimit`, ASGI middleware.

FastAPI reads a JSON body into memory entirely before it validates it, whatever its size. The
control plane's bodies are small (``POST /api/streams`` takes a source of 2,048 characters at
most), so a body over :data:`MAX_BODY_BYTES` is refused with ``413`` in the app's error shape:
at once when its ``Content-Length`` says so, and otherwise as soon as that many bytes have
arrived (the app is then told the client went), so the gateway never holds more than the
limit of one body. The routes that stream their bodies with limits of their own (uploads,
image predictions, WHIP offers) are exempt, and so are methods whose bodies no handler reads.
"""

from __future__ import annotations

import json
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024  # a StartRequest is well under 3 KB; a WHIP offer a few KB
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # no handler reads the body of another
#: (method, path prefix) of the routes that read their bodies as streams, with limits of their
#: own: uploads and images (their settings), WHIP offers (64 KiB, routes_whip).
STREAMED = (
    ("POST", "/api/uploads"),
    ("POST", "/api/predict"),
    ("POST", "/api/classify"),
    ("POST", "/whip/"),
)


def too_large(max_bytes: int) -> str:
    return f"the request body is larger than {max_bytes:,} bytes, the most this endpoint reads"


class BodyLimit:
    """ASGI middleware: at most ``max_bytes`` of body per POST, PUT or PATCH request, but for
    the ``exempt`` (method, path prefix) pairs."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = MAX_BODY_BYTES,
        exempt: Collection[tuple[str, str]] = STREAMED,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = tuple(exempt)

    def _bounded(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            return False
        method, path = scope["method"], scope["path"]
        return not any(method == m and path.startswith(p) for m, p in self.exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._bounded(scope):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _refuse(send, self.max_bytes)
            return
        received = 0
        started = refused = False  # the app's answer has begun; ours was sent instead

        async def bounded() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Answer now; the app, told the client went, stops reading.
                    refused = True
                    if not started:
                        await _refuse(send, self.max_bytes)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused and not started:
                return  # the app's answer to the disconnect: ours went already
            started = True
            await send(message)

        await self.app(scope, bounded, guarded)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses such a request before it gets here
    return None


async def _refuse(send: Send, max_bytes: int) -> None:
    body = json.dumps({"error": "content_too_large", "detail": too_large(max_bytes)}).encode()
    await send({
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # the unread body is not worth reading to keep it open
        ],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})
