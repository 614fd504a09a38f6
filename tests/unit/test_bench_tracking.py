"""The tracking benchmark's takeover figures, its tracker replay, and how it finds a tracker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench import tracking
from bench.scenes import SceneConfig, generate
from bench.tracking import Seen, takeover_figures
from pitchside.errors import BenchError

S = 1_000_000_000  # ns


def _seen(receipt_s: float, tracker: str | None = None, tracks_s: float | None = None) -> Seen:
    tracks_ns = None if tracks_s is None else int(tracks_s * S)
    return Seen(int(receipt_s * S), round(receipt_s * 25), tracker, tracks_ns)


def test_takeover_counts_from_the_kill_to_the_first_tracks_written_after_it() -> None:
    # given tracker-1 killed at 10 s: one frame it tracked before arrives after the kill,
    # 1.1 s of nothing, bare frames, then tracker-2's tracks from 12.3 s
    seen = [
        _seen(9.96, "tracker-1", 9.95), _seen(10.02, "tracker-1", 9.99),
        _seen(11.12), _seen(11.16), _seen(12.0),
        _seen(12.3, "tracker-2", 12.29), _seen(12.34, "tracker-2", 12.33),
        _seen(20.0, "tracker-2", 19.99),
    ]  # fmt: skip
    # when the takeover is read from what the viewer received
    figures = takeover_figures(seen, kill_ns=10 * S, after_s=2.0)
    # then the frame in flight does not count, the gap does, and so do the bare frames
    assert figures == {
        "untracked_s": 2.3, "resumed_by": "tracker-2", "frames_without_tracks": 3,
        "max_gap_s": 1.1,
    }  # fmt: skip


def test_takeover_is_none_until_tracks_written_after_the_kill_arrive() -> None:
    seen = [_seen(9.96, "tracker-1", 9.95), _seen(10.02, "tracker-1", 9.99), _seen(11.1)]
    assert takeover_figures(seen, kill_ns=10 * S) is None
    assert takeover_figures([], kill_ns=10 * S) is None


def test_replay_decodes_pixels_only_when_the_tracker_asks() -> None:
    # given a short scene and the JPEG of a pitch with two shirt colours
    scene = generate(SceneConfig(frames=60, width=848, height=478))
    image = np.full((478, 848, 3), (40, 140, 40), np.uint8)
    image[:, :424] = (200, 40, 40)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    # when it is replayed without and with pixels
    bare = tracking.replay(scene, None)
    pixels = tracking._Pixels(bytes(buf))
    seen = tracking.replay(scene, pixels)
    # then every frame is timed; pixels are decoded, but not every frame (the stage's gate)
    assert bare["ms"]["n"] == seen["ms"]["n"] == 60 and bare["pixel_frames"] == 0
    assert 0 < seen["pixel_frames"] == pixels.calls < 60 // 2


def test_tracker_pid_finds_the_child_started_with_its_name() -> None:
    # given a child of this process started with --name tracker-7
    code = "import time; time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code, "--name", "tracker-7"])
    try:
        # then it is found by that name, and not by another
        assert tracking.tracker_pid(os.getpid(), "tracker-7") == child.pid
        with pytest.raises(BenchError, match="tracker-8"):
            tracking.tracker_pid(os.getpid(), "tracker-8")
    finally:
        child.kill()
        child.wait(10)


def test_missing_assets_exit_2_with_where_to_put_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tracking.main(["--assets", str(tmp_path), "--only", "time"]) == 2
    err = capsys.readouterr().err
    assert f"no clip at {tmp_path / 'video'}" in err and "../shared" in err
