"""A real Chromium publishes its camera with the viewer's "Go live with this camera" (WHIP).

The camera is Chromium's fake capture device playing a Y4M file made from the shared clip, so
the published video has people in it for the COCO test model. Everything stays on loopback:
the stack offers ICE candidates on 127.0.0.1 only (the stack fixture's
PITCHSIDE_ICE_ADDRESSES), and the browser's offer reaches the server with its 127.0.0.1
candidates only (see :func:`_loopback_candidates_only`). Without Chromium the tests are
skipped, unless PITCHSIDE_REQUIRE_BROWSER=1 makes that a failure.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.conftest import CLIP, require_asset
from tests.integration.conftest import Stack
from tests.integration.test_browser import FLAGS, chromium_path  # noqa: F401

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

pytestmark = [pytest.mark.slow, pytest.mark.browser]

LOOPBACK = "127.0.0.1"
CAMERA_S = 3  # of the clip in the fake camera's file; Chromium plays it in a loop
CAMERA_FPS = 25
CLIP_SIZE = (848, 478)
#: Bound on the stream going live: ICE and DTLS on loopback, then VP8 both ways on busy cores.
LIVE_S = 60.0
GO_LIVE = "Go live with this camera"
#: Keeps the page's peer connections where the test can read their ICE stats.
RECORD_PEERS = """
window.testPeers = [];
window.RTCPeerConnection = class extends window.RTCPeerConnection {
  constructor(...args) { super(...args); window.testPeers.push(this); }
};
"""
#: [local, remote] addresses of the ICE candidate pair the publisher's connection uses.
SELECTED_PAIR = """async () => {
  const stats = [...(await window.testPeers.at(-1).getStats()).values()];
  const byId = new Map(stats.map((s) => [s.id, s]));
  const pair = byId.get(stats.find((s) => s.type === "transport").selectedCandidatePairId);
  return [byId.get(pair.localCandidateId).address, byId.get(pair.remoteCandidateId).address];
}"""


@pytest.fixture(scope="module")
def fake_camera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first seconds of the clip as a Y4M file (a text header, then raw I420 frames)."""
    import av

    path = tmp_path_factory.mktemp("camera") / "clip.y4m"
    with av.open(str(require_asset(CLIP))) as container, path.open("wb") as out:
        stream = container.streams.video[0]
        w, h = stream.codec_context.width, stream.codec_context.height
        out.write(f"YUV4MPEG2 W{w} H{h} F{CAMERA_FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for n, frame in enumerate(container.decode(stream)):
            if n == CAMERA_S * CAMERA_FPS:
                break
            # yuv420p as one (h * 3/2, w) array: the Y, U and V planes without row padding
            out.write(b"FRAME\n" + frame.to_ndarray(format="yuv420p").tobytes())
    return path


def _loopback_candidates_only(route: Route, offers: list[str]) -> None:
    """Pass the WHIP offer on with its 127.0.0.1 candidates only.

    Chromium has no switch to gather on loopback alone: with --allow-loopback-in-peer-connection
    it offers 127.0.0.1 and ::1 besides every other interface's address. Told of 127.0.0.1 only,
    the server (itself on 127.0.0.1 only) is only ever sent to and answers from this host.
    """
    request = route.request
    if request.method != "POST" or request.post_data is None:
        route.continue_()
        return
    lines = request.post_data.split("\r\n")
    kept = [x for x in lines if not x.startswith("a=candidate:") or x.split()[4] == LOOPBACK]
    offers.append("\r\n".join(kept))
    route.continue_(post_data=offers[-1])


@pytest.fixture
def viewer(
    chromium_path: Path,  # noqa: F811 (test_browser's fixture, imported above)
    fake_camera: Path,
    stack: Stack,
) -> Iterator[tuple[Page, list[str]]]:
    """The viewer in a Chromium whose camera plays the clip, and the offers it sent."""
    from playwright.sync_api import sync_playwright

    args = [
        *FLAGS,
        "--use-fake-device-for-media-stream",  # a camera that plays a file
        f"--use-file-for-fake-video-capture={fake_camera}",
        "--use-fake-ui-for-media-stream",  # grant the camera without asking
        "--allow-loopback-in-peer-connection",  # else no 127.0.0.1 candidate at all
        # Hidden local IPs become .local mDNS names aiortc cannot resolve (with camera
        # permission Chromium shows them anyway; this keeps it so if that ever changes).
        "--disable-features=WebRtcHideLocalIpsWithMdns",
    ]
    offers: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium_path), args=args)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.route("**/whip/**", lambda route: _loopback_candidates_only(route, offers))
            page.add_init_script(RECORD_PEERS)
            page.goto(stack.base_url + "/")
            yield page, offers
        finally:
            browser.close()


