"""(e): an RTSP camera, live: latency capture -> WebSocket, and the time it takes to come back.

A real RTSP server (:class:`bench.camera.RtspServer`, GStreamer) serves the clip at ``/clip``
in real time, looped without re-encoding. Ingest opens ``rtsp://127.0.0.1:PORT/clip`` as a
camera, in live mode, through the REST API of a private :class:`~bench.pipeline.Stack`, and a
viewer WebSocket measures what (d) measures (:func:`bench.pipeline.watch_live`) for
``--live-seconds`` after ``--live-warmup``. For a camera, ``ts_capture`` is when ingest
decoded the frame: the camera's own capture, encoding and network time are not in the
latency (on loopback, from a server that does not encode, there is next to none of the last
two; a real camera adds its own).

Then, ``--reconnects`` times, the camera goes away and comes back: the server stops, the API
shows the stream ``reconnecting``, the server starts again on the same port, and the recovery
time runs from the moment it listens again to the receipt of the first frame captured after
that moment (frames captured before the drop-out and still on their way do not count). Ingest
retries on a capped, fully jittered exponential backoff (``reconnect_initial_s`` doubling up
to ``reconnect_max_s``), so a recovery takes up to the backoff's bound at that moment, plus
opening and probing the stream, plus the pipeline's latency.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from bench.camera import START_S, STOP_S, RtspServer
from bench.common import BenchConfig
from bench.feed import Feed
from bench.pipeline import Received, Stack, pipeline_settings, watch_live
from bench.stats import median
from pitchside.errors import BenchError
from pitchside.schema import Mode, StreamState
from pitchside.service import run_async
from pitchside.settings import Settings
from workers.engines import Detector

SID = "bench-e"
# The server's /secure mount wants credentials; (e) reads /clip, which does not.
USER = PASSWORD = "bench"
#: Bound on the API showing ``reconnecting`` after the camera stopped, beyond the watchdog
#: (the stream usually ends at once; a silent one waits for the watchdog).
DROP_SLACK_S = 10.0
#: Bound on a recovery beyond the backoff's cap: opening and probing the stream, and its first
#: frame through the pipeline, on 2 busy cores.
RECOVER_SLACK_S = 20.0
FIRST_FRAME_S = 30.0  # bound on the first frame of the recovery phase's WebSocket
STATE_POLL_S = 0.1  # how often the API is asked for the stream's state


def recovery(received: Sequence[Received], back_ns: int) -> dict[str, Any] | None:
    """How long a viewer waited for the camera that came back at ``back_ns`` (epoch ns).

    Returns:
        None until a frame captured after ``back_ns`` was received; then ``recovery_s`` (from
        ``back_ns`` to its receipt), ``shown_gap_s`` (from the frame received before it, the
        time the viewer saw no new frame) and its ``seq``.
    """
    for i, msg in enumerate(received):
        if msg.ts_capture > back_ns:
            gap_s = (msg.receipt_ns - received[i - 1].receipt_ns) / 1e9 if i else None
            return {
                "recovery_s": round((msg.receipt_ns - back_ns) / 1e9, 3),
                "shown_gap_s": round(gap_s, 3) if gap_s is not None else None,
                "seq": msg.seq,
            }
    return None


def recovery_summary(recoveries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Count, median and max of the recoveries' ``recovery_s``."""
    times = [r["recovery_s"] for r in recoveries]
    if not times:
        return {"n": 0}
    return {"n": len(times), "median_s": round(median(times) or 0.0, 3), "max_s": max(times)}


async def _until_reconnecting(stack: Stack, reconnects: int, timeout_s: float) -> dict[str, Any]:
    """The registry entry once it is ``reconnecting`` with more than ``reconnects`` counted."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = await stack.stream_info(SID)
        if info["state"] == StreamState.RECONNECTING and info["reconnects"] > reconnects:
            return info
        if not StreamState(info["state"]).active:
            raise BenchError(f"the camera stream is {info['state']}: {info.get('error')}")
        if time.monotonic() > deadline:
            raise BenchError(
                f"the stream was not reconnecting {timeout_s:g} s after the camera stopped "
                f"(state {info['state']})"
            )
        await asyncio.sleep(STATE_POLL_S)


async def _recoveries(
    stack: Stack, server: RtspServer, pool: ThreadPoolExecutor, settings: Settings, n: int
) -> list[dict[str, Any]]:
    """Stop the camera ``n`` times; each time, how long until a viewer saw it again."""
    loop = asyncio.get_running_loop()
    drop_s = settings.watchdog_s + DROP_SLACK_S
    recover_s = settings.reconnect_max_s + RECOVER_SLACK_S
    out: list[dict[str, Any]] = []
    url = f"ws://127.0.0.1:{stack.port}/ws/streams/{SID}"
    async with Feed(url, silence_s=STOP_S + drop_s + START_S + recover_s) as feed:
        await feed.wait_for(lambda seen: seen or None, FIRST_FRAME_S, "frame before the stops")
        for _ in range(n):
            before = (await stack.stream_info(SID))["reconnects"]
            stopping_ns = time.time_ns()
            await loop.run_in_executor(pool, server.stop)
            await _until_reconnecting(stack, before, drop_s)
            await loop.run_in_executor(pool, server.start)
            back_ns = time.time_ns()
            found = await feed.wait_for(
                partial(recovery, back_ns=back_ns), recover_s,
                "frame from the camera after it came back",
            )  # fmt: skip
            after = (await stack.stream_info(SID))["reconnects"]
            out.append({
                **found, "camera_down_s": round((back_ns - stopping_ns) / 1e9, 3),
                "reconnect_attempts": after - before,
            })  # fmt: skip
    return out


async def _rtsp(
    config: BenchConfig,
    settings: Settings,
    detectors: tuple[Detector, Detector],
    server: RtspServer,
    pool: ThreadPoolExecutor,
) -> dict[str, Any]:
    await asyncio.get_running_loop().run_in_executor(pool, server.start)
    async with Stack(settings, detectors) as stack:
        await stack.start_stream(SID, server.url("/clip"), Mode.LIVE)
        result = await watch_live(stack, SID, config)
        recoveries = await _recoveries(stack, server, pool, settings, config.reconnects)
    return {
        "source": "rtsp: GStreamer's gst-rtsp-server on loopback, /clip",
        "rtsp_transport": settings.rtsp_transport,
        **result,
        "recoveries": recoveries,
        "recovery": recovery_summary(recoveries),
        "backoff": {
            "reconnect_initial_s": settings.reconnect_initial_s,
            "reconnect_max_s": settings.reconnect_max_s,
            "watchdog_s": settings.watchdog_s,
        },
    }


def run_rtsp(
    config: BenchConfig, settings: Settings, detectors: tuple[Detector, Detector]
) -> dict[str, Any]:
    """(e): a live RTSP camera's latency for ``live_seconds``, then ``reconnects`` recoveries.

    Raises:
        BenchError: GStreamer is missing (the message names the apt packages), the server
            did not start, or a wait ran past its bound.
    """
    server = RtspServer(config.clip, USER, PASSWORD)
    # One thread starts and stops the server: it dies with the thread that started it.
    pool = ThreadPoolExecutor(1, thread_name_prefix="bench-camera")
    try:
        with tempfile.TemporaryDirectory(prefix="pitchside-bench-") as data_dir:
            settings = pipeline_settings(settings, config, Path(data_dir))
            return run_async(_rtsp(config, settings, detectors, server, pool))
    finally:
        server.close()
        pool.shutdown()
