"""The tracker stage in the real stack (`pitchside up`, two trackers): the clip's frames reach
the viewer with their tracks and both teams; killing the tracker that owns the stream leaves
it tracked again within the lease time, and the video never stops."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import av
import pytest
import websockets

from gateway.protocol import decode_binary
from tests.conftest import CLIP
from tests.integration.conftest import Stack, children, run_stack

pytestmark = pytest.mark.slow

LEASE_S = 2.0  # the stack's PITCHSIDE_TRACKER_LEASE_S: a takeover comes within it
WAIT_S = 90.0  # bound on each wait: the stack's first frames on 2 busy cores


@pytest.fixture(scope="module")
def tracked_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with run_stack(
        tmp_path_factory.mktemp("tracker"), PITCHSIDE_TRACKERS="2",
        PITCHSIDE_TRACKER_LEASE_S=str(LEASE_S),
    ) as running:  # fmt: skip
        yield running


async def frames_until(url: str, done: Any, timeout_s: float = WAIT_S) -> list[dict[str, Any]]:
    """Frame metas as they arrive (each with ``_at``, the monotonic arrival time), until
    ``done(metas)`` is true."""
    metas: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout_s), websockets.connect(url, max_size=None) as ws:
            while not done(metas):
                message = await ws.recv()
                if isinstance(message, bytes):
                    meta, _ = decode_binary(message)
                    metas.append({**meta, "_at": time.monotonic()})
    except TimeoutError:
        tracked = [m for m in metas if "tracks" in m]
        teams = Counter(t["team"] for m in tracked[-25:] for t in m["tracks"])
        pytest.fail(
            f"not done after {timeout_s:.0f} s: {len(metas)} frames, {len(tracked)} tracked, "
            f"teams of the last 25 tracked: {dict(teams)}"
        )
    return metas


def test_the_clip_is_tracked_players_keep_their_ids_and_both_teams_are_found(
    tracked_stack: Stack,
) -> None:
    # given the clip looping as a live stream
    resp = tracked_stack.start_stream("tracked", CLIP, loop=True)
    assert resp.status_code == 201, resp.text

    def teams_known(metas: list[dict[str, Any]]) -> bool:
        recent = [m for m in metas[-25:] if "tracks" in m]
        teams = {t["team"] for m in recent for t in m["tracks"]}
        return len(recent) >= 25 and {"A", "B"} <= teams and len(metas) >= 150

    # when a viewer watches until both teams show in its frames
    metas = asyncio.run(frames_until(f"{tracked_stack.ws_url}/ws/streams/tracked", teams_known))
    tracked = [m for m in metas if "tracks" in m]
    # then the frames carry tracks, with the team colours, from one of the two trackers
    last = tracked[-1]
    assert set(last["teams"]) == {"A", "B"} and all(
        c.startswith("#") for c in last["teams"].values()
    )
    assert last["tracker"] in ("tracker-1", "tracker-2")
    # and most people detected have a track. Not all: a new track is confirmed on its second
    # frame, a low-score box only continues a track, and on 2 busy cores the worker detects
    # about one frame in four, so players move far between frames (measured: 55-60 % here,
    # 83 % on every frame of the clip, the same detections offline)
    people = sum(sum(d["label"] == "person" for d in m["detections"]) for m in tracked[-25:])
    with_id = sum(sum(t["label"] == "person" for t in m["tracks"]) for m in tracked[-25:])
    steps = Counter(b["seq"] - a["seq"] for a, b in zip(tracked, tracked[1:], strict=False))
    assert with_id >= 0.45 * people, (with_id, people, steps)
    # and players keep their ids: within one pass of the clip (its loop jumps the picture, so
    # the tracks start again), some track is in most of the frames
    with av.open(str(CLIP)) as container:
        clip_frames = sum(1 for _ in container.decode(video=0))
    passes: dict[int, list[dict[str, Any]]] = {}
    for m in tracked:
        passes.setdefault(m["seq"] // clip_frames, []).append(m)
    longest = max(passes.values(), key=len)
    seen = Counter(t["id"] for m in longest for t in m["tracks"])
    assert max(seen.values()) >= 0.7 * len(longest), (len(longest), seen.most_common(5))


def test_killing_the_owning_tracker_hands_the_stream_over_within_the_lease(
    tracked_stack: Stack,
) -> None:
    # given a tracked stream and the tracker that owns it
    resp = tracked_stack.start_stream("handover", CLIP, loop=True)
    assert resp.status_code == 201, resp.text
    url = f"{tracked_stack.ws_url}/ws/streams/handover"
    metas = asyncio.run(frames_until(url, lambda ms: sum("tracks" in m for m in ms) >= 10))
    owner = metas[-1]["tracker"]
    killed_at = 0.0

    def kill_then_tracked_again(ms: list[dict[str, Any]]) -> bool:
        nonlocal killed_at
        if not killed_at and ms:
            os.kill(children(tracked_stack.pid)[owner], signal.SIGKILL)
            killed_at = time.monotonic()
        after = [m for m in ms if m["_at"] > killed_at + 0.5]
        return len(after) >= 10 and all("tracks" in m for m in after[-5:])

    # when it is killed (SIGKILL: its lease is left to expire)
    metas = asyncio.run(frames_until(url, kill_then_tracked_again))
    # then the video never stopped: no gap between frames longer than the lease and a bit
    arrivals = [m["_at"] for m in metas]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert max(gaps) < LEASE_S + 1.5, max(gaps)
    # and frames went out without tracks only for a while, then with tracks again, from the
    # other tracker or the owner restarted under its name
    untracked = [m["_at"] for m in metas if "tracks" not in m and m["_at"] > killed_at]
    if untracked:
        assert untracked[-1] - killed_at < LEASE_S + 3.0, untracked[-1] - killed_at
    resumed = [m for m in metas if "tracks" in m and m["_at"] > killed_at + 0.5]
    assert resumed and resumed[-1]["tracker"] in ("tracker-1", "tracker-2")
