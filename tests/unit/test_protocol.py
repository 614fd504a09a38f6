"""The viewer WebSocket message format: encode, then decode as a client would."""

from __future__ import annotations

import json
import struct

import pytest

from gateway import protocol
from gateway.stats import Stats
from pitchside.errors import SchemaError
from pitchside.schema import DetsMsg

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"


def _dets(**changes: object) -> DetsMsg:
    base: dict[str, object] = {
        "seq": 7,
        "frame_id": "1700000000000-0",
        "ts_capture": 1_700_000_000_123_456_789,
        "w": 848,
        "h": 478,
        "model": "pitchside-football.onnx",
        "detections": [
            {"box": [10.5, 20.0, 30.0, 60.5], "score": 0.9132, "cls": 2, "label": "player"},
            {"box": [400.0, 200.0, 404.0, 204.0], "score": 0.41, "cls": 0, "label": "ball"},
        ],
        "timings": {"capture": 1_700_000_000_123_456_789, "infer_end": 1_700_000_000_200_000_000},
    }
    base.update(changes)
    return DetsMsg(**base)  # type: ignore[arg-type]


def test_frame_meta_carries_dets_fields_and_adds_gateway_send() -> None:
    # given a dets message from a worker
    dets = _dets()
    # when the gateway builds the meta
    meta = protocol.frame_meta("cam1", dets, gateway_send_ns=1_700_000_000_300_000_000)
    # then every field a client needs is there, and the worker's timings are kept
    assert meta["sid"] == "cam1"
    assert (meta["seq"], meta["w"], meta["h"]) == (7, 848, 478)
    assert meta["ts_capture"] == dets.ts_capture
    assert meta["model"] == "pitchside-football.onnx"
    assert meta["detections"] == dets.detections
    assert meta["timings"] == {**dets.timings, "gateway_send": 1_700_000_000_300_000_000}
    assert "gateway_send" not in dets.timings, "the bus message must not be mutated"


def test_binary_message_round_trips_meta_and_the_exact_jpeg_bytes() -> None:
    # given a meta JSON and JPEG bytes
    meta = protocol.frame_meta("cam1", _dets(), gateway_send_ns=1)
    text = protocol.encode_text(meta)
    # when encoded as a binary message and decoded
    data = protocol.encode_binary(text, JPEG)
    decoded, jpeg = protocol.decode_binary(data)
    # then the layout is: 4-byte big-endian length, the JSON, the JPEG untouched
    (n,) = struct.unpack(">I", data[:4])
    assert json.loads(data[4 : 4 + n].decode("utf-8")) == meta
    assert data[4 + n :] == JPEG
    assert decoded == meta
    assert jpeg == JPEG


def test_binary_message_keeps_non_ascii_labels_as_utf8() -> None:
    # given a label outside ASCII (custom models may have any label)
    det = {"box": [0.0, 0.0, 1.0, 1.0], "score": 0.5, "cls": 9, "label": "arbitre-é"}
    text = protocol.encode_text(protocol.frame_meta("s", _dets(detections=[det]), 1))
    # when round-tripped
    meta, _ = protocol.decode_binary(protocol.encode_binary(text, b""))
    # then the length prefix counts bytes, not characters
    assert meta["detections"][0]["label"] == "arbitre-é"


def test_text_messages_tell_frames_from_events() -> None:
    # given a frame meta and the events
    frame = protocol.decode_text(protocol.encode_text(protocol.frame_meta("s", _dets(), 1)))
    state = protocol.decode_text(protocol.state_event("s", "failed", "camera unreachable"))
    hello = protocol.decode_text(protocol.hello_event("s", "live", frames=False))
    # then a frame has "seq" and no "event"; an event has "event"
    assert "seq" in frame and "event" not in frame
    assert state == {"event": "state", "sid": "s", "state": "failed", "error": "camera unreachable"}
    assert hello["event"] == "hello" and hello["frames"] is False and "seq" not in hello


def test_stats_event_round_trips_with_rounded_figures() -> None:
    # given a viewer's figures
    stats = Stats(
        window_s=2.0, fps_in=25.0, fps_detected=12.125, fps_shown=11.96,
        latency_p50_ms=132.44, latency_p95_ms=160.26,
        drops_per_s={"skipped": 12.875, "slow_client": 0.0, "frame_trimmed": 0.5},
    )  # fmt: skip
    # when sent as a text message and read as a client reads it
    event = protocol.decode_text(protocol.stats_event("cam1", stats))
    # then it is an event (no "seq"), every figure to one decimal
    assert event == {
        "event": "stats", "sid": "cam1", "window_s": 2.0,
        "fps_in": 25.0, "fps_detected": 12.1, "fps_shown": 12.0,
        "latency_p50_ms": 132.4, "latency_p95_ms": 160.3,
        "drops_per_s": {"skipped": 12.9, "slow_client": 0.0, "frame_trimmed": 0.5},
    }  # fmt: skip
    assert "seq" not in event


def test_stats_event_has_null_latency_when_nothing_was_sent() -> None:
    stats = Stats(2.0, 0.0, 0.0, 0.0, None, None, {"skipped": 0.0, "slow_client": 0.0})
    event = protocol.decode_text(protocol.stats_event("cam1", stats))
    assert event["latency_p50_ms"] is None and event["latency_p95_ms"] is None
    assert (event["fps_in"], event["fps_detected"], event["fps_shown"]) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00", "shorter than its 4-byte header"),
        (struct.pack(">I", 100) + b"{}", "announces 100 bytes"),
        (struct.pack(">I", 2) + b"[]", "expected an object"),
        (struct.pack(">I", 3) + b"{x}", "not readable"),
        (struct.pack(">I", 2) + b"\xff\xfe", "not readable"),
    ],
)
def test_decode_binary_raises_schema_error_when_message_is_malformed(
    data: bytes, message: str
) -> None:
    with pytest.raises(SchemaError, match=message):
        protocol.decode_binary(data)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("stream ended", "stream ended"),
        ("x" * 123, "x" * 123),
        ("x" * 200, "x" * 120 + "..."),
        ("é" * 100, "é" * 60 + "..."),
    ],
)
def test_close_reason_fits_a_close_frame_when_text_is_long(reason: str, expected: str) -> None:
    cut = protocol.close_reason(reason)
    assert cut == expected
    assert len(cut.encode()) <= 123
