"""The viewer WebSocket protocol (``/ws/streams/{sid}``): encoders, and decoders for clients.

A *frame message* describes one analysed video frame. Its JSON (the *meta*) is::

    {"v": 1, "sid": "cam1", "seq": 42, "ts_capture": 1700000000000000000, "w": 1920, "h": 1080,
     "model": "pitchside-football.onnx",
     "detections": [{"box": [x1, y1, x2, y2], "score": 0.91, "cls": 2, "label": "player"}],
     "timings": {"capture": ..., "publish": ..., ..., "gateway_send": ...}}

Boxes are in source pixels (of the ``w`` x ``h`` JPEG); every timestamp is epoch nanoseconds.
When a tracker tracks the stream the meta also has ``tracks`` (``[{"id", "box", "cls", "label",
"score", "team"}]``), ``ball`` (``{"box", "predicted", "trail"}`` or null), ``possession``
(``{"team", "player", "percent": {"A", "B"}}``), ``teams`` (team -> ``"#rrggbb"``) and
``tracker`` (the instance that tracked it).

- binary message: 4-byte big-endian length ``N``, ``N`` bytes of UTF-8 meta JSON, then the JPEG
  exactly as ingest encoded it (the gateway never decodes or re-encodes video);
- text message: always one JSON object; a frame meta has ``"seq"`` (sent instead of binary
  messages when the viewer asked for ``?frames=0``), an event has ``"event"``: ``hello``
  first, ``stats`` about once a second, ``state`` last.

docs/protocol.md is the reference for people writing other clients.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from gateway.stats import Stats
from pitchside.errors import SchemaError
from pitchside.schema import DetsMsg, TracksMsg

PROTOCOL_VERSION = 1
_HEADER = struct.Struct(">I")

# Close codes besides the standard ones (RFC 6455 leaves 4000-4999 to applications).
CLOSE_NORMAL = 1000  # the stream ended, failed, stopped or was deleted; see the state event
CLOSE_GOING_AWAY = 1001  # the gateway shuts down
CLOSE_INTERNAL = 1011  # the gateway lost Redis or hit a bug
CLOSE_BAD_REQUEST = 4400  # a query parameter is invalid
CLOSE_UNAUTHORIZED = 4401  # the gateway needs a token and none (or a wrong one) came
CLOSE_FORBIDDEN = 4403  # the page's origin may not open viewer WebSockets
CLOSE_UNKNOWN_STREAM = 4404  # no stream with this id

_REASON_MAX_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes


def frame_meta(
    sid: str, dets: DetsMsg, gateway_send_ns: int, tracks: TracksMsg | None = None
) -> dict[str, Any]:
    """The JSON part of a frame message, built from one bus DetsMsg, and the frame's
    TracksMsg when its stream is tracked (whose ``dets`` is then the one to pass)."""
    meta: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "sid": sid,
        "seq": dets.seq,
        "ts_capture": dets.ts_capture,
        "w": dets.w,
        "h": dets.h,
        "model": dets.model,
        "detections": dets.detections,
        "timings": {**dets.timings, "gateway_send": gateway_send_ns},
    }
    if tracks is not None:
        meta.update(
            tracks=tracks.tracks, ball=tracks.ball, possession=tracks.possession,
            teams=tracks.teams, tracker=tracks.tracker,
        )  # fmt: skip
    return meta


def encode_text(obj: dict[str, Any]) -> str:
    """A JSON text message (a frame meta or an event)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def encode_binary(meta_text: str, jpeg: bytes) -> bytes:
    """A binary frame message: length-prefixed meta JSON, then the JPEG bytes untouched."""
    meta = meta_text.encode()
    return b"".join((_HEADER.pack(len(meta)), meta, jpeg))


def decode_binary(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a binary frame message into its meta and its JPEG bytes.

    Raises:
        SchemaError: the message is shorter than its header says or its JSON is not an object.
    """
    if len(data) < _HEADER.size:
        raise SchemaError(f"frame message is {len(data)} bytes, shorter than its 4-byte header")
    (n,) = _HEADER.unpack_from(data)
    end = _HEADER.size + n
    if end > len(data):
        raise SchemaError(f"frame message announces {n} bytes of JSON but holds {len(data) - 4}")
    return _json_object(data[_HEADER.size : end]), data[end:]


def decode_text(data: str | bytes) -> dict[str, Any]:
    """Parse a text message: a frame meta (has ``seq``) or an event (has ``event``)."""
    return _json_object(data)


def _json_object(raw: str | bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SchemaError(f"message JSON is not readable: {exc}") from exc
    if not isinstance(obj, dict):
        raise SchemaError(f"message JSON is a {type(obj).__name__}, expected an object")
    return obj


def hello_event(sid: str, state: str, frames: bool) -> str:
    """First message after a viewer is subscribed: every frame analysed from now on follows."""
    return encode_text(
        {"event": "hello", "sid": sid, "state": state, "frames": frames, "v": PROTOCOL_VERSION}
    )


def state_event(sid: str, state: str, error: str | None) -> str:
    """Last message before the gateway closes a viewer because the stream is over."""
    return encode_text({"event": "state", "sid": sid, "state": state, "error": error})


def stats_event(sid: str, stats: Stats) -> str:
    """About once a second to each viewer: the stream's live figures over the last seconds.

    ``{"event": "stats", "sid": "cam1", "window_s": 2.0, "fps_in": 25.0, "fps_detected": 12.1,
    "fps_shown": 12.0, "latency_p50_ms": 132.4, "latency_p95_ms": 160.2,
    "drops_per_s": {"skipped": 12.9, "slow_client": 0.0, "frame_trimmed": 0.0}}``

    - ``window_s``: the sliding window the figures cover, in seconds (in a viewer's first
      seconds, the time since it joined);
    - ``fps_in``: frames ingest published per second (from the ``seq`` of the detections
      read, which ingest numbers without gaps: skipped frames count too);
    - ``fps_detected``: detections messages of the stream the gateway read per second;
    - ``fps_shown``: frame messages sent to this viewer per second;
    - ``latency_p50_ms``, ``latency_p95_ms``: capture to sent of this viewer's messages, the
      median and 95th percentile in ms; ``null`` when none was sent in the window;
    - ``drops_per_s``: frames lost per second by reason: ``skipped`` (ingested, never
      detected: the workers fell behind), ``slow_client`` (this viewer read too slowly),
      ``frame_trimmed`` (the JPEG was gone before the gateway read it; binary viewers only).

    With no detection in the window every rate is 0. Rates have one decimal, latencies 0.1 ms.
    """
    p50, p95 = stats.latency_p50_ms, stats.latency_p95_ms
    return encode_text(
        {
            "event": "stats",
            "sid": sid,
            "window_s": round(stats.window_s, 3),
            "fps_in": round(stats.fps_in, 1),
            "fps_detected": round(stats.fps_detected, 1),
            "fps_shown": round(stats.fps_shown, 1),
            "latency_p50_ms": None if p50 is None else round(p50, 1),
            "latency_p95_ms": None if p95 is None else round(p95, 1),
            "drops_per_s": {reason: round(n, 1) for reason, n in stats.drops_per_s.items()},
        }
    )


def close_reason(text: str) -> str:
    """``text`` cut to fit a WebSocket close frame (123 bytes of UTF-8)."""
    raw = text.encode()
    if len(raw) <= _REASON_MAX_BYTES:
        return text
    return raw[: _REASON_MAX_BYTES - 3].decode(errors="ignore") + "..."
