"""The bus contract: every Redis key, field and codec, and the schema version.

This module is the only place that spells a key or a field name. Stream-scoped keys carry the
stream id as a Redis Cluster hash tag (``pitchside:{sid}:frames``) so that each stream's keys
land on one slot. Every message carries ``v``; a reader refuses another version with a
:class:`~pitchside.errors.SchemaError` instead of misreading it. Timestamps are epoch
nanoseconds (``time.time_ns()``) from the clock of the host that stamped them.

Streams:
    ``pitchside:{sid}:frames``  ingest -> workers: one JPEG frame per entry (FrameMsg)
    ``pitchside:{sid}:dets``    workers -> gateway/tracker: detections of one frame (DetsMsg)
    ``pitchside:{sid}:tracks``  tracker -> gateway: one frame's detections and tracks (TracksMsg)
    ``pitchside:control``       gateway -> ingest: start/stop commands (ControlMsg)
Hashes:
    ``pitchside:streams``       sid -> StreamInfo JSON (the registry)
Lists:
    ``pitchside:reply:{id}``    ingest -> gateway: one ControlReply JSON, then expires
Strings:
    ``pitchside:health:{service}:{id}``  heartbeat of one service process (Beat JSON, TTL)
    ``pitchside:{sid}:tracker``          the lease of the tracker that owns a stream (its name, TTL)
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from redis.typing import EncodableT, FieldT

from pitchside.errors import InvalidRequestError, SchemaError

SCHEMA_VERSION = 1

#: A message's fields as XADD takes them (redis-py's own types, so no cast is needed).
Fields = dict[FieldT, EncodableT]
PREFIX = "pitchside"

STREAMS_KEY = f"{PREFIX}:streams"
CONTROL_KEY = f"{PREFIX}:control"
WORKERS_GROUP = "workers"  # the consumer group every worker joins on every frames stream
INGEST_GROUP = "ingest"  # the consumer group ingest services share on the control stream
REPLY_TTL_S = 60
#: The bus epoch: a random token, SET NX by the first service to look; a Redis that lost its
#: data (a restart without persistence) has a new one (see :mod:`pitchside.bus`).
BUS_EPOCH_KEY = f"{PREFIX}:bus"

# A stream id is a path segment, a Redis hash tag and a metric-free log field: keep it plain.
SID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def validate_sid(sid: str) -> str:
    """Return ``sid`` if it is a valid stream id, else raise InvalidRequestError."""
    if not SID_PATTERN.match(sid):
        shown = sid if len(sid) <= 64 else f"{sid[:64]}..."  # whatever length was sent
        raise InvalidRequestError(
            "stream id must be 1-63 characters of a-z, 0-9, '-' or '_', starting with a "
            f"letter or digit; got {shown!r}"
        )
    return sid


def frames_key(sid: str) -> str:
    return f"{PREFIX}:{{{sid}}}:frames"


def dets_key(sid: str) -> str:
    return f"{PREFIX}:{{{sid}}}:dets"


def tracks_key(sid: str) -> str:
    return f"{PREFIX}:{{{sid}}}:tracks"


def tracker_lease_key(sid: str) -> str:
    """Who tracks ``sid``: the owning tracker's instance name, SET NX with a TTL it renews."""
    return f"{PREFIX}:{{{sid}}}:tracker"


def reply_key(request_id: str) -> str:
    return f"{PREFIX}:reply:{request_id}"


def health_key(service: str, ident: str) -> str:
    """A service's heartbeat: SET with a TTL of HEALTH_TTL_S, renewed every third of it."""
    return f"{PREFIX}:health:{service}:{ident}"


def health_pattern(service: str) -> str:
    return f"{PREFIX}:health:{service}:*"


HEALTH_TTL_S = 6


def instance_from_health_key(key: str | bytes) -> str:
    """The ``{id}`` part of a health key: the service instance's name, e.g. ``worker-1``."""
    text = key.decode() if isinstance(key, bytes) else key
    return text.rsplit(":", 1)[1]