def _go_live(page: Page, sid: str) -> str:
    """Type ``sid``, click the button, and return the publish state it settles in."""
    page.fill("#publish-sid", sid)
    page.get_by_role("button", name=GO_LIVE).click()
    page.wait_for_function(
        "['live', 'error'].includes(window.pitchside.publish.state)", timeout=LIVE_S * 1000
    )
    return page.evaluate("window.pitchside.publish.state")


def _wait_state(stack: Stack, sid: str, state: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        info = httpx.get(f"{stack.base_url}/api/streams/{sid}", timeout=5).json()
        if info.get("state") == state or time.monotonic() > deadline:
            return info
        time.sleep(0.2)


def test_go_live_publishes_the_camera_as_a_live_stream_with_boxes(
    stack: Stack, viewer: tuple[Page, list[str]], artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    page, offers = viewer
    sid = "camera-1"
    # when the user goes live with the (fake) camera
    state = _go_live(page, sid)
    # then the offer held loopback candidates, the connection is up and the button stops it
    assert state == "live", page.evaluate("window.pitchside.publish")
    candidates = [x for x in offers[0].split("\r\n") if x.startswith("a=candidate:")]
    assert any(c.split()[2] == "udp" for c in candidates), offers[0]
    expect(page.locator("#publish")).to_have_text("Stop camera")
    # and the stream is listed as live and shown with the model's boxes
    item = page.locator(f'#streams li[data-sid="{sid}"]')
    expect(item).to_have_attribute("data-state", "live", timeout=LIVE_S * 1000)
    page.wait_for_function(
        f"window.pitchside.sid === '{sid}' && window.pitchside.framesShown >= 10"
        " && window.pitchside.lastBoxes > 0",
        timeout=LIVE_S * 1000,
    )
    info = httpx.get(f"{stack.base_url}/api/streams/{sid}", timeout=5).json()
    assert info["state"] == "live", info
    assert info["source"] == "WebRTC publisher (WHIP)", info
    # and at the camera's full size, with people found: the browser keeps the resolution and
    # starts at the bitrate ingest's answer asks for (else 424x239 at 190 kbps: no one seen)
    assert (info["width"], info["height"]) == CLIP_SIZE, info
    expect(page.locator('#class-toggles input[data-label="person"]')).to_have_count(1)
    # and the server's end of the media path is 127.0.0.1 (Chromium's end may be its socket on
    # another address of this host: it prefers the lower network cost, Ethernet 0, loopback 50)
    local, remote = page.evaluate(SELECTED_PAIR)
    assert remote == LOOPBACK, (local, remote)
    page.screenshot(path=str(artifacts_dir / "viewer-whip.png"))
    # when the user stops the camera
    page.get_by_role("button", name="Stop camera").click()
    # then the session ends: the stream is stopped and the button offers to go live again
    info = _wait_state(stack, sid, "stopped", timeout_s=15)
    assert info["state"] == "stopped", info
    expect(page.locator("#publish")).to_have_text(GO_LIVE)
    assert page.evaluate("window.pitchside.publish.state") == "idle"


def test_go_live_shows_the_servers_409_when_the_id_is_running(
    stack: Stack, viewer: tuple[Page, list[str]]
) -> None:
    from playwright.sync_api import expect

    page, _ = viewer
    # given a file stream running as "taken", and what the server says to publishing that id
    response = stack.start_stream("taken", CLIP, loop=True)
    assert response.status_code == 201, response.text
    refused = httpx.post(
        f"{stack.base_url}/whip/taken",
        content="v=0\r\n",
        headers={"content-type": "application/sdp"},
        timeout=30,
    )
    assert refused.status_code == 409, refused.text
    try:
        # when the user goes live as "taken"
        state = _go_live(page, "taken")
        # then the page shows the server's reason and the camera is off again
        assert state == "error", page.evaluate("window.pitchside.publish")
        expect(page.locator("#publish-status")).to_contain_text(refused.json()["detail"])
        expect(page.locator("#publish-status")).to_contain_text("409")
        expect(page.locator("#publish")).to_have_text(GO_LIVE)
        expect(page.locator("#preview")).to_be_hidden()
    finally:
        httpx.delete(f"{stack.base_url}/api/streams/taken", timeout=30)


def test_deleting_the_published_stream_turns_the_camera_off(
    stack: Stack, viewer: tuple[Page, list[str]]
) -> None:
    from playwright.sync_api import expect

    page, _ = viewer
    # given the camera live as "camera-2"
    assert _go_live(page, "camera-2") == "live", page.evaluate("window.pitchside.publish")
    # when the user deletes that stream from the list
    page.locator('#streams li[data-sid="camera-2"] button.delete').click()
    # then the page says so and offers to go live again, well before ICE would notice
    expect(page.locator("#publish-status")).to_contain_text("ended on the server", timeout=10_000)
    expect(page.locator("#publish")).to_have_text(GO_LIVE)
    assert page.evaluate("window.pitchside.publish.state") == "error"
