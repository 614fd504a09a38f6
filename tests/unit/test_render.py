"""The annotated video: every source frame, H.264 in a faststart MP4, boxes drawn where the
records say (scaled to source pixels), frames without a record left as they were, and ``out``
written whole or not at all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import av
import numpy as np
import numpy.typing as npt
import pytest

from gateway.render import render_annotated
from pitchside.errors import BadVideoError
from pitchside.results import FrameRecord
from tests.conftest import CLIP, require_asset
from tests.unit.test_video_probe import remux

Image = npt.NDArray[np.uint8]
FRAMES = 40  # a prefix of the clip: its one GOP decodes from any cut
DRAWN = (0, 1, 7, 20, 39)  # seqs with a record; the others have none
SCALE = 2.0  # the analysis ran at half the source's size
BOX = [50.0, 50.0, 150.0, 200.0]  # analysed pixels: 100..300 x 100..400 in the source
LEFT_EDGE = np.s_[120:380, 99:102]  # source pixels on the box's left side, below its label


@dataclass(frozen=True, slots=True)
class Rendered:
    source: list[Image]
    frames: list[Image]
    written: int
    progress: list[int]
    out: Path


def frames_of(path: Path) -> list[Image]:
    with av.open(str(path)) as container:
        return [cast(Image, f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]


def difference(a: Image, b: Image) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return remux(
        require_asset(CLIP), tmp_path_factory.mktemp("source") / "short.mp4", packets=FRAMES
    )


@pytest.fixture(scope="module")
def rendered(short_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    labels = ("player", "goalkeeper", "referee", "ball")
    records = [
        FrameRecord(seq, seq * 40_000_000,
                    [{"box": BOX, "score": 0.87, "cls": seq % 4, "label": labels[seq % 4]}])
        for seq in DRAWN
    ]  # fmt: skip
    out = tmp_path_factory.mktemp("render") / "annotated.mp4"
    seen: list[int] = []
    written = render_annotated(short_clip, iter(records), out, scale=SCALE, progress=seen.append)
    return Rendered(frames_of(short_clip), frames_of(out), written, seen, out)


def test_every_source_frame_is_written_as_h264_at_the_sources_size_and_rate(
    short_clip: Path, rendered: Rendered
) -> None:
    assert rendered.written == len(rendered.frames) == len(rendered.source) == FRAMES
    assert rendered.progress == [25, FRAMES]
    with av.open(str(short_clip)) as source, av.open(str(rendered.out)) as out:
        src, got = source.streams.video[0], out.streams.video[0]
        assert (got.codec_context.name, got.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (got.width, got.height) == (src.width, src.height)
        assert got.average_rate == src.average_rate
    data = rendered.out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # faststart: plays before it has all
    assert [p.name for p in rendered.out.parent.iterdir()] == ["annotated.mp4"]  # no temp left


def test_boxes_are_drawn_scaled_on_the_frames_with_a_record_only(rendered: Rendered) -> None:
    for seq, (src, got) in enumerate(zip(rendered.source, rendered.frames, strict=True)):
        edge = difference(src[LEFT_EDGE], got[LEFT_EDGE])
        if seq in DRAWN:
            assert edge > 25, (seq, edge)
            inside = np.s_[150:350, 150:250]  # the box's inside is left as it was
            assert difference(src[inside], got[inside]) < 6, seq
        else:
            assert edge < 15 and difference(src, got) < 6, seq  # encoding noise only


def test_a_failed_render_leaves_the_old_output_and_no_temporary_file(
    short_clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "annotated.mp4"
    out.write_bytes(b"the previous render")

    def stop(frames: int) -> None:
        raise RuntimeError(f"stopped at frame {frames}")

    with pytest.raises(RuntimeError, match="stopped at frame 25"):
        render_annotated(short_clip, [], out, progress=stop)
    assert out.read_bytes() == b"the previous render"
    assert [p.name for p in tmp_path.iterdir()] == ["annotated.mp4"]


def test_a_source_that_is_not_a_video_leaves_no_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    out = tmp_path / "annotated.mp4"
    with pytest.raises(av.FFmpegError):
        render_annotated(bad, [], out)
    assert list(tmp_path.iterdir()) == [bad]


def test_a_source_whose_frames_stop_decoding_is_refused(short_clip: Path, tmp_path: Path) -> None:
    # given a video whose packets after the tenth are noise
    broken = remux(short_clip, tmp_path / "broken.mp4", noise=lambda i, n: i >= 10)
    out = tmp_path / "annotated.mp4"
    with pytest.raises(BadVideoError, match="stops decoding after frame"):
        render_annotated(broken, [], out)
    assert not out.exists()
