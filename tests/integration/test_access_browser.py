"""A real Chromium opens the viewer of a gateway that asks for a token: it asks once, refuses a
wrong token, then shows the stream; the session cookie keeps it signed in across a reload,
out of the page's reach (HttpOnly); a viewer token's page hides the controls.

Chromium comes from the system, as in test_browser.py (skipped without it, unless
PITCHSIDE_REQUIRE_BROWSER=1).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.asyncio import Redis

from pitchside.settings import Settings
from tests.conftest import IMAGES_DIR, require_asset
from tests.integration import test_browser
from tests.integration.test_access import OPERATOR, VIEWER
from tests.integration.test_browser import FLAGS
from tests.integration.test_ws import every_other_frame, live_stream, serve

pytestmark = [pytest.mark.slow, pytest.mark.browser]

chromium_path = test_browser.chromium_path  # the fixture: the system Chromium, or a skip


async def test_viewer_asks_for_the_token_once_then_shows_the_stream(
    settings: Settings, redis: Redis, chromium_path: Path, artifacts_dir: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    # given a gateway with an operator and a viewer token, and a live stream with detections
    secured = settings.replace(token=OPERATOR, viewer_token=VIEWER)
    jpeg = require_asset(IMAGES_DIR / "frame_40cd38_7_6.jpg").read_bytes()
    await live_stream(redis, "cam-1")
    producer = asyncio.create_task(every_other_frame(redis, "cam-1", jpeg=jpeg))
    try:
        async with serve(secured) as gateway, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(chromium_path), args=FLAGS)
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                # when the viewer opens
                await page.goto(gateway.http_url + "/")
                # then it asks for the token
                dialog = page.locator("#signin")
                await expect(dialog).to_be_visible(timeout=15_000)
                # and a wrong one is refused in the dialog, which stays open
                await page.fill("#signin-token", "not-the-token-at-all")
                await page.click("#signin-form button")
                await expect(page.locator("#signin-error")).to_have_text(
                    "That token is not valid.", timeout=10_000
                )
                await expect(dialog).to_be_visible()
                # when the viewer token is given
                await page.fill("#signin-token", VIEWER)
                await page.click("#signin-form button")
                # then the dialog goes and the stream is drawn with its boxes, having asked once
                await expect(dialog).to_be_hidden(timeout=10_000)
                await page.wait_for_function(
                    "window.pitchside.framesShown > 3 && window.pitchside.lastBoxes > 0",
                    timeout=20_000,
                )
                assert await page.evaluate("window.pitchsideAuth.prompts") == 1
                assert await page.evaluate("window.pitchsideAuth.role") == "viewer"
                # and the page holds neither the token nor the cookie (HttpOnly)
                assert await page.evaluate("document.cookie") == ""
                assert await page.input_value("#signin-token") == ""
                # and a viewer's page offers no control that changes anything
                await expect(page.locator("#start-form")).to_be_hidden()
                await expect(page.locator("#upload-form")).to_be_hidden()
                await page.screenshot(path=str(artifacts_dir / "viewer-signed-in.png"))
                # when the page is loaded again
                await page.reload()
                # then the session carries on: frames without a prompt
                await page.wait_for_function("window.pitchside.framesShown > 3", timeout=20_000)
                assert await page.evaluate("window.pitchsideAuth.prompts") == 0
                await expect(dialog).to_be_hidden()
            finally:
                await browser.close()
    finally:
        producer.cancel()
