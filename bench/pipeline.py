"""(b) and (d): the whole pipeline, ingest to a WebSocket client, on a private stack.

:class:`Stack` runs in this process what ``pitchside up`` runs as processes: a private
embedded ``redis-server``, an :class:`~ingest.service.IngestService`, one
:class:`~workers.worker.Worker` (serving the sessions section (a) timed; its decode, letterbox
and inference run in the worker's own threads, ONNX Runtime releases the GIL) and the gateway
app under uvicorn on a free loopback port, configured as ``python -m gateway`` configures it.
The stream is started through the REST API and watched through ``/ws/streams/{sid}`` as a
browser would. Every message's stage stamps give the median time spent between stages, and a
ticker measures how late the event loop wakes up, to show whether the loop the services share
is what limits the figures.

(b) analyse mode, looping: every frame detected, fps = frames received / time.
(d) live mode, looping, paced at the clip's rate: latency = receipt - ``ts_capture`` per
message, its percentiles, and its trend from the first to the last seconds.

With ``tracked``, the stack also runs a :class:`~tracker.service.TrackerService`, so that the
gateway sends the frames with their tracks (:mod:`bench.tracking` compares the two).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.common import BenchConfig
from bench.stats import median, per_second, rate, summary_ms, trend
from gateway import protocol
from gateway.__main__ import build_server
from ingest.service import IngestService
from pitchside import redis_client
from pitchside.embedded_redis import EmbeddedRedis
from pitchside.errors import BenchError
from pitchside.schema import Mode
from pitchside.service import run_async
from pitchside.settings import Settings
from workers.engines import Detector
from workers.worker import Worker

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 30.0  # the stack must answer /readyz within this
SILENCE_TIMEOUT_S = 30.0  # a run fails when no frame message arrives for this long
STOP_TIMEOUT_S = 15.0  # tear-down bound before tasks are cancelled
TREND_WINDOW_S = 10.0
TICK_S = 0.01  # period of the event-loop lag ticker
# Stage stamps in the order a frame meets them (DetsMsg.timings, then the gateway, then us).
STAGES = (
    "capture", "publish", "dequeue", "infer_start", "infer_end", "dets_publish", "gateway_send",
    "receipt",
)  # fmt: skip


@dataclass(slots=True)
class Stack:
    """The services of one benchmark section, in this process; ``async with`` runs them."""

    settings: Settings
    detectors: tuple[Detector, Detector]  # (live, lanes), as workers.engines.load_for_worker
    worker: Worker | None = None
    port: int = 0
    tracked: bool = False  # also run a tracker: the frames go out with their tracks
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _clients: list[Redis] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _redis: EmbeddedRedis = field(default_factory=EmbeddedRedis)
    _server: uvicorn.Server | None = None

    async def __aenter__(self) -> Stack:
        url = self._redis.start()  # on the main thread: the server dies with it
        settings = self.settings.replace(redis_url=url)
        self._clients = [
            redis_client.connect(url, "bench-ingest"),
            redis_client.connect(url, "bench-worker"),
        ]
        ingest = IngestService(settings, self._clients[0], "bench-ingest")
        live, lanes = self.detectors
        self.worker = Worker(settings, self._clients[1], live, "bench-worker", lanes_detector=lanes)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._server = build_server(settings)  # listens on sock, given to serve() below
        self._tasks = [
            asyncio.create_task(ingest.run(self._stop), name="bench-ingest"),
            asyncio.create_task(self.worker.run(self._stop), name="bench-worker"),
            asyncio.create_task(self._server.serve(sockets=[sock]), name="bench-gateway"),
        ]
        if self.tracked:
            from tracker.service import TrackerService  # ByteTrack & co.: only when asked for

            self._clients.append(redis_client.connect(url, "bench-tracker"))
            tracker = TrackerService(settings, self._clients[2], "bench-tracker")
            self._tasks.append(asyncio.create_task(tracker.run(self._stop), name="bench-tracker"))
        try:
            await self._ready()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._stop.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self._clients:
            await client.aclose()
        self._redis.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        async with httpx.AsyncClient(base_url=self.base_url) as http:
            while True:
                for task in self._tasks:
                    if task.done():
                        error = task.exception() if not task.cancelled() else None
                        raise BenchError(f"{task.get_name()} stopped at start-up: {error!r}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise BenchError(f"the stack did not become ready in {READY_TIMEOUT_S:g} s")
                await asyncio.sleep(0.1)

    async def start_stream(self, sid: str, source: str, mode: Mode, loop: bool = False) -> None:
        """Start ``sid`` through the REST API (``loop``: a file starts again at its end)."""
        body = {"source": source, "id": sid, "mode": mode.value, "loop": loop}
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as http:
            resp = await http.post("/api/streams", json=body)
        if resp.status_code != 201:
            raise BenchError(f"starting the stream answered {resp.status_code}: {resp.text}")

    async def stream_info(self, sid: str) -> dict[str, Any]:
        """``GET /api/streams/{sid}``: the registry entry (``state``, ``reconnects``...)."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as http:
            resp = await http.get(f"/api/streams/{sid}")
        if resp.status_code != 200:
            raise BenchError(f"GET /api/streams/{sid} answered {resp.status_code}: {resp.text}")
        info: dict[str, Any] = resp.json()
        return info

    async def gateway_drops(self) -> dict[str, float]:
        """The gateway's dropped frames by reason (every stream), from its /metrics."""
        async with httpx.AsyncClient(base_url=self.base_url) as http:
            text = (await http.get("/metrics")).text
        drops: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            if family.name != "pitchside_frames_dropped":
                continue
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("stage") == "gateway":
                    reason = sample.labels["reason"]
                    drops[reason] = drops.get(reason, 0.0) + sample.value
        return drops


