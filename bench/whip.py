"""(f): a WebRTC publisher over WHIP, live: latency capture -> WebSocket, and from the publisher.

A :class:`bench.publisher.Publisher` sends the clip (looped, at its own rate, VP8 from aiortc,
as a browser sends a camera) to ``POST /whip/bench-f`` of a private
:class:`~bench.pipeline.Stack`, and a viewer WebSocket measures what (d) measures
(:func:`bench.pipeline.watch_live`) for ``--live-seconds`` after ``--live-warmup``. For a
publisher, ``ts_capture`` is when ingest decoded the frame, so that latency leaves out the
publisher's encoding and the network; each frame also carries its number in its pixels
(:func:`bench.publisher.draw_stamp`), and the viewer reads it back from the JPEG it receives:
``source_latency_ms`` runs from the publisher handing the frame to its encoder to the viewer's
receipt, VP8 both ways included (on loopback, so no network delay).

The publisher runs in the benchmark's process, beside the stack: its VP8 encoding takes CPU
from the same two cores, as a camera's encoder would not.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.common import BenchConfig
from bench.pipeline import Stack, pipeline_settings, watch_live
from bench.publisher import Publisher, read_stamp
from ingest.sources.webrtc import restrict_host_addresses
from pitchside.errors import BenchError
from pitchside.service import run_async
from pitchside.settings import Settings
from workers.engines import Detector

SID = "bench-f"
LOOPBACK = ("127.0.0.1",)  # both peers offer host candidates on loopback only


async def _whip(
    config: BenchConfig, settings: Settings, detectors: tuple[Detector, Detector]
) -> dict[str, Any]:
    async with Stack(settings, detectors) as stack, Publisher(config.clip, stamp=True) as publisher:
        offer = await publisher.offer()
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
            resp = await http.post(
                f"/whip/{SID}", content=offer, headers={"content-type": "application/sdp"}
            )
        if resp.status_code != 201:
            raise BenchError(f"POST /whip/{SID} answered {resp.status_code}: {resp.text}")
        await publisher.accept(resp.text)

        def source_time(jpeg: bytes) -> int | None:
            number = read_stamp(jpeg)
            return publisher.sent_ns(number) if number is not None else None

        result = await watch_live(stack, SID, config, source_time)
    return {"source": "whip: an aiortc publisher (VP8) in this process, on loopback", **result}


def run_whip(
    config: BenchConfig, settings: Settings, detectors: tuple[Detector, Detector]
) -> dict[str, Any]:
    """(f): a WebRTC publisher's live latency for ``live_seconds``, from ingest and from it.

    Raises:
        BenchError: the offer was refused, or a wait ran past its bound.
    """
    restrict_host_addresses(LOOPBACK)
    try:
        with tempfile.TemporaryDirectory(prefix="pitchside-bench-") as data_dir:
            settings = pipeline_settings(settings, config, Path(data_dir))
            settings = settings.replace(ice_addresses=LOOPBACK, ice_servers=())
            return run_async(_whip(config, settings, detectors))
    finally:
        restrict_host_addresses(())
