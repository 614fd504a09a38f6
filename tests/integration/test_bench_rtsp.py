"""``pitchside bench --only e``: a real RTSP camera, its live latency and its return, for real.

The benchmark runs as a user runs it (a subprocess), with the default model, the shared clip
served by the GStreamer RTSP server, and tiny durations.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pitchside.settings import Settings, default_model_path
from tests.conftest import ASSETS, CLIP, require_asset

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240
#: Beyond the backoff: opening and probing the stream, its first frame through the pipeline.
OPEN_S = 10.0


@pytest.mark.slow
def test_bench_e_measures_a_live_rtsp_camera_and_the_time_it_takes_to_come_back(
    tmp_path: Path,
) -> None:
    # given the default model, the shared clip and a tiny configuration with one camera restart
    require_asset(CLIP)
    require_asset(default_model_path())
    out = tmp_path / "bench.json"
    # when section (e) runs
    done = subprocess.run(
        [sys.executable, "-m", "pitchside", "bench", "--only", "e", "--assets", str(ASSETS),
         "--live-seconds", "3", "--live-warmup", "1", "--reconnects", "1", "--threads", "2",
         "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    # then it exits 0 and prints its rows
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(e) RTSP latency p50/p95/p99" in done.stdout
    assert "(e) camera back -> frame shown" in done.stdout
    section = json.loads(out.read_text())["sections"]["e"]
    assert "error" not in section, section
    # with real live figures, from frames of the camera
    assert section["messages"] > 0 and section["shown_fps"] > 0
    latency = section["latency_ms"]
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"]
    assert section["trend"]["first_median_ms"] > 0 and section["trend"]["last_median_ms"] > 0
    # and one recovery, within the bounds of the backoff delays it went through
    (back,) = section["recoveries"]
    backoff = section["backoff"]
    defaults = Settings.from_env({})
    assert backoff["reconnect_initial_s"] == defaults.reconnect_initial_s
    assert backoff["reconnect_max_s"] == defaults.reconnect_max_s
    assert back["reconnect_attempts"] >= 1
    delays_bound_s = sum(
        min(backoff["reconnect_max_s"], backoff["reconnect_initial_s"] * 2**n)
        for n in range(back["reconnect_attempts"])
    )
    assert 0 < back["recovery_s"] < delays_bound_s + OPEN_S, back
    assert back["shown_gap_s"] > 0  # the viewer saw no new frame for a while
    assert section["recovery"] == {
        "n": 1, "median_s": back["recovery_s"], "max_s": back["recovery_s"],
    }  # fmt: skip