@dataclass(frozen=True, slots=True)
class Received:
    """One frame message as the client saw it."""

    receipt_ns: int
    seq: int
    ts_capture: int
    timings: dict[str, int]
    source_ns: int | None = None  # when the publisher sent it, where the frame tells (WHIP)


#: Reads, from a frame's JPEG, when its source sent it (epoch ns), or None.
SourceTime = Callable[[bytes], int | None]


async def messages(
    url: str, silence_s: float = SILENCE_TIMEOUT_S, source_time: SourceTime | None = None
) -> AsyncIterator[Received]:
    """Frame messages of one viewer WebSocket, stamped on receipt, after its hello.

    ``source_time`` (a section whose source stamps its frames) fills ``source_ns``.

    Raises:
        BenchError: no frame message for ``silence_s``, the stream ended, or the socket closed.
    """
    loop = asyncio.get_running_loop()
    async with connect(url, max_size=None, open_timeout=10) as ws:
        frame_by = loop.time() + silence_s  # events (stats: one a second) do not count
        while True:
            try:
                data = await asyncio.wait_for(ws.recv(), max(0.0, frame_by - loop.time()))
            except TimeoutError:
                raise BenchError(f"no frame message for {silence_s:g} s") from None
            except ConnectionClosed as exc:
                raise BenchError(f"the gateway closed the WebSocket: {exc}") from exc
            receipt_ns = time.time_ns()
            if isinstance(data, str):
                event = protocol.decode_text(data)
                if event.get("event") == "state":
                    raise BenchError(f"the stream ended: {event}")
                continue  # hello, stats
            frame_by = loop.time() + silence_s
            meta, jpeg = protocol.decode_binary(data)
            timings = {**meta["timings"], "receipt": receipt_ns}
            sent = source_time(jpeg) if source_time is not None else None
            yield Received(receipt_ns, int(meta["seq"]), int(meta["ts_capture"]), timings, sent)


@contextlib.asynccontextmanager
async def _loop_lag() -> AsyncIterator[list[float]]:
    """Collects how late (ms) a 10 ms ticker wakes up while inside."""
    lags: list[float] = []

    async def tick() -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + TICK_S
            await asyncio.sleep(TICK_S)
            lags.append((loop.time() - due) * 1000)

    task = asyncio.create_task(tick())
    try:
        yield lags
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _stages(window: list[Received]) -> dict[str, float | None]:
    """Median milliseconds between consecutive stage stamps, e.g. ``infer_start->infer_end``."""
    out: dict[str, float | None] = {}
    for a, b in zip(STAGES, STAGES[1:], strict=False):
        spans = [
            (m.timings[b] - m.timings[a]) / 1e6 for m in window if a in m.timings and b in m.timings
        ]
        value = median(spans)
        out[f"{a}->{b}"] = round(value, 2) if value is not None else None
    return out


def _gaps(window: list[Received]) -> int:
    """Frames missing between the first and last seq of the window (seqs only increase)."""
    return (window[-1].seq - window[0].seq + 1) - len(window)


