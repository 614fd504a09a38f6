"""One file from a ``multipart/form-data`` body, its size bounded while it arrives.

FastAPI's ``UploadFile`` parameters read the whole body (to a temporary file) before the
handler runs, whatever its size; these read the request stream themselves, refuse a declared
``Content-Length`` over the limit at once and stop reading at the limit otherwise, so a
client cannot make the gateway store more than ``max_bytes``. :func:`read_file` returns a
small file's bytes (an image); :func:`save_file` writes a large one (a match video) to disk
as it arrives, with python-multipart's streaming parser.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

from pitchside.errors import (
    ContentTooLargeError,
    InvalidRequestError,
    MalformedBodyError,
    UnsupportedMediaError,
)

MULTIPART = "multipart/form-data"
MAX_FIELDS = 8  # a form with a file and a few small fields at most
FILENAME_MAX_CHARS = 255


def clean_filename(name: str | None) -> str | None:
    """The client's file name without any folder, printable, at most 255 characters: to
    show and store, never to open."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if c.isprintable()).strip()
    return cleaned[:FILENAME_MAX_CHARS] or None


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


def _too_large(
    max_bytes: int, limit_name: str, what: str = "the request body"
) -> ContentTooLargeError:
    setting = f" ({limit_name})" if limit_name else ""
    return ContentTooLargeError(f"{what} must be at most {max_bytes / 2**20:g} MiB{setting}")


@dataclass(frozen=True, slots=True)
class SavedFile:
    filename: str | None  # as the client named it; never a path to use
    size: int  # bytes written


async def save_file(
    request: Request, field: str, dest: Path, max_bytes: int, limit_name: str = ""
) -> SavedFile:
    """Write the file of multipart field ``field`` to ``dest`` as it arrives, in chunks: the
    body is never held whole, and the file is cut off with a 413 at ``max_bytes``. Other
    parts are read past (their bytes count towards a small bound). On any error ``dest``
    may hold part of the file: the caller removes it.

    Raises:
        UnsupportedMediaError: the body is not ``multipart/form-data`` (415).
        ContentTooLargeError: the file is, or the body declares itself, over the limit (413).
        MalformedBodyError: the multipart body cannot be parsed (400).
        InvalidRequestError: no file in field ``field``, or the file is empty (422).
    """
    boundary = _boundary(request, field)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD_BYTES:
        raise _too_large(max_bytes, limit_name, "the file")
    sink = _FileSink(field, max_bytes, limit_name)
    parser = MultipartParser(
        boundary, cast("MultipartCallbacks", sink.callbacks()), max_size=float("inf")
    )
    with dest.open("wb") as out:
        async for chunk in request.stream():
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise MalformedBodyError(f"the multipart body cannot be read: {exc}") from None
            sink.check()
            if sink.pending:  # the file's part of this chunk, written off the event loop
                await asyncio.to_thread(out.write, b"".join(sink.pending))
                sink.pending.clear()
        try:
            parser.finalize()
        except MultipartParseError as exc:
            raise MalformedBodyError(f"the multipart body cannot be read: {exc}") from None
    if not sink.found:
        raise InvalidRequestError(
            f"the multipart body has no file in a {field!r} field; send the video as {field!r}"
        )
    if not sink.complete:
        raise MalformedBodyError("the multipart body ended in the middle of the file")
    if sink.size == 0:
        raise InvalidRequestError(f"the file in field {field!r} is empty")
    return SavedFile(filename=sink.filename, size=sink.size)


FORM_OVERHEAD_BYTES = 64 * 1024  # what a body may hold besides the file: boundaries, headers


class _FileSink:
    """python-multipart callbacks: the bytes of one field's file, counted and bounded."""

    def __init__(self, field: str, max_bytes: int, limit_name: str) -> None:
        self.field, self.max_bytes, self.limit_name = field, max_bytes, limit_name
        self.pending: list[bytes] = []  # file bytes parsed and not yet written
        self.size = 0
        self.other = 0  # bytes of the other parts
        self.found = False
        self.complete = False
        self.filename: str | None = None
        self._headers: dict[bytes, bytes] = {}
        self._name: bytes = b""
        self._value: bytes = b""
        self._in_file = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def check(self) -> None:
        if self.size > self.max_bytes:
            raise _too_large(self.max_bytes, self.limit_name, "the file")
        if self.other > FORM_OVERHEAD_BYTES:
            raise ContentTooLargeError(
                f"the form's other fields must be at most {FORM_OVERHEAD_BYTES // 1024} KiB"
            )

    def _part_begin(self) -> None:
        self._headers, self._in_file = {}, False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._name.lower()] = self._value
        self._name, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if name == self.field and filename is not None and not self.found:
            self.found, self._in_file = True, True
            self.filename = filename.decode("utf-8", "replace") or None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.pending.append(data[start:end])
            self.size += end - start
        else:
            self.other += end - start

    def _part_end(self) -> None:
        if self._in_file:
            self.complete, self._in_file = True, False


def _boundary(request: Request, field: str) -> bytes:
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    media_type = content_type.decode("latin-1").lower()
    if media_type != MULTIPART:
        raise UnsupportedMediaError(
            f"send the file as {MULTIPART} with a {field!r} field, "
            f"got {media_type or 'no Content-Type'}"
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise MalformedBodyError(f"the {MULTIPART} Content-Type has no boundary")
    return boundary
