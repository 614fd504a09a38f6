"""The file kind: a local video file (a path or a ``file://`` URL), replayed once or looped."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import av
import av.error

from ingest.sources.decode import decode_pass, reason
from ingest.sources.info import SourceInfo, probe_container
from ingest.sources.threaded import DecodedFrame
from pitchside.errors import SourceError


def local_path(source: str) -> Path:
    """A path as given, or the path of a ``file://`` URL.

    Raises:
        SourceError: a file URL naming another host.
    """
    if not source.lower().startswith("file://"):
        return Path(source)
    parts = urlsplit(source)
    if parts.netloc not in ("", "localhost"):
        raise SourceError(f"file URLs must name a local path, got host {parts.netloc!r}")
    return Path(unquote(parts.path))


def probe_file(path: Path) -> SourceInfo:
    """Open ``path`` and decode its first video frame (blocking).

    Raises:
        SourceError: the path is missing or a directory, PyAV cannot open it, it has no
            video stream, or its first frame does not decode.
    """
    if not path.exists():
        raise SourceError(f"no such file: {path}")
    if path.is_dir():
        raise SourceError(f"not a video: {path.name} (it is a directory)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise SourceError(f"not a video: {path.name} ({reason(exc)})") from exc
    with container:
        return probe_container(container, path.name)


def decode_file(path: Path, *, loop: bool, stop: threading.Event) -> Generator[DecodedFrame]:
    """Decode the first video stream of ``path`` (blocking), optionally looping forever.

    Timestamps come from ``frame.pts * time_base``; a frame without one gets the previous
    timestamp plus one frame at the stream's average rate. When looping, each pass is shifted
    to start where the previous one ended (last pts plus its duration), so timestamps keep
    increasing. Stops early when ``stop`` is set.

    Raises:
        SourceError: the file cannot be opened or decoding fails, or a looped pass yields no
            frame.
    """
    offset_ns = 0  # added to every pts of the current pass
    last_ns: int | None = None  # previous frame's pts (after offset)
    end_ns: int | None = None  # where the previous pass ended
    count = 0
    while not stop.is_set():
        pass_count = 0
        need_offset = end_ns is not None  # a later pass: shift it to start at end_ns
        try:
            with av.open(str(path)) as container:
                for raw in decode_pass(container, stop):
                    if raw.pts_ns is None:
                        pts_ns = (last_ns + raw.step_ns) if last_ns is not None else offset_ns
                    else:
                        if need_offset and end_ns is not None:
                            offset_ns, need_offset = end_ns - raw.pts_ns, False
                        pts_ns = raw.pts_ns + offset_ns
                    last_ns, end_ns = pts_ns, pts_ns + raw.duration_ns
                    count += 1
                    pass_count += 1
                    yield DecodedFrame(raw.bgr, pts_ns, time.time_ns(), raw.decode_s)
        except av.error.FFmpegError as exc:
            raise SourceError(
                f"decoding {path.name} failed after {count} frames: {reason(exc)}"
            ) from exc
        except IndexError as exc:  # container.streams.video[0]
            raise SourceError(f"not a video: {path.name} (it has no video stream)") from exc
        if not loop:
            return
        if pass_count == 0 and not stop.is_set():
            raise SourceError(f"{path.name} has no frames to loop over")