def _inference(window: list[Received]) -> dict[str, float]:
    """The worker's inference as the window saw it: per frame, and its share of the time.

    The frames of one batch share their ``infer_start``/``infer_end`` stamps. Between the end
    of the window's first batch and the end of its last, the inference thread worked for the
    durations of every batch after the first: a busy share near 1 means inference never
    waited for anything else (the pipeline is inference-bound). Per-frame time and batch size
    come from the whole batches, without the two at the ends of the window.
    """
    counts: dict[tuple[int, int], int] = {}
    for m in window:
        span = (m.timings.get("infer_start", 0), m.timings.get("infer_end", 0))
        counts[span] = counts.get(span, 0) + 1
    spans = sorted(counts.items())
    whole = spans[1:-1] or spans
    whole_ns = sum(end - start for (start, end), _ in whole)
    busy_ns = sum(end - start for (start, end), _ in spans[1:])
    elapsed_ns = spans[-1][0][1] - spans[0][0][1]
    return {
        "ms_per_frame": round(whole_ns / 1e6 / sum(n for _, n in whole), 2),
        "frames_per_batch": round(sum(n for _, n in whole) / len(whole), 2),
        "busy_share": round(busy_ns / elapsed_ns, 3) if elapsed_ns > 0 else 0.0,
    }


def _tracking(window: list[Received]) -> dict[str, Any] | None:
    """The frames of the window that came with their tracks, and the tracker stage's span
    (detections written -> tracks written); None when none did."""
    tracked = [m for m in window if "tracks_publish" in m.timings]
    if not tracked:
        return None
    span = [(m.timings["tracks_publish"] - m.timings["dets_publish"]) / 1e6 for m in tracked]
    send = [(m.timings["gateway_send"] - m.timings["tracks_publish"]) / 1e6 for m in tracked]
    return {
        "frames": len(tracked),
        "share": round(len(tracked) / len(window), 4),
        "dets_publish->tracks_publish_ms": summary_ms(span),
        "tracks_publish->gateway_send_ms": summary_ms(send),
    }


def _worker_counts(worker: Worker | None) -> dict[str, int]:
    if worker is None:
        return {}
    return {"processed": worker.frames_processed, "skipped": worker.frames_skipped,
            "bad": worker.frames_bad, "batches": worker.batches}  # fmt: skip


def _delta(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0) for k, v in after.items()}


async def _watch(
    stack: Stack,
    sid: str,
    done: Callable[[list[Received]], bool],
    warm: Callable[[list[Received]], bool],
    source_time: SourceTime | None = None,
) -> tuple[list[Received], dict[str, Any]]:
    """Watch the started ``sid`` until ``done(window)``; the window opens when ``warm(all)``."""
    seen: list[Received] = []
    window: list[Received] = []
    counts: dict[str, Any] = {}
    url = f"ws://127.0.0.1:{stack.port}/ws/streams/{sid}"
    async with _loop_lag() as lags:
        async for msg in messages(url, source_time=source_time):
            seen.append(msg)
            if not counts and warm(seen):
                counts = {
                    "worker": _worker_counts(stack.worker),
                    "gateway": await stack.gateway_drops(),
                }
                lags.clear()
            if counts:
                window.append(msg)
                if done(window):
                    break
        lag = summary_ms(lags)
    extra = {
        "worker": _delta(_worker_counts(stack.worker), counts["worker"]),
        "gateway_dropped": _delta(await stack.gateway_drops(), counts["gateway"]),
        "event_loop_lag_ms": lag,
        "stage_medians_ms": _stages(window),
        "pipeline_inference": _inference(window),
    }
    if (tracking := _tracking(window)) is not None:
        extra["tracking"] = tracking
    return window, extra


def pipeline_settings(settings: Settings, config: BenchConfig, data_dir: Path) -> Settings:
    """The environment's settings with the benchmark's model, threads, Redis and data folder,
    and no access control: the stack is the benchmark's own, on a loopback port."""
    return settings.replace(
        model=str(config.model), imgsz=config.imgsz, threads=config.threads, port=0,
        data_dir=data_dir, redis_url=None, media_allow=(str(config.clip),),
        token=None, viewer_token=None, metrics_auth=False, health_auth=False,
    )  # fmt: skip


