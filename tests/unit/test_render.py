"""The annotated video: every source frame, H.264, boxes drawn where the records say, frames
without a record left as they were."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from gateway.render import render_annotated
from pitchside.results import FrameRecord
from tests.conftest import CLIP, require_asset
from tests.unit.test_video_probe import remux

FRAMES = 40
BOX = [100.0, 100.0, 300.0, 400.0]


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("render") / "short.mp4"
    return remux(require_asset(CLIP), out, packets=FRAMES)


def test_every_frame_is_written_as_h264_with_its_boxes(short_clip: Path, tmp_path: Path) -> None:
    # given records for the even frames only, one player box each
    det = {"box": BOX, "score": 0.9, "cls": 2, "label": "player"}
    records = [FrameRecord(seq, seq * 40_000_000, [det]) for seq in range(0, FRAMES, 2)]
    out = tmp_path / "annotated.mp4"
    seen: list[int] = []
    # when the clip is rendered
    written = render_annotated(short_clip, records, out, progress=seen.append)
    # then it is an H.264 MP4 of every frame at the source's size, and nothing else is left
    assert written == FRAMES and seen[-1] == FRAMES
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (848, 478)
    assert [p.name for p in tmp_path.iterdir()] == ["annotated.mp4"]
    source, rendered = frames_of(short_clip), frames_of(out)
    assert len(rendered) == FRAMES
    # and the box's edge differs from the source on the frames with a record, not elsewhere
    x1, y1, x2, y2 = (int(v) for v in BOX)
    edge = np.s_[y1 + 20 : y2 - 20, x1 - 1 : x1 + 2]  # the left side, below any label
    for seq, (src, got) in enumerate(zip(source, rendered, strict=True)):
        change = np.abs(src[edge].astype(int) - got[edge].astype(int)).mean()
        whole = np.abs(src.astype(int) - got.astype(int)).mean()
        if seq % 2 == 0:
            assert change > 25, (seq, change)
        else:
            assert change < 15 and whole < 6, (seq, change, whole)  # only encoding noise


def test_a_source_that_is_not_a_video_leaves_no_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    out = tmp_path / "annotated.mp4"
    with pytest.raises(av.FFmpegError):
        render_annotated(bad, [], out)
    assert list(tmp_path.iterdir()) == [bad]
