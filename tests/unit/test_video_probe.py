"""The upload probe on the real clip and on files made from it: whole, cut short (index at the
end, and faststart), no video at all, no video stream. Frame counts are checked against PyAV
decoding every frame."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from gateway.video_probe import probe_video
from pitchside.errors import BadVideoError
from tests.conftest import CLIP, require_asset


def decoded(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def remux(src: Path, out: Path, packets: int | None = None, faststart: bool = False) -> Path:
    """``src``'s video packets (the first ``packets`` of them) in a new MP4."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(src)) as source, av.open(str(out), "w", format="mp4", options=options) as sink:
        video = source.streams.video[0]
        stream = sink.add_stream_from_template(video)
        for n, packet in enumerate(p for p in source.demux(video) if p.size):
            if packets is not None and n >= packets:
                break
            packet.stream = stream
            sink.mux(packet)
    return out


def test_the_clip_is_described_as_pyav_decodes_it() -> None:
    clip = require_asset(CLIP)
    info = probe_video(clip, "match.mp4")
    assert (info.width, info.height, info.codec) == (848, 478, "h264")
    assert info.frames == decoded(clip)
    assert info.fps == pytest.approx(25, abs=0.1)
    assert info.duration_s == pytest.approx(info.frames / 25, abs=0.1)


@pytest.mark.parametrize("faststart", [False, True], ids=["index-at-end", "faststart"])
def test_a_video_cut_in_half_is_refused_as_cut_short(tmp_path: Path, faststart: bool) -> None:
    whole = remux(require_asset(CLIP), tmp_path / "whole.mp4", faststart=faststart)
    assert probe_video(whole, "whole.mp4").frames == decoded(whole)  # the remux itself is fine
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadVideoError, match="cut.mp4 .*(cut short|cannot be read)"):
        probe_video(cut, "cut.mp4")


def test_a_shorter_whole_video_is_accepted_with_its_own_count(tmp_path: Path) -> None:
    short = remux(require_asset(CLIP), tmp_path / "short.mp4", packets=30)
    assert probe_video(short, "short.mp4").frames == decoded(short) == 30


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"this is a text file, not a video\n" * 50, "not a video file"),
        (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not a video"),
    ],
    ids=["empty", "text", "random"],
)
def test_what_is_no_media_file_is_refused_naming_only_the_users_name(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "secret-server-name.mp4"
    path.write_bytes(content)
    with pytest.raises(BadVideoError, match=message) as caught:
        probe_video(path, "match.mp4")
    assert "match.mp4" in str(caught.value) and "secret-server-name" not in str(caught.value)


def test_a_file_without_a_video_stream_is_refused(tmp_path: Path) -> None:
    sound = tmp_path / "sound.wav"
    with av.open(str(sound), "w") as sink:
        stream = sink.add_stream("pcm_s16le", rate=8000, layout="mono")
        silence = np.zeros((1, 800), np.int16)
        frame = av.AudioFrame.from_ndarray(silence, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            sink.mux(packet)
    with pytest.raises(BadVideoError, match="no video stream"):
        probe_video(sound, "sound.wav")