async def _unpaced(
    config: BenchConfig, settings: Settings, detectors: tuple[Detector, Detector]
) -> dict[str, Any]:
    # Detections arrive in bursts of one batch: a whole number of batches puts both ends of
    # the window at the same place in a burst.
    n = -(-config.frames // settings.batch_max) * settings.batch_max
    async with Stack(settings, detectors) as stack:
        await stack.start_stream("bench-b", str(config.clip), Mode.ANALYSE, loop=True)
        window, extra = await _watch(
            stack, "bench-b", done=lambda w: len(w) > n,
            warm=lambda seen: len(seen) > config.warmup,
        )  # fmt: skip
    elapsed = (window[-1].receipt_ns - window[0].receipt_ns) / 1e9
    latency = [(m.receipt_ns - m.ts_capture) / 1e6 for m in window]
    return {
        "fps": round(rate(n, elapsed), 3),
        "frames": n,
        "warmup_frames": config.warmup,
        "seconds": round(elapsed, 3),
        "lost_frames": _gaps(window),
        "batch_max": settings.batch_max,
        "analyse_max_lag": settings.analyse_max_lag,
        "latency_ms": summary_ms(latency),
        **extra,
    }


async def watch_live(
    stack: Stack, sid: str, config: BenchConfig, source_time: SourceTime | None = None
) -> dict[str, Any]:
    """Watch the started live stream ``sid`` for ``config.live_seconds`` after its warm-up.

    Returns:
        The figures of a live section: latency receipt - ``ts_capture`` (``latency_ms``
        percentiles, its ``trend``), frames shown per second, frames missing at the client,
        every ``[s, ms, seq]`` sample, and :func:`_watch`'s stage, worker and loop figures;
        with ``source_time``, also ``source_latency_ms``: receipt - the source's send time,
        over the frames whose time could be read (``source_read``).
    """
    state: dict[str, float] = {}

    def warm(seen: list[Received]) -> bool:
        start = state.setdefault("first", seen[0].receipt_ns / 1e9)
        return seen[-1].receipt_ns / 1e9 - start >= config.live_warmup_s

    def done(window: list[Received]) -> bool:
        return (window[-1].receipt_ns - window[0].receipt_ns) / 1e9 >= config.live_seconds

    window, extra = await _watch(stack, sid, done=done, warm=warm, source_time=source_time)
    if source_time is not None:
        from_source = [(m.receipt_ns - m.source_ns) / 1e6 for m in window if m.source_ns]
        extra["source_latency_ms"] = summary_ms(from_source)
        extra["source_read"] = len(from_source)
    t0 = window[0].receipt_ns
    times_s = [(m.receipt_ns - t0) / 1e9 for m in window]
    latency = [(m.receipt_ns - m.ts_capture) / 1e6 for m in window]
    infer = [(m.timings["infer_end"] - m.timings["infer_start"]) / 1e6 for m in window]
    duration = times_s[-1]
    return {
        "seconds": round(duration, 3),
        "warmup_s": config.live_warmup_s,
        "messages": len(window),
        "latency_ms": summary_ms(latency),
        "trend": trend(times_s, latency, min(TREND_WINDOW_S, duration / 3)),
        "shown_fps": round(rate(len(window) - 1, duration), 3),
        "shown_per_second": per_second(times_s, duration),
        "published_frames": window[-1].seq - window[0].seq + 1,
        "missing_frames": _gaps(window),
        "pipeline_infer_ms": summary_ms(infer),
        "samples": [
            [round(t, 3), round(v, 2), m.seq]
            for t, v, m in zip(times_s, latency, window, strict=True)
        ],
        **extra,
    }


async def _live(
    config: BenchConfig,
    settings: Settings,
    detectors: tuple[Detector, Detector],
    tracked: bool = False,
) -> dict[str, Any]:
    async with Stack(settings, detectors, tracked=tracked) as stack:
        await stack.start_stream("bench-d", str(config.clip), Mode.LIVE, loop=True)
        return await watch_live(stack, "bench-d", config)


def run_unpaced(
    config: BenchConfig, settings: Settings, detectors: tuple[Detector, Detector]
) -> dict[str, Any]:
    """(b): analyse mode, unpaced; fps at the WebSocket client over ``config.frames``.

    ``settings`` are the environment's (batch size, backlog limit...); the model, ``imgsz``
    and threads are the benchmark's, Redis is a private embedded one.
    """
    with tempfile.TemporaryDirectory(prefix="pitchside-bench-") as data_dir:
        settings = pipeline_settings(settings, config, Path(data_dir))
        return run_async(_unpaced(config, settings, detectors))


def run_live(
    config: BenchConfig,
    settings: Settings,
    detectors: tuple[Detector, Detector],
    tracked: bool = False,
) -> dict[str, Any]:
    """(d): live mode, paced; latency capture -> WebSocket receipt for ``live_seconds``.

    ``tracked``: a tracker runs too, and the figures gain ``tracking`` (:func:`_tracking`).
    """
    with tempfile.TemporaryDirectory(prefix="pitchside-bench-") as data_dir:
        settings = pipeline_settings(settings, config, Path(data_dir))
        return run_async(_live(config, settings, detectors, tracked))
