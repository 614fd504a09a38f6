"""HTTP(S) video files and HLS playlists through the ingest service, from a loopback server."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from pitchside.schema import Mode, StreamState
from tests.conftest import CLIP, require_asset
from tests.integration.test_ingest import (
    IngestFactory,
    make_ingest_fixture,  # noqa: F401
)

CLIP_FRAMES = 169


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        pass


@pytest.fixture
def web_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1, and its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _hls_of(clip: Path, folder: Path) -> Path:
    """The clip remuxed (no re-encoding) into an HLS VOD playlist of 2 s segments."""
    playlist = folder / "match.m3u8"
    with (
        av.open(str(clip)) as src,
        av.open(
            str(playlist), "w", format="hls", options={"hls_time": "2", "hls_playlist_type": "vod"}
        ) as out,
    ):
        video = src.streams.video[0]
        stream = out.add_stream_from_template(video)
        for packet in src.demux(video):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
    return playlist


@pytest.mark.parametrize("kind", ["mp4", "hls"])
async def test_http_video_plays_through_to_the_end(
    make_ingest: IngestFactory, web_root: tuple[Path, str], kind: str
) -> None:
    # given the clip on a web server, as an MP4 file or as an HLS playlist of segments
    folder, base = web_root
    if kind == "mp4":
        (folder / "match.mp4").write_bytes(require_asset(CLIP).read_bytes())
        url = f"{base}/match.mp4"
    else:
        url = f"{base}/{_hls_of(require_asset(CLIP), folder).name}"
    ingest = await make_ingest(analyse_max_lag=250)
    # when it is started by URL (analyse mode: as fast as it decodes)
    reply = await ingest.start(f"web-{kind}", url, Mode.ANALYSE)
    # then every frame of the clip is published in order, and the stream ends
    assert (reply.ok, reply.status) == (True, 201), reply
    info = await ingest.wait_state(f"web-{kind}", StreamState.ENDED, timeout_s=60)
    frames = await ingest.frames(f"web-{kind}")
    assert len(frames) == info.frames == CLIP_FRAMES
    assert [f.seq for f in frames] == list(range(CLIP_FRAMES))
    assert all(b.pts_ns > a.pts_ns for a, b in zip(frames, frames[1:], strict=False))
    assert (frames[0].w, frames[0].h) == (848, 478)


async def test_http_source_that_is_not_there_is_refused_with_404(
    make_ingest: IngestFactory, web_root: tuple[Path, str]
) -> None:
    _, base = web_root
    ingest = await make_ingest()
    reply = await ingest.start("web-missing", f"{base}/nope.mp4")
    assert (reply.ok, reply.status) == (False, 422), reply
    assert reply.error is not None and "404 not found" in reply.error, reply.error
    assert (await ingest.info("web-missing")).state is StreamState.FAILED
