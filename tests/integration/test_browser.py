"""A real Chromium opens the viewer, sees the stream and draws boxes over the live video, with
the gateway's stats line under it and, when PITCHSIDE_GRAFANA_URL is set, links to Grafana.

The screenshot is kept in test-artifacts/ for a person to look at. Chromium comes from the
system (/usr/bin/chromium); Playwright's own browser download is not used. Without Chromium the
test is skipped, unless PITCHSIDE_REQUIRE_BROWSER=1 (CI) makes that a failure.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest
from redis.asyncio import Redis

from pitchside.settings import Settings
from tests.conftest import CLIP, IMAGES_DIR, require_asset
from tests.integration.conftest import Stack
from tests.integration.test_ws import every_other_frame, live_stream, serve

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


# The stats line under the video, e.g. "in 25.0 fps · detected 12.1 · shown 12.0 ·
# 132 ms p50 / 160 p95 · dropped 12.9/s skipped, 0.0 slow"
STATS_LINE = re.compile(
    r"^in (?P<fps_in>\d+\.\d) fps · detected (?P<detected>\d+\.\d) · shown (?P<shown>\d+\.\d)"
    r" · (?P<p50>\d+) ms p50 / (?P<p95>\d+) p95 · dropped \d+\.\d/s skipped, \d+\.\d slow"
)


def require_chromium() -> Path:
    """The system Chromium; skips without it, unless PITCHSIDE_REQUIRE_BROWSER=1 (CI) fails."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium"
        if os.environ.get("PITCHSIDE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
def chromium_path() -> Path:
    return require_chromium()


def test_viewer_shows_the_stream_with_boxes(stack: Stack, chromium_path: Path, artifacts_dir):
    from playwright.sync_api import expect, sync_playwright

    # given a looping stream of the real clip
    response = stack.start_stream("browser", CLIP, loop=True)
    assert response.status_code == 201, response.text
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium_path), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            # when the viewer opens
            page.goto(stack.base_url + "/")
            # then it lists the stream as live and, once selected, draws frames with boxes
            item = page.locator('#streams li[data-sid="browser"]')
            expect(item).to_be_visible(timeout=15_000)
            expect(item).to_have_attribute("data-state", "live", timeout=15_000)
            item.click()
            page.wait_for_function(
                "window.pitchside.sid === 'browser' && window.pitchside.framesShown >= 10"
                " && window.pitchside.lastBoxes > 0",
                timeout=30_000,
            )
            expect(page.locator('#class-toggles input[data-label="person"]')).to_have_count(1)
            assert int(page.locator("#fps").text_content()) > 0
            assert page.locator("#latency").text_content().endswith("ms")
            # and the gateway's stats line under the video shows the stream's figures
            page.wait_for_function(
                "window.pitchside.stats && window.pitchside.stats.sid === 'browser'"
                " && window.pitchside.stats.fps_shown > 0"
                " && window.pitchside.stats.latency_p50_ms !== null",
                timeout=15_000,
            )
            line = STATS_LINE.match(page.locator("#stats").text_content() or "")
            assert line is not None, page.locator("#stats").text_content()
            assert float(line["fps_in"]) > 0 and float(line["shown"]) > 0
            assert 0 < int(line["p50"]) <= int(line["p95"])
            # and with no PITCHSIDE_GRAFANA_URL, no link to Grafana
            expect(page.locator("#grafana")).to_be_hidden()
            expect(page.locator("#grafana-stream")).to_be_hidden()
            page.locator("#view").screenshot(path=str(artifacts_dir / "viewer-canvas.png"))
            page.screenshot(path=str(artifacts_dir / "viewer.png"))
            # and the class toggles hide boxes: with every class off, none is drawn
            for toggle in page.locator("#class-toggles input[data-label]").all():
                toggle.uncheck()
            shown = page.evaluate("window.pitchside.framesShown")
            page.wait_for_function(
                f"window.pitchside.framesShown > {shown} + 3 && window.pitchside.lastBoxes === 0",
                timeout=10_000,
            )
        finally:
            browser.close()


async def test_viewer_links_to_grafana_and_shows_the_skipped_frames(
    settings: Settings, redis: Redis, chromium_path: Path, artifacts_dir: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    # given a gateway with PITCHSIDE_GRAFANA_URL set, and a live stream whose workers detect
    # every other frame ingest publishes (the test plays both on the bus)
    grafana = "http://127.0.0.1:3000/grafana"
    configured = Settings.from_env({"PITCHSIDE_GRAFANA_URL": f"{grafana}/"}).grafana_url
    jpeg = require_asset(IMAGES_DIR / "frame_40cd38_7_6.jpg").read_bytes()
    await live_stream(redis, "cam-1")
    producer = asyncio.create_task(every_other_frame(redis, "cam-1", jpeg=jpeg))
    try:
        async with (
            serve(settings.replace(grafana_url=configured)) as gateway,
            async_playwright() as pw,
        ):
            browser = await pw.chromium.launch(executable_path=str(chromium_path), args=FLAGS)
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                # when the viewer opens (it selects the live stream by itself)
                await page.goto(gateway.http_url + "/")
                # then the header links to the overview dashboard, the stream to its own
                overview = page.locator("#grafana")
                await expect(overview).to_be_visible(timeout=15_000)
                await expect(overview).to_have_attribute("href", f"{grafana}/d/pitchside-overview")
                link = page.locator("#grafana-stream")
                await expect(link).to_be_visible(timeout=15_000)
                await expect(link).to_have_attribute(
                    "href", f"{grafana}/d/pitchside-stream?var-stream=cam-1"
                )
                # and the stats line shows ingest at twice the detected rate, the rest skipped
                await page.wait_for_function(
                    "window.pitchside.stats && window.pitchside.stats.fps_shown > 0"
                    " && window.pitchside.statsCount >= 2",
                    timeout=15_000,
                )
                text = await page.locator("#stats").text_content() or ""
                line = STATS_LINE.match(text)
                assert line is not None, text
                assert float(line["fps_in"]) > float(line["detected"]) > 0, text
                assert "skipped" in text and not text.startswith("in 0.0")
                await page.screenshot(path=str(artifacts_dir / "viewer-stats.png"))
            finally:
                await browser.close()
    finally:
        producer.cancel()
