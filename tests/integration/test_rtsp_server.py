"""The test RTSP server itself, seen from PyAV as an RTSP camera source will see it."""

from __future__ import annotations

import time

import av
import av.error
import pytest

from tests.integration.rtsp import RtspServer, rtsp_server_fixture  # noqa: F401

TRANSPORTS = ["tcp", "udp"]
CLIP_SIZE = (848, 478)
PATTERN_SIZE = (640, 360)
#: Bound on decoding the frames a test asks for: FFmpeg probes for about 1 s before the first.
DECODE_S = 10.0


def open_rtsp(url: str, transport: str) -> av.container.InputContainer:
    return av.open(url, options={"rtsp_transport": transport}, timeout=(5, 5))


def decode(url: str, transport: str, frames: int) -> list[av.VideoFrame]:
    """The first ``frames`` decoded frames of ``url``, within ``DECODE_S``."""
    deadline = time.monotonic() + DECODE_S
    out: list[av.VideoFrame] = []
    with open_rtsp(url, transport) as container:
        for frame in container.decode(video=0):
            out.append(frame)
            if len(out) == frames or time.monotonic() > deadline:
                break
    return out


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("path", "size"), [("clip", CLIP_SIZE), ("pattern", PATTERN_SIZE)])
def test_rtsp_server_serves_video_of_the_mounts_size(
    rtsp_server: RtspServer, path: str, size: tuple[int, int], transport: str
) -> None:
    # when: a client reads /clip or /pattern over TCP or UDP
    frames = decode(rtsp_server.url(path), transport, frames=10)
    # then: it decodes frames of that mount's size
    assert len(frames) == 10, f"/{path} over {transport}: {len(frames)} frames in {DECODE_S} s"
    sizes = {(f.width, f.height) for f in frames}
    assert sizes == {size}, f"/{path} over {transport}: sizes {sizes}, expected {size}"


@pytest.mark.slow
def test_rtsp_server_loops_the_clip_past_its_length(rtsp_server: RtspServer) -> None:
    # given: the clip lasts 6.75 s; the stream is paced in real time
    until_s, bound_s = 10.0, 20.0
    deadline = time.monotonic() + bound_s
    times: list[float] = []
    # when: a client reads /clip for more than 10 s of stream time
    with open_rtsp(rtsp_server.url("clip"), "tcp") as container:
        for frame in container.decode(video=0):
            if frame.time is not None:  # FFmpeg gives the first frame no pts
                times.append(float(frame.time))
            if (times and times[-1] >= until_s) or time.monotonic() > deadline:
                break
    # then: frames keep coming past the clip's end, 25 a second, with no jump at the loop
    assert times[-1] >= until_s, f"stream time reached {times[-1]:.2f} s in {bound_s} s"
    steps = {round(b - a, 3) for a, b in zip(times, times[1:], strict=False)}
    assert steps == {0.04}, f"frame steps {sorted(steps)} s, expected only 0.04 s"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rtsp_server_admits_the_user_to_secure(rtsp_server: RtspServer, transport: str) -> None:
    # when: a client reads /secure with the right credentials (percent-encoded in the URL)
    url = rtsp_server.url("secure", rtsp_server.user, rtsp_server.password)
    frames = decode(url, transport, frames=5)
    # then: it decodes the pattern
    assert [(f.width, f.height) for f in frames] == [PATTERN_SIZE] * 5


@pytest.mark.parametrize(
    ("user", "password"),
    [(None, None), ("camera", "wrong"), ("intruder", "pitch side:s3cret@1"), ("camera", None)],
    ids=["no-credentials", "wrong-password", "wrong-user", "no-password"],
)
def test_rtsp_server_answers_401_on_secure_when_credentials_are_wrong(
    rtsp_server: RtspServer, user: str | None, password: str | None
) -> None:
    # when: a client opens /secure without the right credentials
    with pytest.raises(av.error.HTTPUnauthorizedError) as caught:
        open_rtsp(rtsp_server.url("secure", user, password), "tcp")
    # then: FFmpeg reports the server's 401
    assert "401 Unauthorized" in str(caught.value)


@pytest.mark.parametrize("path", ["nope", "clip/extra", ""])
def test_rtsp_server_answers_404_for_an_unknown_path(rtsp_server: RtspServer, path: str) -> None:
    with pytest.raises(av.error.HTTPNotFoundError) as caught:
        open_rtsp(rtsp_server.url(path), "tcp")
    assert "404 Not Found" in str(caught.value)


def test_rtsp_server_serves_again_on_the_same_port_after_a_restart(
    rtsp_server: RtspServer,
) -> None:
    # given: a client has read the pattern
    port = rtsp_server.port
    assert len(decode(rtsp_server.url("pattern"), "tcp", frames=3)) == 3
    # when: the server stops
    rtsp_server.stop()
    # then: the camera is gone
    with pytest.raises(av.error.ConnectionRefusedError):
        open_rtsp(rtsp_server.url("pattern"), "tcp")
    # when: it starts again
    rtsp_server.start()
    # then: it serves on the same port
    assert rtsp_server.port == port
    assert len(decode(rtsp_server.url("pattern"), "tcp", frames=3)) == 3


def test_rtsp_server_ends_a_clients_stream_when_it_stops(rtsp_server: RtspServer) -> None:
    # given: a client is reading /clip
    with open_rtsp(rtsp_server.url("clip"), "tcp") as container:
        frames = container.decode(video=0)
        next(frames)
        # when: the server stops
        rtsp_server.stop()
        # then: the client's stream ends (as end of stream, not an error) within the read timeout
        deadline = time.monotonic() + DECODE_S
        rest = 0
        for _ in frames:
            rest += 1
            assert time.monotonic() < deadline, f"still {rest} frames {DECODE_S} s after the stop"
