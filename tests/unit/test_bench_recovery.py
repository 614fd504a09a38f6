"""Section (e)'s recovery time, the feed it waits on, and its camera without GStreamer."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bench import camera
from bench.cameras import recovery, recovery_summary
from bench.feed import Feed
from bench.pipeline import Received
from pitchside.errors import BenchError

S = 1_000_000_000  # ns


def _msg(receipt_s: float, captured_s: float, seq: int) -> Received:
    return Received(int(receipt_s * S), seq, int(captured_s * S), {})


def test_recovery_counts_from_the_camera_back_to_the_first_frame_captured_after_it() -> None:
    # given frames captured before the drop-out at 10 s (two of them received after it), and
    # the camera back at 12 s: its first frame captured at 13.2 s, received at 13.25 s
    received = [
        _msg(9.9, 9.86, 1), _msg(10.02, 9.98, 2), _msg(10.1, 10.0, 3),
        _msg(13.25, 13.2, 4), _msg(13.3, 13.24, 5),
    ]  # fmt: skip
    # when the recovery is computed from the moment the camera came back
    found = recovery(received, back_ns=12 * S)
    # then it runs to that first frame's receipt; in-flight old frames do not count
    assert found == {"recovery_s": 1.25, "shown_gap_s": 3.15, "seq": 4}


def test_recovery_is_none_until_a_frame_captured_after_the_return_arrived() -> None:
    assert recovery([_msg(10.1, 10.0, 3)], back_ns=12 * S) is None
    assert recovery([], back_ns=12 * S) is None


def test_recovery_of_a_first_message_has_no_gap() -> None:
    assert recovery([_msg(13.0, 12.5, 0)], back_ns=12 * S) == {
        "recovery_s": 1.0, "shown_gap_s": None, "seq": 0,
    }  # fmt: skip


def test_recovery_summary_gives_the_median_and_max() -> None:
    runs = [{"recovery_s": 1.5}, {"recovery_s": 0.9}, {"recovery_s": 2.5}]
    assert recovery_summary(runs) == {"n": 3, "median_s": 1.5, "max_s": 2.5}
    assert recovery_summary([]) == {"n": 0}


class _QueueFeed(Feed):
    """A Feed whose messages come from a queue instead of a WebSocket."""

    def __init__(self, queue: asyncio.Queue[Received | Exception]) -> None:
        super().__init__("ws://unused", silence_s=60)
        self.queue = queue

    async def _receive(self) -> None:
        while True:
            item = await self.queue.get()
            if isinstance(item, Exception):
                raise item
            self.received.append(item)
            self._arrived.set()


async def test_feed_returns_as_soon_as_a_message_shows_what_it_waits_for() -> None:
    # given a feed waiting, with a long bound, for a frame captured after 5 s
    queue: asyncio.Queue[Received | Exception] = asyncio.Queue()
    async with _QueueFeed(queue) as feed:
        waiting = asyncio.create_task(
            feed.wait_for(lambda seen: recovery(seen, 5 * S), 60, "frame after 5 s")
        )
        queue.put_nowait(_msg(4.1, 4.0, 0))
        queue.put_nowait(_msg(6.1, 6.0, 1))
        started = time.monotonic()
        # when that message arrives, then the wait ends with it, long before its bound
        found = await asyncio.wait_for(waiting, 10)
    assert found["seq"] == 1 and time.monotonic() - started < 5


async def test_feed_wait_fails_at_its_bound_naming_what_it_waited_for() -> None:
    queue: asyncio.Queue[Received | Exception] = asyncio.Queue()
    async with _QueueFeed(queue) as feed:
        with pytest.raises(BenchError, match=r"no frame after 5 s within 0.05 s"):
            await feed.wait_for(lambda seen: recovery(seen, 5 * S), 0.05, "frame after 5 s")


async def test_feed_wait_fails_at_once_when_the_websocket_fails() -> None:
    queue: asyncio.Queue[Received | Exception] = asyncio.Queue()
    async with _QueueFeed(queue) as feed:
        queue.put_nowait(BenchError("the gateway closed the WebSocket"))
        with pytest.raises(BenchError, match="stopped before a frame: the gateway closed"):
            await asyncio.wait_for(feed.wait_for(lambda seen: None, 60, "a frame"), 10)


def test_camera_without_gstreamer_says_which_apt_packages_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # given a system without Debian's python3 (so without its GStreamer bindings)
    monkeypatch.setattr(camera, "SYSTEM_PYTHON", tmp_path / "no-python3")
    camera._check_system_gstreamer.cache_clear()
    server = camera.RtspServer(tmp_path / "clip.mp4", "user", "password")
    try:
        # when the camera starts, then it fails with a benchmark error naming the packages
        with pytest.raises(camera.GStreamerMissingError) as caught:
            server.start()
    finally:
        server.close()
        camera._check_system_gstreamer.cache_clear()
    assert isinstance(caught.value, BenchError)
    assert f"apt-get install {camera.APT_PACKAGES}" in str(caught.value)
    assert "gir1.2-gst-rtsp-server-1.0" in str(caught.value)
