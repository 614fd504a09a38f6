"""A viewer's bounded queue: the oldest messages go, the newest stay, and drops are counted;
each message keeps its frame's capture time for the end-to-end latency."""

from __future__ import annotations

import asyncio

import pytest

from gateway.hub import Closing, Outgoing, Queued, Viewer


async def test_viewer_drops_oldest_when_queue_is_full() -> None:
    # given a viewer holding at most 4 messages
    drops: list[int] = []
    viewer = Viewer("s", frames=False, maxlen=4, on_drop=lambda: drops.append(1))
    # when 10 messages arrive while it reads nothing
    for i in range(10):
        viewer.put(f"m{i}")
    # then it holds the newest 4, oldest first, and counted 6 drops
    got = [await viewer.get() for _ in range(4)]
    assert got == [Queued(f"m{i}") for i in range(6, 10)], (
        "a slow viewer keeps only the newest messages"
    )
    assert viewer.dropped == 6
    assert len(drops) == 6, "every drop reaches the on_drop callback (the metric)"
    assert len(viewer) == 0


async def test_viewer_keeps_every_message_when_it_reads_in_time() -> None:
    # given a viewer of queue length 2
    viewer = Viewer("s", frames=False, maxlen=2)
    # when it reads each message before the next arrives
    got = []
    for i in range(5):
        viewer.put(f"m{i}")
        got.append(await viewer.get())
    # then nothing was dropped
    assert got == [Queued(f"m{i}") for i in range(5)]
    assert viewer.dropped == 0


async def test_viewer_get_waits_until_a_message_arrives() -> None:
    # given an empty viewer with a reader waiting
    viewer = Viewer("s", frames=False, maxlen=4)
    reader = asyncio.create_task(viewer.get())
    await asyncio.sleep(0)
    assert not reader.done(), "get() must wait while the queue is empty"
    # when a message arrives
    viewer.put("hello")
    # then the waiting reader gets it
    assert await asyncio.wait_for(reader, timeout=5) == Queued("hello")


@pytest.mark.parametrize(
    ("frames", "message", "expected"),
    [
        (True, Outgoing(text="{}", binary=b"bin", ts_capture=7), Queued(b"bin", 7)),
        (False, Outgoing(text="{}", binary=b"bin", ts_capture=7), Queued("{}", 7)),
        (False, Outgoing(text="{}", binary=None), Queued("{}")),
        (True, Outgoing(text="{}", binary=None), None),  # JPEG gone: binary viewers skip it
    ],
)
async def test_viewer_offer_queues_the_form_it_asked_for(
    frames: bool, message: Outgoing, expected: Queued | None
) -> None:
    viewer = Viewer("s", frames=frames, maxlen=4)
    viewer.offer(message)
    assert len(viewer) == (0 if expected is None else 1)
    if expected is not None:
        assert await viewer.get() == expected


async def test_viewer_delivers_queued_messages_before_closing() -> None:
    # given queued messages
    viewer = Viewer("s", frames=False, maxlen=4)
    viewer.put("a")
    viewer.put("b")
    # when the stream ends, and a late message comes after the close
    viewer.finish(Closing(1000, "stream ended", '{"event":"state"}'))
    viewer.put("late")
    viewer.finish(Closing(1001, "second close is ignored"))
    # then the queued messages come first, then the first Closing, forever
    assert [await viewer.get(), await viewer.get()] == [Queued("a"), Queued("b")]
    closing = await viewer.get()
    assert closing == Closing(1000, "stream ended", '{"event":"state"}')
    assert await viewer.get() == closing
