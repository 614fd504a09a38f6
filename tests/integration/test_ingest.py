"""The ingest service against a real redis-server and real video files.

The service runs as an asyncio task; tests talk to it only as the gateway does: commands on the
control stream, answers on reply keys, state in the registry, frames on the frames stream.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import av
import cv2
import numpy as np
import pytest
from redis.asyncio import Redis

from ingest.runner import PreparedFrame, StreamRunner
from ingest.service import METRICS_SWEEP_S, serve
from ingest.sources import DecodedFrame, SourceInfo, parse, probe
from ingest.sources.file import decode_file, local_path
from pitchside import registry
from pitchside.errors import NoFramesError, SourceError, StreamNotFoundError
from pitchside.schema import (
    CONTROL_KEY,
    INGEST_GROUP,
    WORKERS_GROUP,
    Beat,
    Command,
    ControlMsg,
    ControlReply,
    FrameMsg,
    Mode,
    StreamInfo,
    StreamState,
    frames_key,
    health_key,
    reply_key,
)
from pitchside.settings import Settings
from tests.conftest import CLIP, require_asset
from tests.integration.scrape import scrape, streams, value

T = TypeVar("T")

MS = 1_000_000
CLIP_FRAMES = 169
CLIP_SIZE = (848, 478)
TERMINAL = (StreamState.ENDED, StreamState.FAILED, StreamState.STOPPED)
REPLY_TIMEOUT_S = 15
SERVICE_NAME = "ingest-test"
# Irregular timestamps (ms) for the variable-frame-rate file: a 500 ms held frame, 20 ms steps.
VFR_PTS_MS = [0, 40, 80, 120, 620, 660, 680, 700, 720, 1000, 1040, 1080]


async def wait_until(
    probe_fn: Callable[[], Awaitable[T]], timeout_s: float, what: str, every_s: float = 0.02
) -> T:
    """Poll ``probe_fn`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe_fn()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(every_s)


@dataclass
class Ingest:
    """A running ingest service and a client that speaks to it like the gateway."""

    redis: Redis
    stop: asyncio.Event
    task: asyncio.Task[None]
    replies: list[ControlReply] = field(default_factory=list)

    async def send(self, msg: ControlMsg) -> ControlReply:
        await self.redis.xadd(CONTROL_KEY, msg.to_fields())
        popped = await self.redis.blpop([reply_key(msg.request_id)], timeout=REPLY_TIMEOUT_S)
        assert popped is not None, f"ingest did not answer {msg.cmd.value} {msg.sid}"
        return ControlReply.from_json(popped[1])

    async def start(
        self, sid: str, source: str | Path, mode: Mode = Mode.LIVE, loop: bool = False
    ) -> ControlReply:
        return await self.send(
            ControlMsg(Command.START, sid, uuid.uuid4().hex, str(source), mode, loop)
        )

    async def stop_stream(self, sid: str) -> ControlReply:
        return await self.send(ControlMsg(Command.STOP, sid, uuid.uuid4().hex))

    async def info(self, sid: str) -> StreamInfo:
        return await registry.get(self.redis, sid)

    async def wait_state(self, sid: str, *states: StreamState, timeout_s: float = 20) -> StreamInfo:
        async def reached() -> StreamInfo | None:
            info = await self.info(sid)
            return info if info.state in states else None

        return await wait_until(reached, timeout_s, f"stream {sid} to be {states}")

    async def frames(self, sid: str) -> list[FrameMsg]:
        return [FrameMsg.from_fields(f) for _id, f in await self.redis.xrange(frames_key(sid))]

    async def wait_frames(self, sid: str, count: int, timeout_s: float = 20) -> int:
        async def enough() -> int:
            return n if (n := await self.redis.xlen(frames_key(sid))) >= count else 0

        return await wait_until(enough, timeout_s, f"{count} frames on {sid}")

    async def shutdown(self, timeout_s: float = 20) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout_s)


IngestFactory = Callable[..., Awaitable[Ingest]]


@pytest.fixture(name="make_ingest")  # another name, so that other modules can import it
async def make_ingest_fixture(redis: Redis, settings: Settings) -> AsyncIterator[IngestFactory]:
    """``await make_ingest(**settings_changes)`` starts a service; teardown stops it."""
    started: list[Ingest] = []

    async def create(**changes: object) -> Ingest:
        stop = asyncio.Event()
        task = asyncio.create_task(serve(settings.replace(**changes), stop, name=SERVICE_NAME))
        ingest = Ingest(redis, stop, task)
        started.append(ingest)

        async def ready() -> bool:
            if task.done():
                task.result()  # raise what killed it
                pytest.fail("ingest service returned before it was ready")
            return bool(await redis.exists(health_key("ingest", SERVICE_NAME)))

        await wait_until(ready, 10, "the ingest heartbeat")  # its control group exists now
        return ingest

    yield create
    for ingest in started:
        if not ingest.task.done():
            await ingest.shutdown()


def decode_jpeg(img: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(img, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "frame is not a decodable JPEG"
    return image


def write_vfr_video(path: Path, pts_ms: list[int], size: tuple[int, int] = (160, 120)) -> Path:
    """An H.264 MP4 whose frames carry the given irregular timestamps (ms)."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for i, pts in enumerate(pts_ms):
            frame = av.VideoFrame.from_ndarray(
                np.full((height, width, 3), (i * 20) % 256, np.uint8), format="bgr24"
            )
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# --------------------------------------------------------------------------------------------
# Source level: probe and decode


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("ftp://user:secret@127.0.0.1/live.mp4", "ftp sources are not supported"),
        ("file://secret.example/x.mp4", "file URLs must name a local path"),
        ("   ", "source is empty"),
    ],
)
def test_parse_refuses_unknown_schemes_with_422_without_repeating_them(
    source: str, message: str
) -> None:
    with pytest.raises(SourceError, match=message) as caught:
        parse(source)
    assert caught.value.status == 422 and not caught.value.retryable
    assert "secret" not in str(caught.value).replace("secret.example", "")
    assert "user:" not in str(caught.value)


@pytest.mark.parametrize(
    ("source", "kind", "realtime"),
    [
        ("/videos/a.mp4", "file", False),
        ("file:///videos/a%20b.mp4", "file", False),
        ("rtsp://cam.local/live", "rtsp", True),
        ("RTSPS://cam.local/live", "rtsp", True),
        ("https://example.test/match.m3u8", "http", False),
        ("/dev/video0", "device", True),
    ],
)
def test_parse_maps_each_scheme_to_its_kind(source: str, kind: str, realtime: bool) -> None:
    spec = parse(source)
    assert (spec.kind.name, spec.kind.realtime) == (kind, realtime)
    assert spec.target == source


def test_parse_keeps_the_url_for_opening_and_shows_it_redacted() -> None:
    spec = parse("rtsp://admin:hunter2@127.0.0.1:8554/live", transport="udp", timeout_s=2.0)
    assert spec.target == "rtsp://admin:hunter2@127.0.0.1:8554/live"
    assert spec.shown == "rtsp://***:***@127.0.0.1:8554/live"
    assert (spec.transport, spec.timeout_s) == ("udp", 2.0)


def test_local_path_of_file_urls_and_paths(tmp_path: Path) -> None:
    assert local_path(f"file://{tmp_path}/a%20b.mp4") == tmp_path / "a b.mp4"
    assert local_path(str(tmp_path / "x.mp4")) == tmp_path / "x.mp4"


def test_probe_reports_size_rate_and_codec_of_the_clip() -> None:
    info = probe(parse(str(require_asset(CLIP))))
    assert (info.width, info.height, info.codec) == (*CLIP_SIZE, "h264")
    assert info.fps == pytest.approx(25.02, abs=0.01)
    assert info.duration_s == pytest.approx(6.75, abs=0.05)


def test_probe_names_the_problem_when_source_is_not_a_video(tmp_path: Path) -> None:
    text = tmp_path / "clip.mp4"
    text.write_text("this is not a video\n")
    cases = [
        (tmp_path / "missing.mp4", "no such file: "),
        (tmp_path, "not a video: .* \\(it is a directory\\)"),
        (text, "not a video: clip.mp4 \\("),
    ]
    for path, message in cases:
        with pytest.raises(SourceError, match=message):
            probe(parse(str(path)))


def test_decode_frames_uses_container_timestamps_when_frame_rate_is_variable(
    tmp_path: Path,
) -> None:
    path = write_vfr_video(tmp_path / "vfr.mp4", VFR_PTS_MS)
    frames = list(decode_file(path, loop=False, stop=threading.Event()))
    assert [f.pts_ns for f in frames] == [p * MS for p in VFR_PTS_MS]
    assert frames[0].bgr.shape == (120, 160, 3)


def test_decode_frames_keeps_timestamps_increasing_when_looping(tmp_path: Path) -> None:
    # given a short file decoded with loop=True
    path = write_vfr_video(tmp_path / "short.mp4", [0, 40, 80])
    stop = threading.Event()
    pts = []
    for frame in decode_file(path, loop=True, stop=stop):
        pts.append(frame.pts_ns)
        if len(pts) == 7:
            stop.set()
    # then the second pass starts one frame after the first ended, and so on
    assert pts == [0, 40 * MS, 80 * MS, 120 * MS, 160 * MS, 200 * MS, 240 * MS]


# --------------------------------------------------------------------------------------------
# Service: the control plane, states and frames


@pytest.mark.slow
async def test_live_clip_publishes_every_frame_paced_and_ends(make_ingest: IngestFactory) -> None:
    # given an ingest that keeps every frame of this short clip in the stream
    ingest = await make_ingest(frames_maxlen=400)
    # when the clip is started in live mode
    started = time.monotonic()
    reply = await ingest.start("clip", require_asset(CLIP))
    assert (reply.ok, reply.status) == (True, 201), reply
    states = [(await ingest.info("clip")).state]
    while states[-1] not in TERMINAL:
        assert time.monotonic() - started < 30, f"stream never ended: {states}"
        await asyncio.sleep(0.02)
        state = (await ingest.info("clip")).state
        if state != states[-1]:
            states.append(state)
    elapsed = time.monotonic() - started
    # then it went CONNECTING -> LIVE -> ENDED, paced at the clip's own rate
    assert states == [StreamState.CONNECTING, StreamState.LIVE, StreamState.ENDED]
    assert elapsed >= 6.0, f"169 frames at 25 fps must take ~6.7 s, took {elapsed:.2f} s"
    frames = await ingest.frames("clip")
    assert [f.seq for f in frames] == list(range(CLIP_FRAMES))
    for f in frames:
        assert (f.w, f.h) == CLIP_SIZE
        assert decode_jpeg(f.img).shape == (CLIP_SIZE[1], CLIP_SIZE[0], 3)
        assert f.ts_capture <= f.ts_publish
    for f in frames[1:]:
        since_first_ns = f.ts_publish - frames[0].ts_publish
        assert since_first_ns >= f.pts_ns - frames[0].pts_ns - 5 * MS, f"frame {f.seq} too early"
    info = await ingest.info("clip")
    assert (info.frames, info.width, info.height) == (CLIP_FRAMES, *CLIP_SIZE)
    assert info.fps == pytest.approx(25.02, abs=0.01)
    assert info.error is None


async def test_max_width_downscales_published_jpegs(make_ingest: IngestFactory) -> None:
    ingest = await make_ingest(max_width=424)
    assert (await ingest.start("small", require_asset(CLIP))).ok
    await ingest.wait_frames("small", 3)
    info = await ingest.wait_state("small", StreamState.LIVE)
    for f in await ingest.frames("small"):
        assert (f.w, f.h) == (424, 239)
        assert decode_jpeg(f.img).shape == (239, 424, 3)
    assert (info.width, info.height) == (424, 239)
    assert (await ingest.stop_stream("small")).status == 200
    assert (await ingest.info("small")).state is StreamState.STOPPED


async def test_loop_publishes_past_the_end_with_increasing_pts_until_stopped(
    make_ingest: IngestFactory,
) -> None:
    # given a looping stream in analyse mode (fast) with room for 250 frames in the backlog
    ingest = await make_ingest(analyse_max_lag=250)
    assert (await ingest.start("loop", require_asset(CLIP), Mode.ANALYSE, loop=True)).ok
    # when it has gone well past the clip's last frame and is stopped
    await ingest.wait_frames("loop", 200, timeout_s=60)
    reply = await ingest.stop_stream("loop")
    # then the stop is acknowledged, the state is STOPPED and seq and pts never went back
    assert (reply.ok, reply.status) == (True, 200), reply
    assert (await ingest.info("loop")).state is StreamState.STOPPED
    frames = await ingest.frames("loop")
    assert [f.seq for f in frames] == list(range(len(frames)))
    steps = [b.pts_ns - a.pts_ns for a, b in zip(frames, frames[1:], strict=False)]
    assert all(0 < s <= 100 * MS for s in steps), "pts must keep increasing by about a frame"
    # the second pass starts when the first ended: the last pts plus the last frame's duration
    # (the container says 1000/30000 s for the clip's last frame)
    wrap_ns = frames[CLIP_FRAMES].pts_ns - frames[CLIP_FRAMES - 1].pts_ns
    assert 20 * MS <= wrap_ns <= 60 * MS, f"the loop jumped {wrap_ns / MS:.1f} ms"
    count = len(frames)
    assert (await ingest.info("loop")).frames == count, "the final count is what was published"
    # and while another stream then publishes 20 frames, the stopped one publishes none
    assert (await ingest.start("probe", require_asset(CLIP), Mode.ANALYSE)).ok
    await ingest.wait_frames("probe", 20)
    assert await ingest.redis.xlen(frames_key("loop")) == count, "published after STOP"


async def test_bad_sources_get_422_and_failed_while_another_stream_runs(
    make_ingest: IngestFactory, tmp_path: Path
) -> None:
    # given a stream that is running
    ingest = await make_ingest()
    assert (await ingest.start("good", require_asset(CLIP), loop=True)).ok
    await ingest.wait_state("good", StreamState.LIVE)
    before = (await ingest.frames("good"))[-1].seq
    text = tmp_path / "clip.mp4"
    text.write_text("not a video")
    cases = [
        ("missing", tmp_path / "missing.mp4", "no video 'missing.mp4' in the media folder"),
        ("text", text, "not a video: clip.mp4"),
        ("folder", tmp_path, f"no video {tmp_path.name!r} in the media folder"),
        ("ftp", "ftp://admin:hunter2@127.0.0.1/live", "ftp sources are not supported"),
    ]
    for sid, source, message in cases:
        # when a bad source is started
        reply = await ingest.start(sid, source)
        # then it is refused with 422 and a clear message, and recorded as FAILED
        assert (reply.ok, reply.status) == (False, 422), reply
        assert reply.error is not None and message in reply.error, reply.error
        info = await ingest.info(sid)
        assert info.state is StreamState.FAILED and info.error == reply.error
        assert "hunter2" not in info.source and "hunter2" not in reply.error
    # and the running stream was not disturbed
    await ingest.wait_frames("good", 1)

    async def advanced() -> bool:
        return (await ingest.frames("good"))[-1].seq > before + 10

    await wait_until(advanced, 10, "the good stream to keep publishing")
    assert (await ingest.info("good")).state is StreamState.LIVE
    assert (await ingest.stop_stream("good")).status == 200


async def test_stop_of_unknown_stream_gets_404(make_ingest: IngestFactory) -> None:
    ingest = await make_ingest()
    reply = await ingest.stop_stream("nobody")
    assert (reply.ok, reply.status) == (False, 404), reply
    with pytest.raises(StreamNotFoundError):
        await ingest.info("nobody")


async def test_start_of_an_active_stream_id_gets_409(make_ingest: IngestFactory) -> None:
    ingest = await make_ingest()
    assert (await ingest.start("dup", require_asset(CLIP))).status == 201
    reply = await ingest.start("dup", require_asset(CLIP))
    assert (reply.ok, reply.status) == (False, 409), reply
    assert (await ingest.stop_stream("dup")).status == 200
    # a stopped id can be used again, and starts from a clean frames stream
    assert (await ingest.start("dup", require_asset(CLIP))).status == 201
    await ingest.wait_frames("dup", 1)
    assert (await ingest.frames("dup"))[0].seq == 0
    assert (await ingest.stop_stream("dup")).status == 200


async def test_malformed_control_entry_gets_400_and_is_acknowledged(
    make_ingest: IngestFactory,
) -> None:
    ingest = await make_ingest()
    await ingest.redis.xadd(CONTROL_KEY, {"v": 1, "cmd": "explode", "sid": "x", "request_id": "r1"})
    popped = await ingest.redis.blpop([reply_key("r1")], timeout=REPLY_TIMEOUT_S)
    assert popped is not None
    reply = ControlReply.from_json(popped[1])
    assert (reply.ok, reply.status) == (False, 400), reply
    await ingest.redis.xadd(CONTROL_KEY, {"garbage": "no version, no request id"})

    async def all_acked() -> bool:
        summary = await ingest.redis.xpending(CONTROL_KEY, INGEST_GROUP)
        groups = await ingest.redis.xinfo_groups(CONTROL_KEY)
        return summary["pending"] == 0 and groups[0]["last-delivered-id"] != b"0-0"

    await wait_until(all_acked, 10, "both entries acknowledged")
    assert (await ingest.stop_stream("nobody")).status == 404, "service must still answer"


@pytest.mark.slow
async def test_analyse_mode_waits_on_backlog_and_delivers_every_frame(
    make_ingest: IngestFactory,
) -> None:
    # given analyse mode with a backlog limit of 8 and a consumer slower than ingest
    limit = 8
    ingest = await make_ingest(analyse_max_lag=limit, frames_maxlen=10)
    redis, key = ingest.redis, frames_key("job")
    assert (await ingest.start("job", require_asset(CLIP), Mode.ANALYSE)).status == 201
    await ingest.wait_frames("job", 1)
    seqs: list[int] = []
    worst = 0

    async def backlog() -> int:
        group = (await redis.xinfo_groups(key))[0]
        undelivered = await redis.xrange(key, min=b"(" + group["last-delivered-id"], max="+")
        return int(group["pending"]) + len(undelivered)

    # when the consumer reads one frame at a time, slowly, and acknowledges it
    deadline = time.monotonic() + 60
    while len(seqs) < CLIP_FRAMES and time.monotonic() < deadline:
        worst = max(worst, await backlog())
        got = await redis.xreadgroup(WORKERS_GROUP, "slow", {key: ">"}, count=1, block=1000)
        for _key, entries in got or []:
            for entry_id, fields in entries:
                seqs.append(FrameMsg.from_fields(fields).seq)
                worst = max(worst, await backlog())
                await asyncio.sleep(0.01)
                await redis.xack(key, WORKERS_GROUP, entry_id)
    # then every frame arrived exactly once, in order, and the backlog never passed the limit
    assert seqs == list(range(CLIP_FRAMES)), f"missing or repeated frames: {len(seqs)} read"
    assert worst <= limit, f"backlog reached {worst}, limit {limit}"
    assert worst >= limit // 2, f"backlog only reached {worst}: backpressure not exercised"
    info = await ingest.wait_state("job", StreamState.ENDED)
    assert info.frames == CLIP_FRAMES


async def test_variable_frame_rate_file_is_paced_by_its_timestamps(
    make_ingest: IngestFactory, tmp_path: Path
) -> None:
    # given a file whose frames are 20 ms to 500 ms apart
    path = write_vfr_video(tmp_path / "vfr.mp4", VFR_PTS_MS)
    ingest = await make_ingest()
    # when it plays live
    assert (await ingest.start("vfr", path)).status == 201
    await ingest.wait_state("vfr", StreamState.ENDED)
    frames = await ingest.frames("vfr")
    # then each frame went out no earlier than its timestamp says (a constant-rate pacer
    # would publish frame 4 at 160 ms instead of 620 ms)
    assert [f.pts_ns for f in frames] == [p * MS for p in VFR_PTS_MS]
    for f in frames[1:]:
        since_first_ns = f.ts_publish - frames[0].ts_publish
        assert since_first_ns >= f.pts_ns - 5 * MS, f"frame {f.seq} published too early"
    gap_ns = frames[4].ts_publish - frames[3].ts_publish
    assert gap_ns < 3_000 * MS, f"the 500 ms gap took {gap_ns / MS:.0f} ms"


async def test_watchdog_fails_stream_when_source_stalls(redis: Redis, settings: Settings) -> None:
    # given a runner whose frames stop coming after the third (its encode stage stalls until
    # the watchdog has fired, so that closing the source never races the stalled thread)
    fired = threading.Event()

    class StallingRunner(StreamRunner):
        def _prepare(self, frame: DecodedFrame) -> PreparedFrame:
            if frame.pts_ns >= 120 * MS:
                assert fired.wait(20), "the watchdog never fired"
            return super()._prepare(frame)

        async def _next(self, *args: Any) -> Any:
            try:
                return await super()._next(*args)
            except NoFramesError:
                fired.set()
                raise

    info = StreamInfo(sid="stall", source=str(CLIP), mode=Mode.ANALYSE)
    runner = StallingRunner(
        redis, settings.replace(analyse_max_lag=100), info, parse(str(require_asset(CLIP))),
        SourceInfo(848, 478, 25.0, 6.75, "h264"), watchdog_s=0.5,
    )  # fmt: skip
    # when it runs
    state = await asyncio.wait_for(runner.run(), 20)
    # then the watchdog fails it with the reason, after the frames that did come
    stored = await registry.get(redis, "stall")
    assert state is StreamState.FAILED and stored.state is StreamState.FAILED
    assert stored.error is not None and "no frame from the source for 0.5 s" in stored.error
    assert stored.frames == 3
    assert not [t for t in threading.enumerate() if t.name.startswith("ingest-decode-stall")]


async def test_service_stop_stops_every_stream_and_leaves_no_thread(
    make_ingest: IngestFactory, redis: Redis
) -> None:
    # given two running streams, one of them waiting for room in analyse mode
    before = set(threading.enumerate())
    ingest = await make_ingest(analyse_max_lag=4)
    assert (await ingest.start("a", require_asset(CLIP), loop=True)).ok
    assert (await ingest.start("b", require_asset(CLIP), Mode.ANALYSE)).ok
    await ingest.wait_state("a", StreamState.LIVE)
    await ingest.wait_frames("b", 4)
    # when the service is stopped
    await ingest.shutdown()
    # then every stream is STOPPED, the heartbeat is gone and no thread is left
    for sid in ("a", "b"):
        assert (await ingest.info(sid)).state is StreamState.STOPPED
    assert not await redis.exists(health_key("ingest", SERVICE_NAME))
    left = [t.name for t in set(threading.enumerate()) - before]
    assert left == [], f"threads left running: {left}"


# --------------------------------------------------------------------------------------------
# Metrics


async def metrics_address(redis: Redis) -> str:
    """The ``host:port`` the test ingest's heartbeat announces for its /metrics."""
    beat = Beat.from_json(await redis.get(health_key("ingest", SERVICE_NAME)))
    assert (beat.service, beat.name) == ("ingest", SERVICE_NAME)
    assert beat.metrics, f"the ingest heartbeat names no metrics address: {beat}"
    return beat.metrics


async def test_ingest_serves_per_stream_metrics_on_the_address_its_heartbeat_announces(
    make_ingest: IngestFactory, redis: Redis
) -> None:
    # given an ingest service playing the clip live
    ingest = await make_ingest()
    address = await metrics_address(redis)
    assert (await ingest.start("metered", require_asset(CLIP), loop=True)).ok

    # when its endpoint is scraped after ten frames or more
    async def published() -> list[Any]:
        samples = await scrape(address)
        count = value(samples, "pitchside_ingest_frames_published_total", stream="metered")
        return samples if (count or 0) >= 10 else []

    samples = await wait_until(published, 20, "ten frames counted on /metrics", every_s=0.2)
    # then it counts the stream's frames and bytes, times decode and encode, shows the state
    frames = value(samples, "pitchside_ingest_frames_published_total", stream="metered") or 0
    jpeg_bytes = value(samples, "pitchside_ingest_published_bytes_total", stream="metered")
    assert jpeg_bytes is not None and jpeg_bytes > frames * 5_000, "848x478 JPEGs of ~50 kB"
    for timed in ("pitchside_ingest_decode_seconds", "pitchside_ingest_encode_seconds"):
        assert (value(samples, f"{timed}_count") or 0) >= frames, timed
        assert 0 < (value(samples, f"{timed}_sum") or 0) < frames * 0.5, f"{timed}: ms a frame"
    live = value(samples, "pitchside_ingest_source_state", stream="metered", state="live")
    assert live == 1, "one series for the stream, at its state"
    assert (
        value(samples, "pitchside_ingest_source_state", stream="metered", state="connecting")
        is None
    )
    assert value(samples, "pitchside_ingest_streams") == 1
    assert (value(samples, "process_resident_memory_bytes") or 0) > 10_000_000
    assert value(samples, "process_cpu_seconds_total") is not None


async def test_ingest_forgets_a_stream_series_once_it_has_left_the_registry(
    make_ingest: IngestFactory, redis: Redis
) -> None:
    # given a stream that ran and was stopped
    ingest = await make_ingest()
    address = await metrics_address(redis)
    assert (await ingest.start("brief", require_asset(CLIP), loop=True)).ok
    await ingest.wait_frames("brief", 3)
    assert (await ingest.stop_stream("brief")).ok
    samples = await scrape(address)
    assert value(samples, "pitchside_ingest_source_state", stream="brief", state="stopped") == 1
    assert (value(samples, "pitchside_ingest_frames_published_total", stream="brief") or 0) >= 3
    # when it is deleted from the registry (as DELETE /api/streams/{sid} does)
    await registry.remove(redis, "brief")

    # then its series are gone within a sweep
    async def forgotten() -> bool:
        return "brief" not in streams(await scrape(address))

    await wait_until(forgotten, METRICS_SWEEP_S + 10, "the series of brief to go", every_s=0.2)


async def test_ingest_folds_the_streams_past_the_cap_into_other(
    make_ingest: IngestFactory, redis: Redis
) -> None:
    # given an ingest that labels one stream by name, running two
    ingest = await make_ingest(metrics_max_streams=1)
    address = await metrics_address(redis)
    assert (await ingest.start("first", require_asset(CLIP), loop=True)).ok
    await ingest.wait_state("first", StreamState.LIVE)
    assert (await ingest.start("second", require_asset(CLIP), loop=True)).ok
    await ingest.wait_state("second", StreamState.LIVE)

    # when both have published frames
    async def both() -> list[Any]:
        samples = await scrape(address)
        counts = [
            value(samples, "pitchside_ingest_frames_published_total", stream=s) or 0
            for s in ("first", "other")
        ]
        return samples if min(counts) > 0 else []

    samples = await wait_until(both, 20, "frames of both streams on /metrics", every_s=0.2)
    # then the second is counted under "other", in every per-stream family
    assert "second" not in streams(samples)
    assert value(samples, "pitchside_ingest_source_state", stream="other", state="live") == 1
    assert value(samples, "pitchside_ingest_source_state", stream="first", state="live") == 1