@dataclass(frozen=True, slots=True)
class Beat:
    """The value of every service's health key ``pitchside:health:{service}:{name}``: who
    beats, when, where its ``/metrics`` is served and, for a worker, the model it serves."""

    service: str  # ingest, worker, gateway
    name: str  # the instance name, the key's last part
    ts: int  # epoch ns of this beat
    metrics: str | None = None  # "host:port" serving /metrics; None: none announced
    model: str | None = None  # a worker's model: the file name, or name/version

    def to_json(self) -> str:
        return json.dumps({"v": SCHEMA_VERSION, **asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Beat:
        """Raises SchemaError for another version, or a value that is not a beat."""
        try:
            data = json.loads(raw)
            version = data.pop("v")
            beat = cls(**data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SchemaError(f"heartbeat is malformed: {exc}") from exc
        if version != SCHEMA_VERSION:
            raise SchemaError(f"heartbeat v{version}, this build reads v{SCHEMA_VERSION}")
        texts = (beat.service, beat.name, beat.metrics or "", beat.model or "")
        if not isinstance(beat.ts, int) or not all(isinstance(t, str) for t in texts):
            raise SchemaError(f"heartbeat has a field of the wrong type: {data}")
        return beat


def sid_from_frames_key(key: str | bytes) -> str:
    """Inverse of :func:`frames_key`."""
    text = key.decode() if isinstance(key, bytes) else key
    start, end = text.index("{") + 1, text.index("}")
    return text[start:end]


def now_ns() -> int:
    return time.time_ns()


#: A stream entry id ``"<ms>-<seq>"`` as numbers, which order like Redis orders the ids.
EntryOrder = tuple[int, int]


def entry_order(entry_id: bytes | str) -> EntryOrder:
    """``b"1700000000000-3"`` -> ``(1700000000000, 3)``: ids compare numerically, not as text."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


# --------------------------------------------------------------------------------------------
# Registry


class Mode(StrEnum):
    LIVE = "live"  # paced at the source's rate; workers skip to the newest frame when behind
    ANALYSE = "analyse"  # as fast as workers go; ingest waits on the group's lag, nothing skipped


class StreamState(StrEnum):
    CONNECTING = "connecting"  # accepted; its source is opening, no frame yet
    LIVE = "live"
    RECONNECTING = "reconnecting"  # a camera dropped out; see StreamInfo.error and .reconnects
    ENDED = "ended"  # the source ran out (a file without loop)
    STOPPED = "stopped"  # stopped by a DELETE or by shutdown
    FAILED = "failed"  # see StreamInfo.error

    @property
    def active(self) -> bool:
        return self in (StreamState.CONNECTING, StreamState.LIVE, StreamState.RECONNECTING)

    @classmethod
    def _missing_(cls, value: object) -> StreamState | None:
        # Registry entries written before CONNECTING had its name still read as it.
        return cls.CONNECTING if value == "starting" else None


@dataclass(slots=True)
class StreamInfo:
    """One entry of the registry hash: what a stream is and how it is doing."""

    sid: str
    source: str  # credentials redacted
    mode: Mode = Mode.LIVE
    state: StreamState = StreamState.CONNECTING
    loop: bool = False
    fps: float | None = None
    width: int | None = None  # of the published JPEGs
    height: int | None = None
    frames: int = 0  # frames published so far
    error: str | None = None  # why it failed, or the last drop-out while reconnecting
    reconnects: int = 0  # times its source was opened again after dropping out
    job: str | None = None  # the analysis job whose frames this stream carries
    # The ingest instance running it: its heartbeat (health_key("ingest", owner)) is the
    # stream's lease; an active stream whose owner has no heartbeat was lost with it.
    owner: str | None = None
    created_ns: int = field(default_factory=now_ns)
    updated_ns: int = field(default_factory=now_ns)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> StreamInfo:
        try:
            data = json.loads(raw)
            return cls(**{**data, "mode": Mode(data["mode"]), "state": StreamState(data["state"])})
        except (ValueError, TypeError, KeyError) as exc:
            raise SchemaError(f"registry entry is not a StreamInfo: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Messages


def _check_version(f: Mapping[bytes, bytes], what: str) -> None:
    try:
        version = int(f[b"v"])
    except (KeyError, ValueError) as exc:
        raise SchemaError(f"{what} message has no schema version") from exc
    if version != SCHEMA_VERSION:
        raise SchemaError(f"{what} message is v{version}, this build reads v{SCHEMA_VERSION}")


@dataclass(frozen=True, slots=True)
class FrameMsg:
    """One decoded frame, JPEG-encoded once by ingest (``pitchside:{sid}:frames``)."""

    seq: int  # 0, 1, 2 ... per stream start
    pts_ns: int  # media time of the frame from the container's timestamps
    ts_capture: int  # epoch ns when the frame was decoded (live: when it was due)
    ts_publish: int  # epoch ns just before XADD
    w: int
    h: int
    img: bytes  # JPEG

    def to_fields(self) -> Fields:
        return {
            "v": SCHEMA_VERSION,
            "seq": self.seq,
            "pts": self.pts_ns,
            "ts_capture": self.ts_capture,
            "ts_publish": self.ts_publish,
            "w": self.w,
            "h": self.h,
            "enc": b"jpeg",
            "img": self.img,
        }

    @classmethod
    def from_fields(cls, f: Mapping[bytes, bytes]) -> FrameMsg:
        _check_version(f, "frames")
        try:
            if f[b"enc"] != b"jpeg":
                raise SchemaError(f"frames message encoding {f[b'enc']!r} is not jpeg")
            return cls(
                seq=int(f[b"seq"]),
                pts_ns=int(f[b"pts"]),
                ts_capture=int(f[b"ts_capture"]),
                ts_publish=int(f[b"ts_publish"]),
                w=int(f[b"w"]),
                h=int(f[b"h"]),
                img=f[b"img"],
            )
        except (KeyError, ValueError) as exc:
            raise SchemaError(f"frames message is malformed: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class Detection:
    """One box in source pixels. Serialised exactly as the WebSocket protocol sends it."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    score: float
    cls: int
    label: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [round(v, 1) for v in self.box],
            "score": round(self.score, 4),
            "cls": self.cls,
            "label": self.label,
        }


@dataclass(frozen=True, slots=True)
class DetsMsg:
    """Detections of one frame (``pitchside:{sid}:dets``).

    ``timings`` holds epoch-ns stamps by stage name: ``capture``, ``publish`` (ingest),
    ``dequeue``, ``infer_start``, ``infer_end``, ``dets_publish`` (worker). Later stages add
    their own. ``frame_id`` is the frames-stream entry id, so a reader can fetch the JPEG.
    """

    seq: int
    frame_id: str
    ts_capture: int
    w: int
    h: int
    model: (
        str  # id of the model in service, e.g. "pitchside-football.onnx" or "football-detector/3"
    )
    detections: list[dict[str, Any]]  # Detection.to_dict() items
    timings: dict[str, int]
    worker: str = ""
    batch: int = 1  # frames in the inference batch this frame was part of

    def to_fields(self) -> Fields:
        return {
            "v": SCHEMA_VERSION,
            "seq": self.seq,
            "frame_id": self.frame_id,
            "ts_capture": self.ts_capture,
            "w": self.w,
            "h": self.h,
            "model": self.model,
            "worker": self.worker,
            "batch": self.batch,
            "dets": json.dumps(self.detections, separators=(",", ":")),
            "timings": json.dumps(self.timings, separators=(",", ":")),
        }

    @classmethod
    def from_fields(cls, f: Mapping[bytes, bytes]) -> DetsMsg:
        _check_version(f, "dets")
        try:
            return cls(
                seq=int(f[b"seq"]),
                frame_id=f[b"frame_id"].decode(),
                ts_capture=int(f[b"ts_capture"]),
                w=int(f[b"w"]),
                h=int(f[b"h"]),
                model=f[b"model"].decode(),
                worker=f.get(b"worker", b"").decode(),
                batch=int(f.get(b"batch", b"1")),
                detections=json.loads(f[b"dets"]),
                timings=json.loads(f[b"timings"]),
            )
        except (KeyError, ValueError) as exc:
            raise SchemaError(f"dets message is malformed: {exc!r}") from exc


#: Teams a player track can be in (``Track.team``); referees have none.
TEAMS = ("A", "B")


@dataclass(frozen=True, slots=True)
class Track:
    """One tracked object of a frame: a detection with the id it keeps through the stream.
    Serialised exactly as the WebSocket protocol sends it."""

    id: int
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in source pixels
    score: float
    cls: int
    label: str  # the track's class, voted over its recent detections
    team: str | None  # "A" or "B" for players and goalkeepers, once known

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "box": [round(v, 1) for v in self.box],
            "score": round(self.score, 4),
            "cls": self.cls,
            "label": self.label,
            "team": self.team,
        }


@dataclass(frozen=True, slots=True)
class TracksMsg:
    """One frame's tracks (``pitchside:{sid}:tracks``), written by the stream's tracker.

    ``dets`` is the frame's detections message as the worker wrote it, its ``timings`` with
    the tracker's stamps added (``track_start``, ``tracks_publish``). ``ball`` is at most one
    ball, ``{"box", "predicted", "trail"}`` (predicted: the detector missed it, this is where
    its path puts it; trail: its last centres, newest last), or None. ``possession`` is
    ``{"team", "player", "percent": {"A", "B"}}``: who has the ball now (None: nobody) and
    each team's share of the time since the stream started. ``teams`` maps each team to its
    shirt colour (``"#rrggbb"``) once known.
    """

    dets: DetsMsg
    tracks: list[dict[str, Any]]  # Track.to_dict() items
    ball: dict[str, Any] | None
    possession: dict[str, Any] | None
    teams: dict[str, str]
    tracker: str = ""  # the instance that wrote it

    def to_fields(self) -> Fields:
        return {
            **self.dets.to_fields(),
            "tracks": _compact(self.tracks),
            "ball": _compact(self.ball),
            "possession": _compact(self.possession),
            "teams": _compact(self.teams),
            "tracker": self.tracker,
        }

    @classmethod
    def from_fields(cls, f: Mapping[bytes, bytes]) -> TracksMsg:
        dets = DetsMsg.from_fields(f)
        try:
            return cls(
                dets=dets,
                tracks=json.loads(f[b"tracks"]),
                ball=json.loads(f[b"ball"]),
                possession=json.loads(f[b"possession"]),
                teams=json.loads(f[b"teams"]),
                tracker=f.get(b"tracker", b"").decode(),
            )
        except (KeyError, ValueError) as exc:
            raise SchemaError(f"tracks message is malformed: {exc!r}") from exc


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


class Command(StrEnum):
    START = "start"
    STOP = "stop"
    PUBLISH = "publish"  # a WHIP offer: ingest answers it and runs the peer's video as a stream


@dataclass(frozen=True, slots=True)
class ControlMsg:
    """A command to ingest (``pitchside:control``). Ingest answers on ``reply_key(request_id)``."""

    cmd: Command
    sid: str
    request_id: str
    source: str = ""  # path or URL, unredacted: the control stream is internal
    mode: Mode = Mode.LIVE
    loop: bool = False
    transport: str = ""  # RTSP: "tcp" or "udp"; "" for ingest's default
    sdp: str = ""  # PUBLISH: the publisher's SDP offer
    session: str = ""  # PUBLISH: the new WHIP session's id; STOP: stop only that session
    job: str = ""  # START: the analysis job the stream's frames belong to

    def to_fields(self) -> Fields:
        return {
            "v": SCHEMA_VERSION,
            "cmd": self.cmd.value,
            "sid": self.sid,
            "request_id": self.request_id,
            "source": self.source,
            "mode": self.mode.value,
            "loop": int(self.loop),
            "transport": self.transport,
            "sdp": self.sdp,
            "session": self.session,
            "job": self.job,
        }

    @classmethod
    def from_fields(cls, f: Mapping[bytes, bytes]) -> ControlMsg:
        _check_version(f, "control")
        try:
            return cls(
                cmd=Command(f[b"cmd"].decode()),
                sid=f[b"sid"].decode(),
                request_id=f[b"request_id"].decode(),
                source=f.get(b"source", b"").decode(),
                mode=Mode(f.get(b"mode", b"live").decode()),
                loop=f.get(b"loop", b"0") == b"1",
                transport=f.get(b"transport", b"").decode(),
                sdp=f.get(b"sdp", b"").decode(),
                session=f.get(b"session", b"").decode(),
                job=f.get(b"job", b"").decode(),
            )
        except (KeyError, ValueError) as exc:
            raise SchemaError(f"control message is malformed: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class ControlReply:
    """Ingest's answer to one ControlMsg: ok, or the error a user should see."""

    ok: bool
    error: str | None = None
    status: int = 200  # the HTTP status the gateway should answer with
    code: str | None = None  # the error code it should answer with (PitchsideError.code)
    sdp: str | None = None  # PUBLISH: ingest's SDP answer

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> ControlReply:
        try:
            return cls(**json.loads(raw))
        except (ValueError, TypeError) as exc:
            raise SchemaError(f"control reply is malformed: {exc}") from exc
