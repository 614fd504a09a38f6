"""``pitchside bench`` end to end on a tiny configuration: every section runs and reports.

No timing is asserted: the figures depend on the machine. The benchmark runs as a subprocess,
as a user runs it (its own event loops, signal handling and logging set-up).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ASSETS, CLIP, COCO_ONNX, require_asset

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pitchside", "bench", *args],
        cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip


@pytest.mark.slow
def test_bench_runs_every_section_and_writes_positive_figures(tmp_path: Path) -> None:
    # given the COCO model, the real clip (found in the assets folder) and a tiny configuration
    require_asset(CLIP)
    out = tmp_path / "bench.json"
    # when the benchmark runs every section
    done = _bench(
        "--model", str(require_asset(COCO_ONNX)), "--assets", str(ASSETS),
        "--frames", "8", "--warmup", "2", "--live-seconds", "3", "--live-warmup", "1",
        "--threads", "2", "--rounds", "2", "--reconnects", "1", "--json", str(out),
    )  # fmt: skip
    # then it exits 0, prints the table and writes every section with positive figures
    assert done.returncode == 0, done.stdout + done.stderr
    assert "targets met:" in done.stdout
    doc = json.loads(out.read_text())
    sections = doc["sections"]
    assert set(sections) == {"a", "b", "c", "d", "e", "f"}
    assert not [k for k, s in sections.items() if "error" in s], sections
    assert sections["a"]["fps"] > 0 and sections["a"]["median_ms"] > 0
    assert sections["b"]["fps"] > 0 and sections["b"]["frames"] >= 8
    assert sections["b"]["worker"]["skipped"] == 0  # analyse mode skips nothing
    assert sections["c"]["fps"] > 0 and sections["c"]["ort_intra_op_threads"] == 2
    for key in "abc":  # two interleaved rounds, the median (lower middle) reported
        rounds = sections[key]["fps_rounds"]
        assert len(rounds) == 2 and sections[key]["fps"] == min(rounds)
    assert "rounds" in done.stdout
    live = sections["d"]
    assert live["messages"] > 0 and live["shown_fps"] > 0
    assert 0 < live["latency_ms"]["p50_ms"] <= live["latency_ms"]["p95_ms"]
    assert live["trend"]["first_median_ms"] > 0 and live["trend"]["last_median_ms"] > 0
    camera = sections["e"]  # the clip from the RTSP camera, stopped and started once
    assert camera["messages"] > 0 and camera["latency_ms"]["p50_ms"] > 0
    assert camera["recovery"]["n"] == 1 and camera["recovery"]["max_s"] > 0
    publisher = sections["f"]  # the clip from a WebRTC publisher over WHIP
    assert publisher["messages"] > 0 and publisher["latency_ms"]["p50_ms"] > 0
    assert publisher["source_read"] > 0  # frames whose publisher stamp the viewer read back
    assert publisher["source_latency_ms"]["p50_ms"] > publisher["latency_ms"]["p50_ms"] > 0
    assert {t["name"] for t in doc["targets"]} == {"b_over_a", "b_over_c", "d_p95", "d_trend"}
    assert doc["ratios"]["b_over_a"] > 0 and doc["ratios"]["b_over_c"] > 0
    assert doc["environment"]["cpu_count"] >= 1 and doc["config"]["threads"] == 2
    assert doc["config"]["clip"] == str(CLIP.resolve())
    assert doc["environment"]["git_commit"], "the run names the commit it measured"


def test_bench_refuses_a_missing_clip_with_a_clear_message(tmp_path: Path) -> None:
    # given a clip path that does not exist
    missing = tmp_path / "nope.mp4"
    # when the benchmark starts
    done = _bench("--clip", str(missing), "--model", str(COCO_ONNX))
    # then it stops with status 2 and names the file
    assert done.returncode == 2
    assert f"clip not found: {missing}" in done.stderr
