"""The OpenAPI document tells the truth about errors: one ``Error`` schema for every one.

Every error leaves the gateway as ``{"error": code, "detail": message}`` (gateway/app.py's
handlers), request validation errors included; FastAPI documents those as its own
``HTTPValidationError`` (``{"detail": [{"loc", "msg", "type"}]}``), which no answer of this app
has. :func:`document_errors` makes ``app.openapi()`` name the ``Error`` schema for the body
of every documented 4xx and 5xx JSON answer, and drop FastAPI's two schemas.

Two answers come from the app as a whole rather than from a route, so they are added to every
operation that takes a JSON body: 400 (FastAPI cannot parse a body that is not UTF-8 or is
nested too deeply) and 413 (:class:`gateway.limits.BodyLimit`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from gateway.limits import MAX_BODY_BYTES

ERROR_REF = "#/components/schemas/Error"
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "description": "Every error answer of the gateway",
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {
            "type": "string",
            "description": "a stable code: invalid_request, stream_not_found, ...",
            "examples": ["invalid_request"],
        },
        "detail": {
            "type": "string",
            "description": "what was wrong, for a person to read",
            "examples": ["id: Field required"],
        },
    },
}
_FASTAPI_SCHEMAS = ("HTTPValidationError", "ValidationError")
_FASTAPI_REF = "#/components/schemas/HTTPValidationError"
JSON = "application/json"
#: What any operation with a JSON body may answer, whatever its route declares.
JSON_BODY_ANSWERS = {
    "400": "the body is not UTF-8 JSON, or is nested too deeply to parse",
    "413": f"the body is over {MAX_BODY_BYTES:,} bytes",
}


def document_errors(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one whose error answers name :data:`ERROR_SCHEMA`."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        spec = build()  # FastAPI's, cached on the app after the first call
        rewrite(spec)
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def rewrite(spec: dict[str, Any]) -> None:
    """Point the JSON body of every 4xx/5xx answer in ``spec`` at ``Error``, in place
    (again and again: the second time changes nothing)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_SCHEMAS:
        schemas.pop(name, None)
    schemas["Error"] = ERROR_SCHEMA
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            if JSON in operation.get("requestBody", {}).get("content", {}):
                responses = operation.setdefault("responses", {})
                for status, description in JSON_BODY_ANSWERS.items():
                    responses.setdefault(
                        status,
                        {
                            "description": description,
                            "content": {JSON: {"schema": {"$ref": ERROR_REF}}},
                        },
                    )
            for status, answer in operation.get("responses", {}).items():
                if str(status)[:1] not in ("4", "5"):
                    continue
                content = answer.get("content", {})
                body = content.get(JSON)
                if body is None:
                    continue
                if not body.get("schema") or body["schema"].get("$ref") == _FASTAPI_REF:
                    body["schema"] = {"$ref": ERROR_REF}
                if answer.get("description") == "Validation Error":
                    answer["description"] = "the request's parameters or body are invalid"
