"""The pure parts of bench.scale: options, thread shares, batch ratios, the plan's arithmetic."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import scale
from bench.scale_stats import (
    FRAMES_MAXLEN,
    REDIS_OVERHEAD,
    UTILISATION,
    Measured,
    batch_rows,
    batch_table,
    ceil_div,
    parse_counts,
    plan,
    report_lines,
    shares,
    table,
    thread_plan,
    whole_batches,
    workers_rows,
)


@pytest.mark.parametrize(
    ("raw", "values", "problem"),
    [
        ("1,2,4", (1, 2, 4), None),
        (" 4, 1 ,4", (4, 1), None),  # the order given, repeats dropped
        ("1,,2", (), "comma list of integers 1-16"),
        ("0,2", (), "comma list of integers 1-16"),
        ("17", (), "comma list of integers 1-16"),
        ("two", (), "got 'two'"),
    ],
)
def test_parse_counts_takes_a_comma_list_in_range(
    raw: str, values: tuple[int, ...], problem: str | None
) -> None:
    got, problems = parse_counts(raw, "--workers", 16)
    assert got == values
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0] and "--workers" in problems[0]


@pytest.mark.parametrize(
    ("cores", "workers", "threads", "lanes"),
    [(2, 1, 2, 2), (2, 2, 1, 1), (2, 4, 1, 1), (8, 2, 4, 2), (16, 4, 4, 2), (1, 1, 1, 1)],
)
def test_thread_plan_shares_the_cores_out_at_least_one_thread_each(
    cores: int, workers: int, threads: int, lanes: int
) -> None:
    got = thread_plan(cores, workers)
    assert (got["threads_per_worker"], got["lanes_per_worker"]) == (threads, lanes)
    assert got["threads_in_all"] == threads * workers


def test_whole_batches_rounds_up() -> None:
    assert [whole_batches(10, b) for b in (1, 2, 4, 8)] == [10, 10, 12, 16]


def test_batch_table_pairs_each_round_with_its_own_batch_1() -> None:
    # given a machine that runs twice as fast in round 2, and batch 4 always 1.5 x batch 1
    rounds = [{1: 10.0, 4: 15.0}, {1: 20.0, 4: 30.0}, {1: 12.0, 4: 18.0}]
    # when the table is made
    got = batch_table(rounds)
    # then the paired ratio is exactly 1.5, the medians' ratio as well here, and ms a frame
    # follows the median fps
    assert got[1]["ratio_paired"] == 1.0 and got[4]["ratio_paired"] == 1.5
    assert got[4]["fps"] == 18.0 and got[4]["ratio_of_medians"] == 1.5
    assert got[4]["ms_per_frame"] == pytest.approx(1000 / 18, abs=0.01)
    assert got[4]["fps_rounds"] == [15.0, 30.0, 18.0]


def test_batch_table_paired_ratio_holds_where_one_round_moves_the_medians() -> None:
    # given batch 2 at 1.1 x batch 1 in two rounds, and one round where the machine sped up
    # between the two measurements (1.5 x), on a machine whose speed changes between rounds
    rounds = [{1: 10.0, 2: 11.0}, {1: 30.0, 2: 33.0}, {1: 20.0, 2: 30.0}]
    got = batch_table(rounds)
    # then the paired ratio keeps the 1.1 of most rounds; the medians' ratio takes the outlier
    assert got[2]["ratio_paired"] == 1.1
    assert got[2]["ratio_of_medians"] == 1.5
    # and a round without its batch 1 is left out of the paired ratio
    rounds.append({2: 99.0})
    assert batch_table(rounds)[2]["ratio_paired"] == 1.1


def test_ceil_div_covers_the_need() -> None:
    assert ceil_div(0, 5) == 0 and ceil_div(1, 5) == 1 and ceil_div(10, 5) == 2
    assert ceil_div(10.0000000001, 5) == 2  # float noise is not a unit more
    assert ceil_div(11, 5) == 3
    with pytest.raises(ValueError, match="positive capacity"):
        ceil_div(1, 0)


def _measured(**changes: object) -> Measured:
    base: dict[str, object] = {
        "worker_fps_cpu": 17.5, "cores_per_worker": 2, "decode_cpu_ms": 6.0,
        "jpeg_cpu_ms": 5.0, "jpeg_bytes": 250_000.0, "jpeg_decode_cpu_ms": 5.5,
        "redis_msgs_per_core_s": 4000.0, "source_bitrate_bps": 6e6,
    }  # fmt: skip
    base.update(changes)
    return Measured(**base)  # type: ignore[arg-type]


def test_plan_for_100_streams_follows_its_formulas() -> None:
    # given the figures of a 2-core run
    got = plan(_measured())
    rate = 100 * 25.0
    u = UTILISATION
    # then each stage is sized by its formula
    assert got["assumptions"]["frames_per_s"] == rate
    assert got["workers"]["gpus"] == math.ceil(rate / (150 * u))
    assert got["workers"]["cpu_workers"] == math.ceil(rate / (17.5 * u))
    assert got["workers"]["cpu_cores"] == 2 * got["workers"]["cpu_workers"]
    assert got["ingest"]["cores"] == round(rate * 11.0 / 1000 / u, 1)
    assert got["ingest"]["cores_per_stream"] == round(25 * 11.0 / 1000, 3)
    redis = got["redis"]
    assert redis["in_mbyte_s"] == round(rate * 250_000 / 1e6, 1)
    assert redis["out_mbyte_s"] == 2 * redis["in_mbyte_s"]
    assert redis["memory_mib"] == round(100 * FRAMES_MAXLEN * 250_000 * REDIS_OVERHEAD / 2**20)
    # 1875 MB/s = 15 Gbit/s over 5 Gbit/s a shard; 2500 frames over 2000 a shard
    assert redis["shards_by"] == {"by_bandwidth": 3, "by_cpu": 2} and redis["shards"] == 3
    net = got["network"]
    assert net["jpeg_mbit_s_per_stream"] == 50.0 and net["cameras_mbit_s_in_all"] == 600
    assert got["keda"]["cpu_frames_per_worker"] == round(17.5 * u)


def test_plan_leaves_out_what_was_not_measured() -> None:
    got = plan(_measured(worker_fps_cpu=None, decode_cpu_ms=None, jpeg_bytes=None))
    assert "cpu_workers" not in got["workers"] and "gpus" in got["workers"]
    assert "ingest" not in got and "redis" not in got and "network" not in got
    assert "cpu_frames_per_worker" not in got["keda"]


def test_shares_sums_the_workers() -> None:
    cpu = {"worker-1": 0.8, "worker-2": 0.7, "ingest": 0.2, "redis": 0.05}
    assert shares(cpu) == {"workers": 1.5, "ingest": 0.2, "redis": 0.05}


def test_table_aligns_columns_right_under_a_rule() -> None:
    lines = table(["a", "bbb"], [["10", "2"], ["1", "22"]])
    assert lines == [" a  bbb", "--  ---", "10    2", " 1   22"]


def _count(detected: float) -> dict[str, object]:
    live = {
        "offered_fps": 100.0, "detected_fps": detected, "viewer_fps": [8.0, 9.0],
        "viewer_fps_mean": 8.5, "latency_ms": {"n": 10, "p50_ms": 120.0, "p95_ms": 180.0},
        "drops_per_s": {"worker/behind": 80.0, "gateway/slow_client": 1.0},
        "cpu_cores_by_kind": {"workers": 1.6, "ingest": 0.2, "gateway": 0.1},
    }  # fmt: skip
    return {"threads_per_worker": 2, "lanes_per_worker": 2, "live": live,
            "analyse": {"detected_fps": 25.0}}  # fmt: skip


def test_workers_rows_show_a_failed_count_beside_the_others() -> None:
    rows = workers_rows({"1": _count(17.0), "2": {"error": "pitchside up exited 1"}})
    assert rows[0][:4] == ["1", "2x2", "100.0", "17.0"]
    assert rows[0][6:] == ["120", "180", "81.0", "1.60", "0.30", "25.0"]
    assert rows[1][0] == "2" and "failed: pitchside up exited 1" in rows[1][2]
    assert len(rows[1]) == len(rows[0])


def test_report_prints_every_part_and_the_plan() -> None:
    batch = {"table": {"1": {"fps": 10.0, "ms_per_frame": 100.0, "ratio_paired": 1.0,
                             "ratio_of_medians": 1.0},
                       "4": {"fps": 14.0, "ms_per_frame": 71.4, "ratio_paired": 1.4,
                             "ratio_of_medians": 1.4}}}  # fmt: skip
    titles, rows = batch_rows({"engine": batch})
    assert titles[:4] == ["batch", "engine fps", "engine ms/frame", "engine x b1 (paired)"]
    assert rows[1][:4] == ["4", "14.00", "71.4", "1.400"]
    figures = {
        "cores": 2, "load_average_before": [0.1], "load_average_after": [1.5],
        "workers": {"streams": 4, "clip_fps": 25.0, "counts": {"1": _count(17.0)}},
        "batch": {"threads": 2, "input_hw": [384, 640], "rounds": 3, "engine": batch},
        "components": {"error": "no clip"},
        "plan": plan(_measured()),
    }  # fmt: skip
    text = "\n".join(report_lines(figures, Path("x.json")))
    assert "workers: 4 looping live streams at 25 fps" in text
    assert "median of 3 interleaved rounds" in text and "components: failed: no clip" in text
    assert "plan: 100 live streams x 25 fps = 2500 frames/s" in text
    assert "shards 3" in text and text.endswith("figures: x.json")


def test_measured_takes_one_worker_and_the_1080p_components() -> None:
    jpeg = {"size": "1920x1080", "quality": 80, "encode_cpu_ms": 5.0, "bytes_mean": 250_000,
            "decode_cpu_ms": 5.5}  # fmt: skip
    clip = {"source": {"size": "1920x1080"}, "decode_1_thread": {"cpu_ms_per_frame": 6.0},
            "jpeg": {**jpeg, "bytes_mean": 190_000}}  # fmt: skip
    redis = {"xadd": {"server_cpu_us_per_call": 150.0},
             "xrevrange": {"server_cpu_us_per_call": 25.0}}  # fmt: skip
    figures = {
        "workers": {"counts": {"1": {**_count(17.5), "threads_per_worker": 2}}},
        "batch": {"engine": {"table": {"1": {"fps": 15.0}, "8": {"ratio_paired": 1.2}}}},
        "components": {"native": clip, "1080p": clip, "stills": jpeg, "redis": redis},
    }  # fmt: skip
    facts, source = scale.measured(figures)
    assert facts.worker_fps_cpu == 17.5 and facts.cores_per_worker == 2
    assert facts.jpeg_bytes == 250_000  # the stills', larger than the upscaled clip's
    assert facts.redis_msgs_per_core_s == pytest.approx(1e6 / 200)
    assert facts.batch_gain == 1.2 and "stills" in source["jpeg"]


def test_a_missing_clip_exits_2_saying_where_the_assets_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given assets that hold no clip, when the benchmark is asked for, then it refuses with 2
    assert scale.main(["--assets", str(tmp_path), "--json", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err
    assert f"no clip at {tmp_path / 'video' / scale.CLIP_NAME}" in err and "../shared" in err
    assert not (tmp_path / "out.json").exists()


def test_bad_options_exit_2_naming_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--assets", str(tmp_path), "--only", "nope", "--workers", "0,2", "--batches", "x",
        "--batch-via", "gpu", "--streams", "0", "--phase-s", "0",
    ]  # fmt: skip
    assert scale.main(argv) == 2
    err = capsys.readouterr().err
    assert "no part 'nope'" in err and "--workers takes a comma list" in err
    assert "--batches takes a comma list" in err and "--batch-via takes" in err
    assert "--streams must be 1-16, got 0" in err and "--phase-s must be 1-600" in err
