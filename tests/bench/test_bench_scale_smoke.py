"""``python -m bench.scale`` on a tiny configuration: every part runs and reports, and the plan
follows from its figures.

No rate is asserted: the figures depend on the machine. The benchmark runs as a subprocess,
as a user runs it (its own ``pitchside up``, event loops and embedded Redis).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ASSETS, CLIP, require_asset

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240


@pytest.mark.slow
def test_scale_runs_every_part_and_plans_from_their_figures(tmp_path: Path) -> None:
    # given the real clip and a tiny configuration: one worker, one stream, two batch sizes
    require_asset(CLIP)
    out = tmp_path / "scale.json"
    # when the benchmark runs every part
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--assets", str(ASSETS), "--size", "native",
         "--workers", "1", "--streams", "1", "--phase-s", "2", "--settle-s", "1",
         "--no-analyse", "--batches", "1,2", "--rounds", "2", "--frames", "2",
         "--batch-via", "engine", "--component-frames", "8", "--entries", "20",
         "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    # then it exits 0, prints its tables and writes positive figures for every part
    assert done.returncode == 0, done.stdout + done.stderr
    assert "plan: 100 live streams x 25 fps" in done.stdout
    doc = json.loads(out.read_text())
    live = doc["workers"]["counts"]["1"]["live"]
    assert live["detected_fps"] > 0 and live["latency_ms"]["n"] > 0, live
    assert doc["workers"]["counts"]["1"]["threads_per_worker"] >= 1
    table = doc["batch"]["engine"]["table"]
    assert set(table) == {"1", "2"} and table["1"]["ratio_paired"] == 1.0
    assert all(len(row["fps_rounds"]) == 2 and row["fps"] > 0 for row in table.values())
    comp = doc["components"]
    assert comp["native"]["decode_1_thread"]["cpu_ms_per_frame"] > 0
    assert comp["redis"]["xadd"]["calls_per_s"] > 0
    plan = doc["plan"]
    assert plan["workers"]["cpu_workers"] > 0 and plan["redis"]["shards"] >= 1
    assert plan["ingest"]["cores"] > 0 and plan["network"]["jpeg_mbit_s_per_stream"] > 0


def test_scale_refuses_a_missing_clip_with_a_clear_message(tmp_path: Path) -> None:
    # given assets without the clip, when the benchmark starts, then it stops with status 2
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--assets", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"no clip at {tmp_path / 'video' / '08fd33_4.mp4'}" in done.stderr
