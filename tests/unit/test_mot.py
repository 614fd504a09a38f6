"""MOTChallenge files: read, written, scored as TrackEval scores them; clear errors on bad lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from trackers.eval import evaluate_mot_sequence

from bench.scenes import SceneConfig, generate
from tracker.association import Association
from tracker.mot import (
    MotFormatError,
    MotRow,
    read_detections,
    read_rows,
    score,
    track_line,
    write_tracks,
)


def test_tracks_written_are_read_back(tmp_path: Path) -> None:
    # given tracks of two frames
    tracks = [(1, 7, (10.0, 20.0, 40.0, 100.0)), (1, 8, (50.5, 60.25, 80.0, 140.0)),
              (3, 7, (12.0, 21.0, 42.0, 101.0))]  # fmt: skip
    path = tmp_path / "tracks.txt"
    # when they are written and read again
    assert write_tracks(path, tracks) == 3
    rows = read_rows(path, "tracks")
    # then frames, ids and boxes survive, in MOTChallenge's 10 columns
    assert [(r.frame, r.id, r.box) for r in rows] == tracks
    assert path.read_text().splitlines()[1] == "1,8,50.50,60.25,29.50,79.75,1,-1,-1,-1"


def test_a_scene_written_is_read_back(tmp_path: Path) -> None:
    # given a generated scene, with its ball
    scene = generate(SceneConfig(frames=40, seed=3))
    # when it is written as gt.txt and det.txt and read again
    gt_path, det_path = scene.write(tmp_path)
    gt, detections = read_rows(gt_path), read_detections(det_path)
    # then every row comes back, to the file's two decimals
    assert [(r.frame, r.id, r.cls, r.flag) for r in gt] == [
        (r.frame, r.id, r.cls, r.flag) for r in scene.gt
    ]
    assert all(_near(a.box, b.box) for a, b in zip(gt, scene.gt, strict=True))
    assert sorted(detections) == sorted(f for f, d in scene.detections.items() if d)
    for frame, dets in detections.items():
        expected = scene.detections[frame]
        assert [(d.cls, d.label) for d in dets] == [(d.cls, d.label) for d in expected]
        assert all(_near(a.box, b.box) for a, b in zip(dets, expected, strict=True))
    assert {d.label for dets in detections.values() for d in dets} >= {"ball", "player"}


def test_the_class_column_of_detections_is_optional(tmp_path: Path) -> None:
    # given detections with no class, the unused -1 of MOTChallenge, a ball and a referee
    path = tmp_path / "det.txt"
    path.write_text(
        "# a comment, then a blank line\n\n"
        "1,-1,10,20,30,80,0.9\n"
        "1,-1,100,20,30,80,0.8,-1,-1,-1\n"
        "2,-1,200,300,12,12,0.4,0\n"
        "2,-1,300,20,30,80,0.7,3,-1,-1\n"
        "3,-1,10,20,30,80\n"
    )
    # when it is read
    frames = read_detections(path)
    # then the first two are players, then the ball and the referee; no score is 1
    assert [d.label for d in frames[1]] == ["player", "player"]
    assert [(d.label, d.cls) for d in frames[2]] == [("ball", 0), ("referee", 3)]
    assert frames[1][0].box == (10.0, 20.0, 40.0, 100.0)
    assert frames[3][0].score == 1.0


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("1,-1,10,20,30", "at least 6 comma-separated finite numbers"),
        ("1;-1;10;20;30;80;0.9", "at least 6 comma-separated finite numbers"),
        ("one,-1,10,20,30,80,0.9", "'one,-1,10,20,30,80,0.9'"),
        ("1,-1,10,nan,30,80,0.9", "at least 6"),
        ("0,-1,10,20,30,80,0.9", "frames are integers from 1, got 0"),
        ("2.5,-1,10,20,30,80,0.9", "frames are integers from 1, got 2.5"),
        ("1,-1,10,20,-30,80,0.9", "width and height are positive, got -30 x 80"),
        ("1,-1,10,20,30,80,1.5", "score is in [0, 1], got 1.5"),
        ("1,-1,10,20,30,80,0.9,7", "0 ball, 1 goalkeeper, 2 player, 3 referee; got 7"),
        ("1,-1,10,20,30,80,0.9,1.5", "class id"),
    ],
)
def test_a_malformed_detection_names_the_file_and_the_line(
    tmp_path: Path, line: str, words: str
) -> None:
    # given a detections file whose third line is malformed
    path = tmp_path / "det.txt"
    path.write_text(f"1,-1,10,20,30,80,0.9\n\n{line}\n")
    # when it is read, then the error names the file, the line and what is wrong
    with pytest.raises(MotFormatError) as caught:
        read_detections(path)
    assert str(caught.value).startswith(f"{path}:3: ")
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("1,2.5,10,20,30,80,1,1,1", "an id is an integer, got 2.5"),
        ("1,2,10,20,30,80,1,1.5,1", "a class is an integer, got 1.5"),
        ("1,2,10,20,30,0,1,1,1", "width and height are positive"),
        ("1,2,10,20,30", "a ground truth row is 'frame,id,x,y,w,h,...'"),
        ("2,1,50,20,30,80,1,1,1", "id 1 is in frame 2 twice (first on line 2)"),
    ],
)
def test_a_malformed_ground_truth_row_names_the_file_and_the_line(
    tmp_path: Path, line: str, words: str
) -> None:
    # given a ground-truth file whose third line is malformed
    path = tmp_path / "gt.txt"
    path.write_text(f"1,1,10,20,30,80,1,1,1\n2,1,10,20,30,80,1,1,1\n{line}\n")
    # when it is read, then the error names the file, the line and what is wrong
    with pytest.raises(MotFormatError, match=f"^{path}:3: ") as caught:
        read_rows(path)
    assert words in str(caught.value)


def test_missing_empty_and_binary_files_are_clear_errors(tmp_path: Path) -> None:
    empty, binary = tmp_path / "empty.txt", tmp_path / "binary.txt"
    empty.write_text("\n# nothing\n")
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(MotFormatError, match="no detections file .*missing.txt"):
        read_detections(tmp_path / "missing.txt")
    with pytest.raises(MotFormatError, match="empty.txt: no detections in the file"):
        read_detections(empty)
    with pytest.raises(MotFormatError, match="empty.txt: no ground truth rows"):
        read_rows(empty)
    with pytest.raises(MotFormatError, match="cannot read the tracks file .*binary.txt: not a"):
        read_rows(binary, "tracks")
    # a tracker that found nothing wrote an empty file: no tracks, not an error
    assert read_rows(empty, "tracks", allow_empty=True) == []


def test_scores_match_trackers_evaluate_mot_sequence(tmp_path: Path) -> None:
    # given a scene tracked by the stage's association, both written as MOTChallenge files
    scene = generate(SceneConfig(frames=150, seed=5))
    gt_path, _ = scene.write(tmp_path)
    association = Association(scene.config.fps)
    tracks = []
    for frame in scene.frames:
        people = [d for d in scene.detections[frame] if d.label != "ball"]
        tracks += [(frame, t.id, t.box) for t in association.update(people, scene.time_s(frame))]
    pred_path = tmp_path / "pred.txt"
    write_tracks(pred_path, tracks)
    # when they are scored here and by the trackers package's own file evaluator
    ours = score(read_rows(gt_path), read_rows(pred_path))
    theirs = evaluate_mot_sequence(gt_path, pred_path, metrics=["CLEAR", "HOTA", "Identity"])
    # then the figures agree (the ball's rows are flagged 0 and scored by neither)
    assert theirs.HOTA is not None and theirs.CLEAR is not None and theirs.Identity is not None
    assert ours.hota == pytest.approx(theirs.HOTA.HOTA, abs=1e-9)
    assert ours.deta == pytest.approx(theirs.HOTA.DetA, abs=1e-9)
    assert ours.assa == pytest.approx(theirs.HOTA.AssA, abs=1e-9)
    assert ours.idf1 == pytest.approx(theirs.Identity.IDF1, abs=1e-9)
    assert ours.mota == pytest.approx(theirs.CLEAR.MOTA, abs=1e-9)
    assert ours.id_switches == theirs.CLEAR.IDSW
    assert 0.5 < ours.hota < 1.0


def test_a_track_on_a_distractor_is_neither_rewarded_nor_penalised(tmp_path: Path) -> None:
    # given a person (class 1) and a distractor (class 8), each with a track on it
    person, distractor = (0.0, 0.0, 30.0, 80.0), (200.0, 0.0, 230.0, 80.0)
    gt = [MotRow(f, 1, person, 1, 1, 1.0) for f in (1, 2)]
    gt += [MotRow(f, 2, distractor, 1, 8, 1.0) for f in (1, 2)]
    pred = [MotRow(f, 5, person, 1, 1, 1.0) for f in (1, 2)]
    pred += [MotRow(f, 6, distractor, 1, 1, 1.0) for f in (1, 2)]
    # when scored, then it is a perfect score over the person alone
    result = score(gt, pred)
    assert (result.mota, result.idf1, result.gt_boxes, result.pred_boxes) == (1.0, 1.0, 2, 2)
    # and it agrees with the trackers package's evaluator
    gt_path, pred_path = tmp_path / "gt.txt", tmp_path / "pred.txt"
    gt_path.write_text("".join(_gt_line(r) for r in gt))
    write_tracks(pred_path, [(r.frame, r.id, r.box) for r in pred])
    theirs = evaluate_mot_sequence(gt_path, pred_path, metrics=["CLEAR"])
    assert theirs.CLEAR is not None and theirs.CLEAR.MOTA == result.mota


def test_no_tracks_score_zero() -> None:
    gt = [MotRow(1, 1, (0.0, 0.0, 30.0, 80.0), 1, 1, 1.0)]
    result = score(gt, [])
    assert (result.hota, result.idf1, result.mota, result.pred_ids) == (0.0, 0.0, 0.0, 0)


def _gt_line(row: MotRow) -> str:
    return track_line(row.frame, row.id, row.box).replace(",1,-1,-1,-1", f",1,{row.cls},1")


def _near(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(abs(x - y) <= 0.011 for x, y in zip(a, b, strict=True))
