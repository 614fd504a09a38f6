"""One file from a ``multipart/form-data`` body, its size bounded while it arrives.

FastAPI's ``UploadFile`` parameters read the whole body (to a temporary file) before the
handler runs, whatever its size; this reads the request stream itself, refuses a declared
``Content-Length`` over the limit at once and stops reading at the limit otherwise, so a
client cannot make the gateway store more than ``max_bytes``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from pitchside.errors import (
    ContentTooLargeError,
    InvalidRequestError,
    MalformedBodyError,
    UnsupportedMediaError,
)

MULTIPART = "multipart/form-data"
MAX_FIELDS = 8  # a form with a file and a few small fields at most


def openapi_body(field: str, description: str) -> dict[str, object]:
    """An ``openapi_extra`` for a handler reading one file field with :func:`read_file`."""
    schema = {
        "type": "object",
        "required": [field],
        "properties": {field: {"type": "string", "format": "binary", "description": description}},
    }
    return {"requestBody": {"required": True, "content": {MULTIPART: {"schema": schema}}}}


@dataclass(frozen=True, slots=True)
class FilePart:
    filename: str | None  # as the client named it; never a path to use
    content_type: str | None  # as the client declared it; not trusted
    data: bytes


async def read_file(request: Request, field: str, max_bytes: int, limit_name: str = "") -> FilePart:
    """The file sent in multipart field ``field``, at most ``max_bytes`` of body in all
    (``limit_name``: the setting that says so, for the message).

    Raises:
        UnsupportedMediaError: the body is not ``multipart/form-data`` (415).
        ContentTooLargeError: the body is, or declares itself, over ``max_bytes`` (413).
        MalformedBodyError: the multipart body cannot be parsed (400).
        InvalidRequestError: no such field, the field is not a file, or the file is empty (422).
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != MULTIPART:
        raise UnsupportedMediaError(
            f"send the file as {MULTIPART} with a {field!r} field, "
            f"got {media_type or 'no Content-Type'}"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes, limit_name)
    parser = MultiPartParser(
        request.headers, _bounded(request.stream(), max_bytes, limit_name),
        max_files=1, max_fields=MAX_FIELDS,
    )  # fmt: skip
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise MalformedBodyError(f"the multipart body cannot be read: {exc.message}") from None
    try:
        value = form.get(field)
        if value is None:
            raise InvalidRequestError(
                f"the multipart body has no {field!r} field; send the image as {field!r}"
            )
        if not isinstance(value, UploadFile):
            raise InvalidRequestError(
                f"field {field!r} must be a file (a part with a filename), got a text field"
            )
        data = await value.read()
        if not data:
            raise InvalidRequestError(f"the file in field {field!r} is empty")
        return FilePart(filename=value.filename, content_type=value.content_type, data=data)
    finally:
        await form.close()


async def _bounded(
    stream: AsyncIterator[bytes], max_bytes: int, limit_name: str
) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > max_bytes:
            raise _too_large(max_bytes, limit_name)
        yield chunk


def _too_large(max_bytes: int, limit_name: str) -> ContentTooLargeError:
    setting = f" ({limit_name})" if limit_name else ""
    return ContentTooLargeError(
        f"the request body must be at most {max_bytes / 2**20:g} MiB{setting}"
    )
