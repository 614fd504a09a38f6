"""The bus contract: keys, versions and codecs, round-tripped through a real Redis."""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis.asyncio import Redis

from pitchside import schema
from pitchside.errors import InvalidRequestError, SchemaError
from pitchside.schema import (
    SCHEMA_VERSION,
    Beat,
    Command,
    ControlMsg,
    ControlReply,
    DetsMsg,
    FrameMsg,
    Mode,
    StreamInfo,
    StreamState,
)

FRAME = FrameMsg(
    seq=7,
    pts_ns=280_000_000,
    ts_capture=1_700_000_000_000_000_000,
    ts_publish=1_700_000_000_004_000_000,
    w=848,
    h=478,
    img=b"\xff\xd8\xff\xe0 not really a jpeg \x00\x01\xff\xd9",
)
DETS = DetsMsg(
    seq=7,
    frame_id="1700000000000-0",
    ts_capture=FRAME.ts_capture,
    w=848,
    h=478,
    model="pitchside-football.onnx",
    detections=[{"box": [10.0, 20.5, 30.0, 80.0], "score": 0.91, "cls": 2, "label": "player"}],
    timings={"capture": 1, "publish": 2, "infer_end": 3},
    worker="worker-1",
    batch=3,
)
CONTROL = ControlMsg(
    cmd=Command.START,
    sid="match-1",
    request_id="abc123",
    source="rtsp://user:secret@cam/stream",
    mode=Mode.ANALYSE,
    loop=True,
)


async def through_redis(redis: Redis, fields: dict[str, Any]) -> dict[bytes, bytes]:
    """XADD then XRANGE: the fields as a reader gets them (bytes keys and values)."""
    await redis.xadd("pitchside:{test}:roundtrip", fields)
    entries = await redis.xrange("pitchside:{test}:roundtrip")
    return entries[-1][1]


@pytest.mark.parametrize("message", [FRAME, DETS, CONTROL], ids=["frame", "dets", "control"])
async def test_message_survives_a_round_trip_through_redis(redis: Redis, message: Any) -> None:
    # given a message written with XADD
    raw = await through_redis(redis, message.to_fields())
    # when it is read back from the stream
    decoded = type(message).from_fields(raw)
    # then it is equal to what was written, bytes and all
    assert decoded == message
    assert raw[b"v"] == str(SCHEMA_VERSION).encode()


async def test_control_msg_defaults_survive_a_round_trip(redis: Redis) -> None:
    stop = ControlMsg(cmd=Command.STOP, sid="s1", request_id="r1")
    assert ControlMsg.from_fields(await through_redis(redis, stop.to_fields())) == stop


async def test_publish_and_session_stop_survive_a_round_trip(redis: Redis) -> None:
    offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    publish = ControlMsg(Command.PUBLISH, "cam", "r2", sdp=offer, session="abcDEF-_0123456789")
    stop = ControlMsg(Command.STOP, "cam", "r3", session="abcDEF-_0123456789")
    for msg in (publish, stop):
        assert ControlMsg.from_fields(await through_redis(redis, msg.to_fields())) == msg


@pytest.mark.parametrize("message", [FRAME, DETS, CONTROL], ids=["frame", "dets", "control"])
async def test_message_of_another_version_is_refused(redis: Redis, message: Any) -> None:
    # given a message from a future schema version
    raw = await through_redis(redis, {**message.to_fields(), "v": SCHEMA_VERSION + 1})
    # then the reader refuses it, naming both versions
    with pytest.raises(SchemaError, match=f"v{SCHEMA_VERSION + 1}.*v{SCHEMA_VERSION}"):
        type(message).from_fields(raw)


@pytest.mark.parametrize("message", [FRAME, DETS, CONTROL], ids=["frame", "dets", "control"])
async def test_message_without_a_version_is_refused(redis: Redis, message: Any) -> None:
    fields = {k: v for k, v in message.to_fields().items() if k != "v"}
    raw = await through_redis(redis, fields)
    with pytest.raises(SchemaError, match="no schema version"):
        type(message).from_fields(raw)


MALFORMED: list[tuple[type, dict[str, Any]]] = [
    # message type, fields that replace or drop (None) some of a valid message's
    (FrameMsg, {"seq": None}),
    (FrameMsg, {"w": "wide"}),
    (FrameMsg, {"enc": "png"}),
    (FrameMsg, {"img": None}),
    (DetsMsg, {"dets": "[not json"}),
    (DetsMsg, {"timings": None}),
    (DetsMsg, {"h": "tall"}),
    (ControlMsg, {"cmd": "explode"}),
    (ControlMsg, {"mode": "fast-forward"}),
    (ControlMsg, {"sid": None}),
]
VALID = {FrameMsg: FRAME, DetsMsg: DETS, ControlMsg: CONTROL}


@pytest.mark.parametrize(("kind", "change"), MALFORMED, ids=lambda v: str(v))
async def test_malformed_message_raises_schema_error(
    redis: Redis, kind: type, change: dict[str, Any]
) -> None:
    # given a valid message with one field broken or missing
    fields = {**VALID[kind].to_fields(), **change}
    fields = {k: v for k, v in fields.items() if v is not None}
    raw = await through_redis(redis, fields)
    # then reading it raises SchemaError, not KeyError or ValueError
    with pytest.raises(SchemaError, match="malformed|not jpeg"):
        kind.from_fields(raw)


