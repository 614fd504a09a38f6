"""(a) The ceiling: the bare engine on frames decoded and letterboxed beforehand.

The clip is decoded exactly as ingest decodes it (``ingest.sources.file.decode_file``) and
letterboxed exactly as the workers do (``Detector.prepare``: a rectangular input for a model
with dynamic height and width, the model's fixed shape otherwise). The sessions are the
worker's own (same providers, threads and session options), called as a worker calls them:
the analyse session by ``lanes`` threads at once (``PITCHSIDE_LANES``), each running batches
of one back to back, which is the ceiling; the live session (every thread) by one caller,
whose median is one live frame's inference time. Only ``Engine.infer`` is timed: for ONNX
Runtime that is ``session.run`` (the dtype cast and the output conversion are no-ops for
the float32 models served here).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.stats import rate, summary_ms
from ingest.sources.file import decode_file
from pitchside.errors import BenchError
from workers.engines import Detector


def clip_frames(clip: Path) -> Iterator[np.ndarray]:
    """Every frame of ``clip`` as ``(H, W, 3)`` uint8 BGR, decoded as ingest decodes it."""
    stop = threading.Event()
    yield from (frame.bgr for frame in decode_file(clip, loop=False, stop=stop))


def count_frames(clip: Path) -> int:
    """How many frames the clip has (decoded, not the container's estimate)."""
    return sum(1 for _ in clip_frames(clip))


def run_ceiling(
    detector: Detector, clip: Path, frames: int, warmup: int, lanes: int = 1
) -> dict[str, Any]:
    """Time ``Engine.infer`` over ``frames`` frames (cycling through the clip), batch 1, with
    ``lanes`` callers at once.

    Returns:
        fps, per-call timings (median is "one frame's inference time" as the worker sees
        it), the input shape.
    """
    engine = detector.engine
    # Distinct frames, at most `frames` of them; each (1, 3, H, W) is ready to feed.
    batches = [detector.prepare([bgr]).batch for bgr in itertools.islice(clip_frames(clip), frames)]
    if not batches:
        raise BenchError(f"{clip} has no frames")
    times_ms: list[float] = []  # list.append is atomic: the callers share it

    def call(i: int, timed: bool) -> None:
        t0 = time.perf_counter()
        engine.infer(batches[i % len(batches)])
        if timed:
            times_ms.append((time.perf_counter() - t0) * 1000)

    with ThreadPoolExecutor(lanes, thread_name_prefix="bench-ceiling") as pool:
        list(pool.map(call, range(warmup), itertools.repeat(False)))
        started = time.perf_counter()
        list(pool.map(call, range(frames), itertools.repeat(True)))
        elapsed = time.perf_counter() - started
    stats = summary_ms(times_ms)
    return {
        "fps": round(rate(frames, elapsed), 3),
        "frames": frames,
        "distinct_frames": len(batches),
        "warmup_frames": warmup,
        "seconds": round(elapsed, 3),
        "infer_ms": stats,
        "median_ms": stats["p50_ms"],
        "lanes": lanes,
        "input_shape": list(batches[0].shape),
        "providers": list(engine.providers),
        "per_frame_ms": [round(t, 2) for t in times_ms],
    }
