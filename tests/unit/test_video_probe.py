"""video_probe.probe_video: what a video is, and every way an upload can be unreadable.

The bad files are built in tmp_path from the shared clip with PyAV (a remuxed prefix, bytes
cut off, packets replaced by noise) or from bytes; every frame count is checked against a
full decode.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from gateway.video_probe import VideoInfo, probe_video
from pitchside.errors import BadVideoError
from tests.conftest import CLIP, require_asset

NAME = "match.mp4"  # the user's name for every upload; the server's path is tmp_path/...


@pytest.fixture(scope="module")
def clip() -> Path:
    return require_asset(CLIP)


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


def remux(src: Path, dst: Path, *, packets: int | None = None, faststart: bool = False,
          noise: Callable[[int, int], bool] = lambda i, n: False) -> Path:  # fmt: skip
    """Copy the first ``packets`` video packets of ``src``; ``noise(i, n)`` replaces packet
    ``i`` of ``n`` by random bytes of its size."""
    rng = np.random.default_rng(0)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(src)) as source, av.open(str(dst), "w", format="mp4", options=options) as sink:
        stream = source.streams.video[0]
        video = sink.add_stream_from_template(stream)
        kept = [p for p in source.demux(stream) if p.size][:packets]
        for i, packet in enumerate(kept):
            copied: av.Packet[Any] = packet
            if noise(i, len(kept)):
                copied = av.Packet(rng.bytes(packet.size))
                copied.pts, copied.dts, copied.duration = packet.pts, packet.dts, packet.duration
                copied.time_base, copied.is_keyframe = packet.time_base, packet.is_keyframe
            copied.stream = video
            sink.mux(copied)
    return dst


def encode(src: Path, dst: Path, fmt: str, *, frames: int = 60) -> Path:
    """Re-encode the first ``frames`` of ``src`` with a keyframe every 12 and B-frames."""
    with av.open(str(src)) as source, av.open(str(dst), "w", format=fmt) as sink:
        stream = source.streams.video[0]
        video = sink.add_stream("libx264", rate=25, options={
            "preset": "ultrafast", "crf": "30", "x264-params": "keyint=12:min-keyint=12:bframes=2",
        })  # fmt: skip
        video.width, video.height, video.pix_fmt = stream.width, stream.height, "yuv420p"
        for i, frame in enumerate(source.decode(stream)):
            if i == frames:
                break
            frame.pts, frame.time_base = i, Fraction(1, 25)
            sink.mux(video.encode(frame))
        sink.mux(video.encode(None))
    return dst


def keyframes(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
    return [i for i, p in enumerate(packets) if p.is_keyframe]


def refused(path: Path, match: str) -> str:
    with pytest.raises(BadVideoError, match=match) as caught:
        probe_video(path, NAME)
    message = str(caught.value)
    assert NAME in message and str(path.parent) not in message  # the user's name, no path
    return message


def test_probe_reads_the_shared_clip(clip: Path) -> None:
    info = probe_video(clip, "08fd33_4.mp4")
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        first = next(container.decode(stream))
        rate = stream.average_rate
    assert rate is not None
    assert info.duration_s == pytest.approx(6.7533, abs=1e-3) and info.fps == float(rate)
    assert info == VideoInfo(info.duration_s, info.fps, first.width, first.height,
                             decoded_frames(clip), codec="h264", container="mp4")  # fmt: skip


@pytest.mark.parametrize(
    ("build", "container"),
    [(lambda c, d: remux(c, d / "prefix", packets=60), "mov"),
     (lambda c, d: encode(c, d / "gops", "mp4"), "mov"),
     (lambda c, d: encode(c, d / "gops", "matroska"), "matroska")],
    ids=["mp4-prefix", "mp4-gops-bframes", "matroska-no-frame-count"],
)  # fmt: skip
def test_probe_counts_exactly_the_frames_that_decode(
    clip: Path, tmp_path: Path, build: Callable[[Path, Path], Path], container: str
) -> None:
    # given a valid video: one GOP, several with B-frames, or one that declares no frame count
    path = build(clip, tmp_path)
    # then demuxing counts what a full decode gives; the extension-less server name does not
    # name a format, so the demuxer's first name is given
    info = probe_video(path, "upload")
    assert (info.frames, info.container) == (decoded_frames(path), container)


def test_probe_names_the_container_by_the_users_extension(clip: Path, tmp_path: Path) -> None:
    path = encode(clip, tmp_path / "upload", "matroska", frames=12)
    assert probe_video(path, "match.webm").container == "webm"
    assert probe_video(path, "match.MKV").container == "matroska"  # not one of the demuxer's


@pytest.mark.parametrize(
    ("data", "match"),
    [(b"", "is empty"), (b"this is a text file, renamed .mp4\n" * 20, "not a video file"),
     (np.random.default_rng(0).bytes(100_000), "not a video file")],
    ids=["empty", "text", "random-bytes"],
)  # fmt: skip
def test_probe_refuses_what_is_no_media_file(tmp_path: Path, data: bytes, match: str) -> None:
    path = tmp_path / "upload"
    path.write_bytes(data)
    refused(path, match)


def test_probe_refuses_a_media_file_without_video(tmp_path: Path) -> None:
    # given an AAC track in an MP4, the shape of a voice memo
    path = tmp_path / "upload"
    with av.open(str(path), "w", format="mp4") as sink:
        audio = sink.add_stream("aac", rate=48_000, layout="mono")
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")  # fmt: skip
            frame.sample_rate, frame.pts = 48_000, i * 1024
            sink.mux(audio.encode(frame))
        sink.mux(audio.encode(None))
    refused(path, "no video stream \\(it holds audio\\)")


def test_probe_refuses_frames_that_do_not_decode(clip: Path, tmp_path: Path) -> None:
    # given an MP4 whose index is whole but whose every packet is noise
    path = remux(clip, tmp_path / "upload", noise=lambda i, n: True)
    refused(path, "do not decode")


def test_probe_refuses_a_video_whose_last_frames_do_not_decode(clip: Path, tmp_path: Path) -> None:
    # given several GOPs, the last one noise but for its keyframe: it starts and demuxes well
    gops = encode(clip, tmp_path / "gops", "mp4")
    last_key = keyframes(gops)[-1]
    path = remux(gops, tmp_path / "upload", noise=lambda i, n: i > last_key)
    refused(path, "the last frames of match.mp4 do not decode")


def test_probe_refuses_an_mp4_cut_short_with_its_index_at_the_end(
    clip: Path, tmp_path: Path
) -> None:
    # given an MP4 as most cameras write it, moov after mdat, cut in half: it does not open
    whole = remux(clip, tmp_path / "whole").read_bytes()
    assert whole.index(b"mdat") < whole.index(b"moov")
    path = tmp_path / "upload"
    path.write_bytes(whole[: len(whole) // 2])
    refused(path, "cut short \\(its index, the moov atom, is missing\\)")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.95])
def test_probe_refuses_a_faststart_mp4_cut_short_inside_a_frame(
    clip: Path, tmp_path: Path, fraction: float
) -> None:
    # given moov before mdat: the cut file opens and declares every frame, the last is partial
    whole = remux(clip, tmp_path / "whole", faststart=True).read_bytes()
    assert whole.index(b"moov") < whole.index(b"mdat")
    path = tmp_path / "upload"
    path.write_bytes(whole[: int(len(whole) * fraction)])
    refused(path, "cut short")


def test_probe_refuses_a_faststart_mp4_cut_between_frames(clip: Path, tmp_path: Path) -> None:
    # given a cut just after a packet ends: nothing is partial, only frames are missing
    whole = remux(clip, tmp_path / "whole", faststart=True)
    with av.open(str(whole)) as container:
        stream = container.streams.video[0]
        declared = stream.frames
        hundredth = [p for p in container.demux(stream) if p.size][99]
    assert hundredth.pos is not None
    path = tmp_path / "upload"
    path.write_bytes(whole.read_bytes()[: hundredth.pos + hundredth.size])
    refused(path, f"declares {declared} frames but holds 100")


def test_probe_refuses_a_matroska_cut_short(clip: Path, tmp_path: Path) -> None:
    # given a Matroska, which declares a duration but no frame count, cut in half
    whole = encode(clip, tmp_path / "whole", "matroska", frames=120).read_bytes()
    path = tmp_path / "upload"
    path.write_bytes(whole[: len(whole) // 2])
    refused(path, "cut short: it ends at")
