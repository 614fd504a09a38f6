"""Sources: every kind of video ingest can open, behind one protocol and one table.

A source string is parsed once (:func:`parse`) into a :class:`SourceSpec` whose
:class:`SourceKind` comes from :data:`SCHEMES`, a table from URL scheme to kind. Every kind
probes the same way (a first decoded frame, :class:`SourceInfo`) and opens the same way: a
:class:`Source` that decodes on a thread of its own and hands prepared frames to asyncio
(:class:`~ingest.sources.threaded.ThreadedSource`). A kind says whether its frames arrive
in real time (a camera: no pacing) and whether a drop-out is reconnected. Adding a kind is
one module with its probe and its decoder and one row in :data:`SCHEMES`.

Errors are :class:`~pitchside.errors.SourceError`; ``retryable`` says whether opening the
source again may help. No message repeats a URL unredacted.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, TypeVar

from ingest.sources.file import decode_file, local_path, probe_file
from ingest.sources.info import SourceInfo
from ingest.sources.network import MediaClock, decode_url, probe_url
from ingest.sources.threaded import DecodedFrame, ThreadedSource, run_in_thread
from pitchside.errors import SourceError
from pitchside.redact import redact_url
from pitchside.uploads import UPLOAD_SCHEME, upload_of_source

__all__ = [
    "FILE",
    "SCHEMES",
    "DecodedFrame",
    "MediaClock",
    "Source",
    "SourceInfo",
    "SourceKind",
    "SourceSpec",
    "open_source",
    "parse",
    "probe",
    "probe_in_thread",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

_URL = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://")
_DEVICE = re.compile(r"^/dev/video\d+$")


class Source(Protocol[T_co]):
    """An opened source: ``async with`` opens it, :meth:`get` returns its frames.

    ``get`` returns None at the end of the source and raises SourceError when it fails.
    """

    @property
    def ready(self) -> bool:
        """Whether :meth:`get` would return at once."""
        ...

    async def get(self, timeout: float | None = None) -> T_co | None: ...

    async def __aenter__(self) -> Source[T_co]: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A parsed source: what to open, how, and how to name it."""

    kind: SourceKind
    scheme: str  # the URL's scheme; "file" for a path, "device" for /dev/videoN
    target: str  # path or URL as given, credentials included (WHIP: the session): never log it
    shown: str  # the same with credentials redacted
    loop: bool = False  # files: start over at the end
    transport: str = "tcp"  # RTSP: tcp or udp
    timeout_s: float = 5.0  # network: open and read timeout


@dataclass(frozen=True, slots=True)
class SourceKind:
    """One kind of source: how it is probed and decoded.

    Attributes:
        name: ``file``, ``rtsp``, ``http``, ``device``.
        realtime: frames arrive at the source's own pace (a camera): published as they
            come, never paced from their timestamps.
        reconnects: a drop-out (an error that may pass, its end) is retried with backoff.
        probe: opens the source and decodes its first frame (blocking).
        frames: decodes one opening of the source on the calling thread.
    """

    name: str
    realtime: bool
    reconnects: bool
    probe: Callable[[SourceSpec], SourceInfo]
    frames: Callable[[SourceSpec, MediaClock, threading.Event], Generator[DecodedFrame]]


def _file_frames(
    spec: SourceSpec, clock: MediaClock, stop: threading.Event
) -> Generator[DecodedFrame]:
    return decode_file(local_path(spec.target), loop=spec.loop, stop=stop)


def _url_probe(spec: SourceSpec) -> SourceInfo:
    return probe_url(spec.target, spec.shown, transport=spec.transport, timeout_s=spec.timeout_s)


def _url_frames(
    spec: SourceSpec, clock: MediaClock, stop: threading.Event
) -> Generator[DecodedFrame]:
    return decode_url(
        spec.target, spec.shown, transport=spec.transport, timeout_s=spec.timeout_s,
        clock=clock, stop=stop,
        format="v4l2" if spec.kind.name == "device" else None,
    )  # fmt: skip


FILE = SourceKind(
    "file", False, False, lambda spec: probe_file(local_path(spec.target)), _file_frames
)
RTSP = SourceKind("rtsp", True, True, _url_probe, _url_frames)
HTTP = SourceKind("http", False, False, _url_probe, _url_frames)  # files and HLS playlists
DEVICE = SourceKind("device", True, True, _url_probe, _url_frames)  # /dev/video*

#: URL scheme -> kind. A path without a scheme is a file (or, /dev/videoN, a camera device).
SCHEMES: dict[str, SourceKind] = {
    "file": FILE,
    "rtsp": RTSP,
    "rtsps": RTSP,
    "http": HTTP,
    "https": HTTP,
}


def parse(
    source: str, *, loop: bool = False, transport: str = "tcp", timeout_s: float = 5.0
) -> SourceSpec:
    """The spec of a source string (a path, ``file://``, ``rtsp://``, ``http(s)://``,
    ``upload:<id>``...).

    Raises:
        SourceError: (422) an empty source, or a scheme no kind serves. The message never
            repeats the URL, so it cannot leak credentials.
    """
    if not source.strip():
        raise SourceError("source is empty; give a file path or a camera URL")
    upload = upload_of_source(source)
    if upload is not None:  # a file too, found in the data folder by ingest.access
        return SourceSpec(FILE, UPLOAD_SCHEME, upload, source, loop, transport, timeout_s)
    match = _URL.match(source)
    if match is None:
        kind = DEVICE if _DEVICE.match(source) else FILE
        scheme = kind.name
    else:
        scheme = match["scheme"].lower()
        if scheme == "whip":  # ingest/sources/webrtc.py: a publisher is not opened by URL
            raise SourceError(
                "a WebRTC publisher starts its own stream: it sends its SDP offer to "
                "POST /whip/{sid} (the viewer's 'Go live with this camera' does)"
            )
        if scheme not in SCHEMES:
            raise SourceError(
                f"{scheme} sources are not supported; give a file path or a "
                f"{', '.join(s + '://' for s in SCHEMES)} URL"
            )
        kind = SCHEMES[scheme]
    if kind is FILE:
        local_path(source)  # a file URL naming another host is refused now
    return SourceSpec(kind, scheme, source, redact_url(source), loop, transport, timeout_s)


def probe(spec: SourceSpec) -> SourceInfo:
    """Open the source and decode its first frame (blocking: run it in a thread).

    Raises:
        SourceError: it cannot be opened or decoded; ``retryable`` when it may come back.
    """
    return spec.kind.probe(spec)


async def probe_in_thread(spec: SourceSpec) -> SourceInfo:
    """:func:`probe` on a short-lived thread of its own, awaited from the event loop."""
    return await run_in_thread(probe, spec, name="ingest-probe")


def open_source(
    spec: SourceSpec,
    prepare: Callable[[DecodedFrame], T],
    clock: MediaClock,
    *,
    sid: str = "",
) -> ThreadedSource[T]:
    """One opening of the source, not started yet (``async with`` starts it)."""
    return ThreadedSource(lambda stop: spec.kind.frames(spec, clock, stop), prepare, sid=sid)