def test_stream_info_round_trips_through_json() -> None:
    info = StreamInfo(
        sid="match-1",
        source="rtsp://***:***@cam/x",
        mode=Mode.ANALYSE,
        state=StreamState.LIVE,
        loop=True,
        fps=25.0,
        width=848,
        height=478,
        frames=120,
    )
    again = StreamInfo.from_json(info.to_json().encode())
    assert again == info
    assert again.mode is Mode.ANALYSE
    assert again.state is StreamState.LIVE


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        json.dumps({"sid": "a"}),
        json.dumps({"sid": "a", "source": "x", "mode": "sideways", "state": "live"}),
        json.dumps({"sid": "a", "source": "x", "mode": "live", "state": "live", "extra": 1}),
    ],
)
def test_stream_info_from_bad_json_raises_schema_error(raw: str) -> None:
    with pytest.raises(SchemaError):
        StreamInfo.from_json(raw)


@pytest.mark.parametrize(
    "reply",
    [
        ControlReply(ok=True),
        ControlReply(ok=False, error="no such file: /x.mp4", status=422),
        ControlReply(ok=True, status=201, sdp="v=0\r\ns=-\r\n"),
        ControlReply(
            ok=False, error="stream x is already running", status=409, code="stream_exists"
        ),
    ],
)
def test_control_reply_round_trips_through_json(reply: ControlReply) -> None:
    assert ControlReply.from_json(reply.to_json().encode()) == reply


@pytest.mark.parametrize("raw", ["", "[1, 2]", json.dumps({"ok": True, "unknown": 1})])
def test_control_reply_from_bad_json_raises_schema_error(raw: str) -> None:
    with pytest.raises(SchemaError):
        ControlReply.from_json(raw)


@pytest.mark.parametrize(
    "beat",
    [
        Beat("worker", "worker-h-1", 1_700_000_000_000_000_000, "10.0.0.5:41234", "yolo.onnx"),
        Beat("ingest", "ingest-h-2", 1_700_000_000_000_000_000, "[::1]:9464"),
        Beat("gateway", "gateway-h-3", 1_700_000_000_000_000_000),
    ],
)
def test_beat_round_trips_through_json_with_its_version(beat: Beat) -> None:
    raw = beat.to_json()
    assert json.loads(raw)["v"] == SCHEMA_VERSION
    assert Beat.from_json(raw.encode()) == beat


@pytest.mark.parametrize(
    "raw",
    [
        "1700000000000000000",  # the bare timestamp ingest beat before beats were JSON
        json.dumps({"ts": 1, "model": "m.onnx"}),  # the old worker beat: no version
        json.dumps({"v": SCHEMA_VERSION + 1, "service": "worker", "name": "w", "ts": 1}),
        json.dumps({"v": SCHEMA_VERSION, "service": "worker", "name": "w", "ts": "soon"}),
        json.dumps({"v": SCHEMA_VERSION, "service": "worker", "name": "w", "ts": 1, "x": 1}),
    ],
)
def test_beat_that_is_not_one_of_this_version_raises_schema_error(raw: str) -> None:
    with pytest.raises(SchemaError):
        Beat.from_json(raw)


@pytest.mark.parametrize(
    ("key_of", "expected"),
    [
        (schema.frames_key, "pitchside:{match-1}:frames"),
        (schema.dets_key, "pitchside:{match-1}:dets"),
        (schema.tracks_key, "pitchside:{match-1}:tracks"),
    ],
)
def test_stream_keys_carry_the_stream_id_as_a_hash_tag(key_of: Any, expected: str) -> None:
    key = key_of("match-1")
    assert key == expected
    assert schema.sid_from_frames_key(schema.frames_key("match-1").encode()) == "match-1"


def test_stream_keys_of_one_stream_hash_to_one_slot() -> None:
    # given the keys of one stream: the part between braces is all Redis Cluster hashes
    keys = [f("s1") for f in (schema.frames_key, schema.dets_key, schema.tracks_key)]
    tags = {k[k.index("{") + 1 : k.index("}")] for k in keys}
    assert tags == {"s1"}


def test_global_keys_share_the_prefix() -> None:
    assert schema.STREAMS_KEY == "pitchside:streams"
    assert schema.CONTROL_KEY == "pitchside:control"
    assert schema.reply_key("r1") == "pitchside:reply:r1"
    assert schema.health_key("worker", "w1") == "pitchside:health:worker:w1"
    assert schema.health_pattern("worker") == "pitchside:health:worker:*"


@pytest.mark.parametrize(
    ("sid", "valid"),
    [
        ("match-1", True),
        ("a", True),
        ("0_cam", True),
        ("x" * 63, True),
        ("x" * 64, False),
        ("", False),
        ("-leading-dash", False),
        ("_leading", False),
        ("Upper", False),
        ("has space", False),
        ("brace{", False),
        ("slash/x", False),
        ("dot.x", False),
    ],
)
def test_validate_sid(sid: str, valid: bool) -> None:
    if valid:
        assert schema.validate_sid(sid) == sid
    else:
        with pytest.raises(InvalidRequestError, match="stream id"):
            schema.validate_sid(sid)


def test_stream_state_active_is_connecting_live_or_reconnecting() -> None:
    active = {s for s in StreamState if s.active}
    assert active == {StreamState.CONNECTING, StreamState.LIVE, StreamState.RECONNECTING}


def test_stream_state_reads_the_old_name_of_connecting() -> None:
    # an entry an older build wrote, before STARTING became CONNECTING, still reads
    assert StreamState("starting") is StreamState.CONNECTING
    with pytest.raises(ValueError):
        StreamState("warming")
