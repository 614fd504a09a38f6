"""Network sources: RTSP cameras and encoders, HTTP(S) video files and HLS playlists, and
local camera devices, all opened by FFmpeg through PyAV.

RTSP goes over TCP unless the stream asks for UDP, with low-latency demuxer options (low
delay, a small reorder delay) and open and read timeouts, so a dead camera is
noticed within ``timeout_s`` instead of hanging a thread. An error says whether opening the
source again may help (:attr:`~pitchside.errors.SourceError.retryable`): a camera that does
not answer, refuses or drops out may come back; a 401, 403 or 404 will not. Messages name
the source by its redacted URL and never repeat FFmpeg's text with the URL in it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from typing import Any

import av
import av.error

from ingest.sources.decode import decode_pass, reason
from ingest.sources.info import SourceInfo, probe_container
from ingest.sources.threaded import DecodedFrame
from pitchside.errors import SourceError, SourceUnavailableError

#: HTTP statuses of a camera or server that no retry will change, and what they mean.
_FINAL = {
    av.error.HTTPUnauthorizedError: "401 unauthorized: wrong or missing credentials",
    av.error.HTTPForbiddenError: "403 forbidden",
    av.error.HTTPNotFoundError: "404 not found: no such path on the server",
    av.error.HTTPBadRequestError: "400 bad request",
}


class MediaClock:
    """Media time of a live source across its connections.

    A camera's timestamps start anywhere and start again after a reconnect; each connection's
    are shifted to continue where the previous one ended, plus the wall time in between, so
    that media time only ever increases.
    """

    def __init__(self) -> None:
        self._offset_ns: int | None = None  # container time -> media time, this connection
        self._last_raw_ns: int | None = None  # the last container timestamp, this connection
        self._in_connection = False  # a frame of this connection was mapped
        self._last_ns: int | None = None  # the last media time given out, any connection
        self._last_mono_ns = 0

    def new_connection(self) -> None:
        self._offset_ns, self._last_raw_ns, self._in_connection = None, None, False

    def media_time(self, raw_ns: int | None, step_ns: int) -> int:
        """The media time of a frame whose container timestamp is ``raw_ns`` (None: none).

        A frame without a timestamp is one step after the frame before it (a camera's first
        frame often has none).
        """
        now = time.monotonic_ns()
        if raw_ns is None and self._last_raw_ns is not None:
            raw_ns = self._last_raw_ns + step_ns
        if raw_ns is not None and self._offset_ns is None:
            target = self._next_ns(step_ns) if self._in_connection else self._start(now, step_ns)
            self._offset_ns = target - raw_ns
        if raw_ns is None or self._offset_ns is None:  # nothing to go by yet
            pts_ns = self._next_ns(step_ns) if self._in_connection else self._start(now, step_ns)
        else:
            pts_ns = raw_ns + self._offset_ns
        if self._last_ns is not None and pts_ns <= self._last_ns:
            pts_ns = self._last_ns + 1  # a camera's clock stepped back: never go back with it
        self._in_connection = True
        self._last_raw_ns, self._last_ns, self._last_mono_ns = raw_ns, pts_ns, now
        return pts_ns

    def _next_ns(self, step_ns: int) -> int:
        return (self._last_ns or 0) + step_ns

    def _start(self, now_ns: int, step_ns: int) -> int:
        """Where a connection's media time starts: 0, or after the last frame of the one
        before by the wall time in between (at least a frame)."""
        if self._last_ns is None:
            return 0
        return self._last_ns + max(step_ns, now_ns - self._last_mono_ns)


def open_container(
    target: str, shown: str, *, transport: str, timeout_s: float, format: str | None = None
) -> Any:
    """``av.open`` a network source or device with pitchside's options (blocking).

    Raises:
        SourceError: the server answered 400, 401, 403 or 404 (not retryable).
        SourceUnavailableError: it did not answer in time, refused, or failed otherwise.
    """
    options: dict[str, str] = {}
    if target.lower().startswith(("rtsp://", "rtsps://")):
        # Not fflags=nobuffer: it drops the packets read while FFmpeg probes the stream, the
        # first keyframe among them, so decoding waits for the next one (6.8 s instead of
        # 1.1 s to the first frame on the test clip, whose only keyframe is its first).
        options = {
            "rtsp_transport": transport,
            "flags": "low_delay",
            "max_delay": "500000",  # us of reordering at most (UDP)
        }
    try:
        return av.open(target, options=options, format=format, timeout=(timeout_s, timeout_s))
    except Exception as exc:
        raise classify(exc, f"cannot open {shown}") from exc


def classify(exc: BaseException, context: str) -> SourceError:
    """The SourceError for a PyAV failure: final for a client error, retryable otherwise.

    Args:
        exc: what PyAV raised.
        context: what was being done, naming the source by its redacted URL.
    """
    for kind, meaning in _FINAL.items():
        if isinstance(exc, kind):
            return SourceError(f"{context}: {meaning}")
    return SourceUnavailableError(f"{context}: {reason(exc)}")


def probe_url(target: str, shown: str, *, transport: str, timeout_s: float) -> SourceInfo:
    """Open a network source and decode its first frame (blocking).

    Raises:
        SourceError: final (see :func:`open_container`), or it is not a video.
        SourceUnavailableError: it did not answer or dropped before the first frame.
    """
    container = open_container(target, shown, transport=transport, timeout_s=timeout_s)
    with container:
        try:
            return probe_container(container, shown)
        except SourceError:
            raise
        except Exception as exc:
            raise classify(exc, f"cannot read {shown}") from exc


def decode_url(
    target: str,
    shown: str,
    *,
    transport: str,
    timeout_s: float,
    clock: MediaClock,
    stop: threading.Event,
    format: str | None = None,
) -> Generator[DecodedFrame]:
    """Decode one connection to a network source until it ends or ``stop`` is set.

    Media time continues across connections through ``clock``.

    Raises:
        SourceError: final, or SourceUnavailableError when the source dropped out.
    """
    clock.new_connection()
    container = open_container(
        target, shown, transport=transport, timeout_s=timeout_s, format=format
    )
    count = 0
    try:
        for raw in decode_pass(container, stop):
            count += 1
            pts_ns = clock.media_time(raw.pts_ns, raw.step_ns)
            yield DecodedFrame(raw.bgr, pts_ns, time.time_ns(), raw.decode_s)
    except IndexError as exc:  # container.streams.video[0]
        raise SourceError(f"not a video: {shown} (it has no video stream)") from exc
    except Exception as exc:
        raise classify(exc, f"lost {shown} after {count} frames") from exc
    finally:
        container.close()
