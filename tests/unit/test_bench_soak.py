"""The pure parts of bench.soak: per-minute figures, verdicts, /proc and /metrics parsing."""

from __future__ import annotations

import io
import os
from pathlib import Path

import av
import numpy as np
import pytest

from bench import procs, soak, soak_report
from bench.soak_stats import (
    Sample,
    Seen,
    counter_value,
    increase,
    latency_verdict,
    memory_verdict,
    per_minute,
    phase_figures,
    redis_verdict,
    scrape_counters,
    viewer_verdict,
)

METRICS = """\
# HELP pitchside_frames_dropped_total Frames not processed
# TYPE pitchside_frames_dropped_total counter
pitchside_frames_dropped_total{reason="skipped",stage="worker",stream="a"} 10.0
pitchside_frames_dropped_total{reason="skipped",stage="worker",stream="b"} 5.0
pitchside_frames_dropped_total{reason="slow_client",stage="gateway",stream="a"} 2.0
# HELP pitchside_worker_frames_inferred_total Frames a worker detected objects in
# TYPE pitchside_worker_frames_inferred_total counter
pitchside_worker_frames_inferred_total{model="m",stream="a"} 100.0
pitchside_worker_frames_inferred_total{model="m",stream="b"} 50.0
# HELP other_total Something else
# TYPE other_total counter
other_total 7.0
"""


def _sample(
    t_s: float, rss: int = 1000, used: int = 10, inferred: float = 0.0, **pids: int
) -> Sample:
    counters = {"worker-1": {"inferred": inferred, "dropped/worker/skipped": 2 * inferred}}
    names = pids or {"gateway": 1}
    return Sample(t_s, dict(names), dict.fromkeys(names, rss), used, counters)


def test_scrape_counters_keeps_the_followed_series_per_stream() -> None:
    assert scrape_counters(METRICS) == {
        "dropped/worker/skipped@a": 10.0, "dropped/worker/skipped@b": 5.0,
        "dropped/gateway/slow_client@a": 2.0, "inferred@a": 100.0, "inferred@b": 50.0,
    }  # fmt: skip
    assert counter_value(METRICS, "pitchside_frames_dropped_total", stream="a") == 12.0


def test_increase_takes_a_lower_value_as_a_restart_from_zero() -> None:
    before = {"w1": {"inferred": 100.0}, "w2": {"inferred": 50.0}}
    after = {"w1": {"inferred": 130.0}, "w2": {"inferred": 20.0}, "w3": {"inferred": 5.0}}
    # w1 grew by 30, w2 restarted and counted 20, w3 is new
    assert increase(before, after) == {"inferred": 55.0}


def test_increase_ignores_the_series_of_a_deleted_stream() -> None:
    before = {"ingest": {"published@a": 100.0, "published@b": 900.0}}
    after = {"ingest": {"published@a": 125.0}}  # stream b deleted: its series went
    assert increase(before, after) == {"published": 25.0}


def test_per_minute_pools_the_viewers_latency_and_rates_the_counters() -> None:
    # given two viewers, 120 frames each in minute 1 (60 ms) and 60 in minute 2 (100 ms),
    # and samples every 30 s with 25 frames inferred a second
    seen = [Seen(i * 0.5, v, 60.0) for i in range(120) for v in (0, 1)]
    seen += [Seen(60 + i, v, 100.0) for i in range(60) for v in (0, 1)]
    samples = [_sample(t, used=10 + int(t), inferred=25.0 * t) for t in (0, 30, 60, 90, 120)]
    # when they are put per minute
    rows = per_minute(seen, samples, 2, viewers=2)
    # then each minute has its own figures
    assert [r["latency_ms"]["p95_ms"] for r in rows] == [60.0, 100.0]
    assert [r["viewer_fps"]["mean"] for r in rows] == [2.0, 1.0]
    assert [r["detected_fps"] for r in rows] == [25.0, 25.0]
    assert rows[0]["drops"] == {"worker/skipped": 3000}
    assert rows[1]["redis_used"] == {"last": 130, "max": 130, "min": 100}


def test_latency_verdict_compares_the_last_minute_with_the_second() -> None:
    rows = [{"latency_ms": {"n": 9, "p95_ms": p}} for p in (500.0, 100.0, 104.0, 109.0)]
    verdict = latency_verdict(rows)
    assert verdict["ratio"] == 1.09 and verdict["met"]
    rows[-1]["latency_ms"]["p95_ms"] = 111.0
    assert not latency_verdict(rows)["met"]
    rows[-1]["latency_ms"]["p95_ms"] = 80.0  # within 10 % means either way
    assert not latency_verdict(rows)["met"]
    assert not latency_verdict(rows[:1])["met"]


def test_memory_verdict_counts_from_the_end_of_the_second_minute() -> None:
    # given a process that grows in the warm-up (1000 -> 2000 KiB), then by 4 %, and one by 6 %
    samples = [
        Sample(0, {"a": 1, "b": 2}, {"a": 1000, "b": 1000}, 1),
        Sample(120, {"a": 1, "b": 2}, {"a": 2000, "b": 1000}, 1),
        Sample(600, {"a": 1, "b": 2}, {"a": 2080, "b": 1060}, 1),
    ]
    verdict = memory_verdict(samples, 10)
    assert verdict["from_s"] == 120
    assert verdict["processes"]["a"]["growth"] == 0.04 and verdict["processes"]["a"]["met"]
    assert not verdict["processes"]["b"]["met"] and not verdict["met"]


