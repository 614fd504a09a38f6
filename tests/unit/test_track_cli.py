"""``pitchside track`` and ``pitchside track-eval`` on a generated scene, through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.scenes import SceneConfig, generate
from pitchside.cli import main
from tracker.mot import read_rows

USAGE = 2
# The scene and floor of tests/unit/test_association.py (HOTA 0.7745 measured there, with
# the association alone): the command runs the same tracker, and its file's two decimals
# change nothing that matters.
SEED, FRAMES = 11, 500
HOTA_FLOOR = 0.74


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate(SceneConfig(frames=FRAMES, seed=SEED)).write(tmp_path_factory.mktemp("s"))


def test_track_writes_tracks_that_track_eval_scores(
    scene_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt, det = scene_files
    out = tmp_path / "tracks.txt"
    # when the detections are tracked
    code = main(["track", "--mot-dets", str(det), "--fps", "25", "--out", str(out)])
    # then one summary line is printed and a tracks file written
    printed = capsys.readouterr().out.splitlines()
    assert code == 0 and len(printed) == 1, printed
    assert f"tracked {FRAMES} frames with bytetrack" in printed[0]
    assert " tracks, " in printed[0] and "ms a frame" in printed[0] and str(out) in printed[0]
    rows = read_rows(out, "tracks")
    assert {r.frame for r in rows} <= set(range(1, FRAMES + 1)) and len({r.id for r in rows}) > 19
    # when they are scored, then the figures are printed under their names
    assert main(["track-eval", "--gt", str(gt), "--pred", str(out)]) == 0
    names, values, what = capsys.readouterr().out.splitlines()
    assert names.split() == ["HOTA", "DetA", "AssA", "IDF1", "MOTA", "MOTP", "IDSW"]
    assert float(values.split()[0]) >= 100 * HOTA_FLOOR
    assert f"{FRAMES} frames; ground truth 23 ids" in what
    # and as JSON, HOTA above the floor measured for this scene
    assert main(["track-eval", "--gt", str(gt), "--pred", str(out), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["hota"] >= HOTA_FLOOR, scores
    assert scores["id_switches"] == int(values.split()[-1])


def test_skipped_frames_are_not_stepped_when_told_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a scene whose detector skipped stretches of frames
    scene = generate(SceneConfig(frames=200, seed=SEED, gaps=True))
    gt, det = scene.write(tmp_path)
    out = tmp_path / "tracks.txt"
    # when tracked, frames absent from the file skipped (not empty)
    args = ["track", "--mot-dets", str(det), "--fps", "25", "--out", str(out)]
    assert main([*args, "--missing-frames", "skipped", "--tracker", "sort"]) == 0
    # then only the frames the detector saw were stepped
    assert f"tracked {len(scene.frames)} frames with sort" in capsys.readouterr().out
    assert main([*args]) == 0  # by default every frame up to the last is stepped
    assert f"tracked {scene.frames[-1]} frames" in capsys.readouterr().out


def _missing_detections(tmp: Path, files: tuple[Path, Path]) -> tuple[list[str], list[str]]:
    missing = tmp / "nope.txt"
    out = str(tmp / "o.txt")
    return ["track", "--mot-dets", str(missing), "--fps", "25", "--out", out], [
        f"no detections file {missing}"
    ]


def _malformed_detections(tmp: Path, files: tuple[Path, Path]) -> tuple[list[str], list[str]]:
    det = tmp / "det.txt"
    det.write_text("1,-1,10,20,30,80,0.9\n1,-1,10,20,30\n")
    out = str(tmp / "o.txt")
    args = ["track", "--mot-dets", str(det), "--fps", "25", "--out", out]
    return args, [f"{det}:2:", "at least 6"]


def _zero_fps(tmp: Path, files: tuple[Path, Path]) -> tuple[list[str], list[str]]:
    out = str(tmp / "o.txt")
    return ["track", "--mot-dets", str(files[1]), "--fps", "0", "--out", out], [
        "--fps",
        "must be positive, got '0'",
    ]


def _out_in_no_folder(tmp: Path, files: tuple[Path, Path]) -> tuple[list[str], list[str]]:
    out = str(tmp / "no" / "o.txt")
    return ["track", "--mot-dets", str(files[1]), "--fps", "25", "--out", out], [
        "--out must be a file in an existing folder",
        out,
    ]


def _unknown_tracker(tmp: Path, files: tuple[Path, Path]) -> tuple[list[str], list[str]]:
    args = ["track", "--mot-dets", str(files[1]), "--fps", "25", "--out", str(tmp / "o.txt")]
    return [*args, "--tracker", "deepsort"], ["--tracker", "invalid choice: 'deepsort'"]


def _missing_tracks(tmp: Path, files: tuple[Path, Path]) -> tuple[list[str], list[str]]:
    pred = tmp / "pred.txt"
    return ["track-eval", "--gt", str(files[0]), "--pred", str(pred)], [f"no tracks file {pred}"]


def _malformed_ground_truth(tmp: Path, files: tuple[Path, Path]) -> tuple[list[str], list[str]]:
    gt = tmp / "gt.txt"
    gt.write_text("1,1,10,20,30,80,1,1,1\n\n1,x,10,20,30,80,1,1,1\n")
    return ["track-eval", "--gt", str(gt), "--pred", str(files[0])], [f"{gt}:3:", "ground truth"]


@pytest.mark.parametrize(
    "case",
    [
        _missing_detections,
        _malformed_detections,
        _zero_fps,
        _out_in_no_folder,
        _unknown_tracker,
        _missing_tracks,
        _malformed_ground_truth,
    ],
    ids=lambda case: case.__name__.strip("_"),
)
def test_bad_input_exits_2_with_a_message(
    case: Callable[[Path, tuple[Path, Path]], tuple[list[str], list[str]]],
    scene_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args, words = case(tmp_path, scene_files)
    code = main(args)
    err = capsys.readouterr().err
    assert code == USAGE, err
    assert all(w in err for w in words), err
    assert "Traceback" not in err
    assert not (tmp_path / "o.txt").exists()
