"""A real Chromium draws a tracked stream: each track in its team's shirt colour with its id,
the ball and its trail, the possession bar; a click highlights a player, the highlight follows
its id across frames and says when the id is lost.

The test plays ingest, the workers and the tracker on a real Redis (real JPEGs, their
detections and tracks messages) in front of a real gateway on loopback. What the viewer drew
is read from the canvas pixels and from its read-only hook ``window.pitchside.tracked``
(viewer.js). Screenshots are kept in test-artifacts/ for a person to look at. Chromium comes
from the system, as in test_browser.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from pitchside.schema import DetsMsg, TracksMsg, now_ns, tracks_key
from pitchside.settings import Settings
from tests.conftest import IMAGES_DIR, require_asset
from tests.integration.test_browser import FLAGS, require_chromium
from tests.integration.test_ws import live_stream, publish, serve

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SID = "tracked"
W, H = 1920, 1080  # the JPEG's size: boxes below are in its pixels
WAIT_MS = 15_000
TEAMS = {"A": "#d62828", "B": "#1c1c1c"}  # red shirts, black shirts, as in the image
BALL = (250, 204, 21)  # viewer.js BALL_COLOUR, #facc15


def track(tid: int, box: list[float], cls: int, label: str, team: str | None) -> dict[str, Any]:
    """A track as the tracker writes it (Track.to_dict)."""
    return {"id": tid, "box": box, "score": 0.9, "cls": cls, "label": label, "team": team}


# Tracks at people of frame_40cd38_7_6.jpg
PLAYER_A = track(7, [1080.0, 790.0, 1120.0, 872.0], 2, "player", "A")
PLAYER_B = track(9, [788.0, 618.0, 822.0, 684.0], 2, "player", "B")
KEEPER = track(1, [160.0, 520.0, 188.0, 572.0], 1, "goalkeeper", "B")
REFEREE = track(3, [696.0, 826.0, 730.0, 930.0], 3, "referee", None)
POSSESSION = {"team": "A", "player": 7, "percent": {"A": 62.0, "B": 38.0}}
# The ball rolls to #7's feet from the right, clear of the box edges the test reads.
BALL_FROM, BALL_TO, BALL_STEPS = (1300.0, 760.0), (1112.0, 866.0), 24
TRAIL = 8

# [r, g, b] of the canvas at a point given in source pixels (the viewer scales W x H to it).
PIXEL_JS = f"""([x, y]) => {{
  const canvas = document.querySelector("#view");
  const k = canvas.width / {W};
  const d = canvas.getContext("2d").getImageData(Math.floor(x * k), Math.floor(y * k), 1, 1).data;
  return [d[0], d[1], d[2]];
}}"""
# The ball as last drawn, and the canvas pixel at its centre, read at the same moment.
BALL_JS = f"""() => {{
  const ball = window.pitchside.tracked.ball;
  return [ball.predicted, ({PIXEL_JS})([ball.x, ball.y])];
}}"""


def rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def distance(a: Any, b: Any) -> int:
    """The largest difference of one channel."""
    return max(abs(int(x) - int(y)) for x, y in zip(a, b, strict=True))


def left_edge(track: dict[str, Any]) -> list[float]:
    """The middle of a track's left edge, where its box's stroke runs."""
    x1, y1, _, y2 = track["box"]
    return [x1, (y1 + y2) / 2]


def tracks_of(dets: DetsMsg, seq: int, scene: dict[str, Any]) -> TracksMsg:
    """The tracker's message for one frame: four tracks, the ball moving along a path with its
    trail, possession; ``scene`` says which ids are gone and whether the ball is predicted."""
    path = [
        (BALL_FROM[0] + (BALL_TO[0] - BALL_FROM[0]) * i / BALL_STEPS,
         BALL_FROM[1] + (BALL_TO[1] - BALL_FROM[1]) * i / BALL_STEPS)
        for i in range(seq % BALL_STEPS + 1)
    ]  # fmt: skip
    x, y = path[-1]
    tracks = [t for t in (PLAYER_A, PLAYER_B, KEEPER, REFEREE) if t["id"] not in scene["gone"]]
    return TracksMsg(
        dets=DetsMsg(
            dets.seq, dets.frame_id, dets.ts_capture, dets.w, dets.h, dets.model,
            dets.detections, {**dets.timings, "tracks_publish": now_ns()},
        ),
        tracks=tracks,
        ball={"box": [x - 6, y - 6, x + 6, y + 6], "predicted": scene["predicted"],
              "trail": [list(p) for p in path[-TRAIL:]]},
        possession=POSSESSION, teams=TEAMS, tracker="tracker-test",
    )  # fmt: skip


async def play_tracker(redis: Redis, jpeg: bytes, scene: dict[str, Any]) -> None:
    """Ingest, a worker and (while ``scene["tracker"]``) the tracker at 10 frames a second,
    until cancelled."""
    for seq in itertools.count():
        dets = await publish(redis, SID, seq, jpeg, w=W, h=H)
        if scene["tracker"]:
            tracks = tracks_of(dets, seq, scene)
            await redis.xadd(tracks_key(SID), tracks.to_fields(), maxlen=200)
        await asyncio.sleep(0.1)  # pacing, as a live source is paced


async def test_viewer_draws_tracks_in_team_colours_and_follows_a_clicked_player(
    settings: Settings, redis: Redis, artifacts_dir: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    chromium = require_chromium()
    # given a live stream whose frames come with their tracks
    jpeg = require_asset(IMAGES_DIR / "frame_40cd38_7_6.jpg").read_bytes()
    await live_stream(redis, SID, w=W, h=H)
    scene: dict[str, Any] = {"tracker": True, "predicted": False, "gone": set()}
    producer = asyncio.create_task(play_tracker(redis, jpeg, scene))
    try:
        async with serve(settings) as gateway, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(chromium), args=FLAGS)
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                # when the viewer opens (it selects the live stream by itself)
                await page.goto(gateway.http_url + "/")
                await page.wait_for_function(
                    "window.pitchside.tracked && window.pitchside.tracked.boxes.length === 4"
                    " && window.pitchside.tracked.ball !== null",
                    timeout=WAIT_MS,
                )
                tracked = await page.evaluate("window.pitchside.tracked")
                boxes = {b["id"]: b for b in tracked["boxes"]}

                # then each player's box is drawn in its team's shirt colour
                assert boxes[7]["colour"] == TEAMS["A"] and boxes[9]["colour"] == TEAMS["B"]
                for track in (PLAYER_A, PLAYER_B):
                    pixel = await page.evaluate(PIXEL_JS, left_edge(track))
                    want = rgb(TEAMS[track["team"]])
                    assert distance(pixel, want) <= 12, f"#{track['id']}: {pixel} != {want}"
                # and the goalkeeper dashed, the referee in a colour of neither team
                assert boxes[1]["dashed"] and not boxes[7]["dashed"], boxes
                assert boxes[3]["colour"] not in TEAMS.values() and boxes[3]["team"] is None
                pixel = await page.evaluate(PIXEL_JS, left_edge(REFEREE))
                assert distance(pixel, rgb(boxes[3]["colour"])) <= 12, pixel
                # and the ball filled at its centre, with its trail
                predicted, pixel = await page.evaluate(BALL_JS)
                assert not predicted and distance(pixel, BALL) <= 12, pixel
                assert tracked["ball"]["trail"] >= 1

                # and the possession bar shows the shares and who has the ball, also to aria
                bar = page.locator("#possession-bar")
                await expect(bar).to_have_attribute("aria-valuetext", "team A 62%, team B 38%")
                await expect(bar).to_have_attribute("aria-valuenow", "62")
                await expect(page.locator("#possession-a")).to_have_text("A 62%")
                await expect(page.locator("#possession-b")).to_have_text("B 38%")
                await expect(page.locator("#possession-holder")).to_have_text("ball: A #7")
                shade = await page.locator("#possession-a").evaluate(
                    "el => getComputedStyle(el).backgroundColor"
                )
                assert shade == "rgb({}, {}, {})".format(*rgb(TEAMS["A"])), shade
                await page.screenshot(path=str(artifacts_dir / "viewer-tracks.png"))
                await page.locator("#view").screenshot(
                    path=str(artifacts_dir / "viewer-tracks-canvas.png")
                )

                # when the user clicks player #9
                canvas = page.locator("#view")
                css_per_px = await canvas.evaluate(f"c => c.clientWidth / {W}")

                async def click(x: float, y: float) -> None:
                    await canvas.click(position={"x": x * css_per_px, "y": y * css_per_px})

                def centre(track: dict[str, Any]) -> tuple[float, float]:
                    x1, y1, x2, y2 = track["box"]
                    return (x1 + x2) / 2, (y1 + y2) / 2

                await click(*centre(PLAYER_B))
                # then #9 is highlighted across frames, the others dimmed
                seq = await page.evaluate("window.pitchside.tracked.seq")
                await page.wait_for_function(
                    f"window.pitchside.tracked.highlight === 9"
                    f" && window.pitchside.tracked.seq > {seq} + 2",
                    timeout=WAIT_MS,
                )
                boxes = {b["id"]: b for b in await page.evaluate("window.pitchside.tracked.boxes")}
                assert boxes[9]["focused"] and not boxes[9]["dimmed"], boxes[9]
                assert all(boxes[i]["dimmed"] for i in (1, 3, 7)), boxes
                pixel = await page.evaluate(PIXEL_JS, left_edge(PLAYER_B))
                assert distance(pixel, rgb(TEAMS["B"])) <= 12, pixel
                pixel = await page.evaluate(PIXEL_JS, left_edge(PLAYER_A))
                assert distance(pixel, rgb(TEAMS["A"])) > 60, f"#7 is dimmed, got {pixel}"
                await expect(page.locator("#track-note")).to_have_text("following #9 (team B)")
                await page.screenshot(path=str(artifacts_dir / "viewer-tracks-highlight.png"))
                # and a second click on it clears the highlight
                await click(*centre(PLAYER_B))
                await page.wait_for_function(
                    "window.pitchside.tracked.highlight === null", timeout=WAIT_MS
                )
                pixel = await page.evaluate(PIXEL_JS, left_edge(PLAYER_A))
                assert distance(pixel, rgb(TEAMS["A"])) <= 12, pixel
                await expect(page.locator("#track-note")).to_be_hidden()

                # when #7 is highlighted and then leaves the tracks
                await click(*centre(PLAYER_A))
                await page.wait_for_function(
                    "window.pitchside.tracked.highlight === 7", timeout=WAIT_MS
                )
                scene["gone"] = {7}
                # then the note says it is lost, and nobody is dimmed
                await page.wait_for_function("window.pitchside.tracked.lost", timeout=WAIT_MS)
                await expect(page.locator("#track-note")).to_have_text("#7 lost")
                pixel = await page.evaluate(PIXEL_JS, left_edge(PLAYER_B))
                assert distance(pixel, rgb(TEAMS["B"])) <= 12, pixel
                # and a click on the grass clears it
                await click(1500.0, 300.0)
                await page.wait_for_function(
                    "window.pitchside.tracked.highlight === null && !window.pitchside.tracked.lost",
                    timeout=WAIT_MS,
                )
                await expect(page.locator("#track-note")).to_be_hidden()

                # when the tracker only predicts where the ball is
                scene["predicted"] = True
                await page.wait_for_function(
                    "window.pitchside.tracked.ball && window.pitchside.tracked.ball.predicted",
                    timeout=WAIT_MS,
                )
                # then the ball is a ring: its centre is not filled
                predicted, pixel = await page.evaluate(BALL_JS)
                assert predicted and distance(pixel, BALL) > 60, pixel
                await page.locator("#view").screenshot(
                    path=str(artifacts_dir / "viewer-tracks-predicted.png")
                )

                # when the tracker goes quiet, the gateway carries on with bare detections
                scene["tracker"] = False
                # then the viewer draws them (test_ws.DETECTIONS: a player and a ball) and
                # greys the possession bar, its last figures kept
                await page.wait_for_function(
                    "document.querySelector('#possession').classList.contains('stale')"
                    " && window.pitchside.lastBoxes === 2",
                    timeout=WAIT_MS,
                )
                await expect(page.locator("#possession-a")).to_have_text("A 62%")
            finally:
                await browser.close()
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