def test_memory_verdict_fails_a_restarted_process() -> None:
    samples = [Sample(120, {"a": 1}, {"a": 1000}, 1), Sample(600, {"a": 9}, {"a": 900}, 1)]
    verdict = memory_verdict(samples, 10)
    assert verdict["processes"]["a"]["restarted"] and not verdict["met"]


def test_redis_verdict_bounds_the_last_minute_by_the_second() -> None:
    samples = [_sample(t, used=u) for t, u in ((10, 50), (70, 100), (110, 90), (550, 108))]
    verdict = redis_verdict(samples, 10)
    assert verdict["max"] == 108 and verdict["min"] == 50 and verdict["met"]
    samples.append(_sample(590, used=120))
    assert not redis_verdict(samples, 10)["met"]


def test_viewer_verdict_allows_ten_percent_either_way() -> None:
    alone = [{"fps": 20.0, "latency_ms": {"n": 5, "p50_ms": 100.0, "p95_ms": 200.0}}]
    close = [{"fps": 18.5, "latency_ms": {"n": 5, "p50_ms": 108.0, "p95_ms": 190.0}}]
    slower = [{"fps": 17.0, "latency_ms": {"n": 5, "p50_ms": 100.0, "p95_ms": 200.0}}]
    assert viewer_verdict(close, alone)["met"]
    verdict = viewer_verdict(slower, alone)
    assert not verdict["met"] and verdict["worst_percent"]["fps"] == 15.0


def test_phase_figures_rate_the_frames_inside_the_window() -> None:
    points = [(t / 10, 50.0) for t in range(0, 300)]  # 10 fps for 30 s
    assert phase_figures(points, 10.0, 20.0)["fps"] == 10.0


def test_proc_parsing_reads_this_process() -> None:
    # given this very process, when /proc is read, then it has memory, CPU and an environment
    pid = os.getpid()
    rss = procs.rss_kib(pid)
    assert rss is not None and rss > 1000
    assert (procs.cpu_s(pid) or 0) > 0
    assert procs.environ_of(pid).get("PATH") == os.environ.get("PATH")
    assert procs.rss_kib(2**22 + 7) is None  # no such process


def test_proc_parsing_names_children_as_pitchside_up_does() -> None:
    assert procs.parse_rss_kib("Name:\tx\nVmRSS:\t  1234 kB\n") == 1234
    assert procs.parse_rss_kib("Name:\tzombie\n") is None
    assert procs.name_of(["python", "-m", "workers", "--name", "worker-2"], "python") == "worker-2"
    assert procs.name_of(["python", "-m", "gateway"], "python") == "gateway"
    assert procs.name_of(["/x/redis-server *:0"], "redis-server") == procs.REDIS
    assert procs.parse_environ(b"A=1\0B=x=y\0junk\0") == {"A": "1", "B": "x=y"}
    assert procs.parse_cpu_ticks("1 (a b) S " + " ".join(["0"] * 10) + " 7 5 0") == 12


def test_a_missing_clip_exits_2_saying_where_the_assets_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given assets that hold no clip, when the soak is asked for, then it refuses with 2
    assert soak.main(["--assets", str(tmp_path), "--json", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err
    assert f"no clip at {tmp_path / 'video' / soak.CLIP_NAME}" in err and "--assets" in err
    assert not (tmp_path / "out.json").exists()


def test_bad_options_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--assets", str(tmp_path), "--only", "nope", "--minutes", "0", "--every", "0"]
    assert soak.main(argv) == 2
    err = capsys.readouterr().err
    assert "no part 'nope'" in err and "--minutes must be 1-120" in err
    assert "--every must be 1-10, got 0" in err


def test_thinned_keeps_one_frame_in_every_at_that_fraction_of_the_rate(tmp_path: Path) -> None:
    # given a 12-frame clip at 24 fps whose frames are numbered by their grey level
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(12):
            image = np.full((48, 64, 3), i * 20, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
    # when one frame in 3 is kept
    thin = soak.thinned(clip, 3, tmp_path / "thin.mp4")
    # then 4 frames remain, at 8 fps, and they are frames 0, 3, 6 and 9
    assert soak.clip_fps(thin) == pytest.approx(8.0)
    with av.open(str(thin)) as src:
        levels = [f.to_ndarray(format="gray").mean() for f in src.decode(video=0)]
    assert [round(level / 20) for level in levels] == [0, 3, 6, 9]


def test_the_report_prints_a_minute_and_the_verdicts() -> None:
    samples = [_sample(t, inferred=25.0 * t, gateway=1) for t in (0, 60, 120)]
    seen = [Seen(i * 0.5, 0, 80.0) for i in range(240)]
    rows = per_minute(seen, samples, 2, viewers=1)
    section = {
        "calibration": {"clip_fps": 25.0, "offered_fps": 75.0, "detected_fps": 25.0,
                        "ratio": 3.0, "chosen_by": "3 x"},
        "streams": ["soak-1"], "minutes": 2, "per_minute": rows,
        "verdicts": {"latency": latency_verdict(rows), "memory": memory_verdict(samples, 2),
                     "redis": redis_verdict(samples, 2)},
    }  # fmt: skip
    out = io.StringIO()
    soak_report.soak_lines(section, out)
    text = out.getvalue()
    assert "offered 75 fps" in text and "= 1.000 (within 10 %): met" in text
    assert "minute 1: offered" in soak_report.minute_line(rows[0])
