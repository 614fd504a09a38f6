"""A real Chromium opens the viewer, sees the stream and draws boxes over the live video.

The screenshot is kept in test-artifacts/ for a person to look at. Chromium comes from the
system (/usr/bin/chromium); Playwright's own browser download is not used. Without Chromium the
test is skipped, unless PITCHSIDE_REQUIRE_BROWSER=1 (CI) makes that a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import CLIP
from tests.integration.conftest import Stack

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


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
