"""What every section of the benchmark shares: its configuration, and how one part runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pitchside.errors import BenchError


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """One benchmark run, as the command line asked for it."""

    clip: Path
    model: Path
    imgsz: int
    threads: int  # inference threads in all: shared out among the lanes in (a), (b), (d)-(f)
    frames: int  # timed frames of (a), (b) and (c)
    warmup: int  # untimed frames before them
    live_seconds: float  # measured part of (d), (e), (f)
    live_warmup_s: float  # untimed start of (d), (e), (f)
    sections: tuple[str, ...]  # some of "a" to "f", in that order
    rounds: int = 1  # (a), (b), (c) run this many times, interleaved; each keeps its median
    reconnects: int = 3  # times (e) stops its camera and times how long it takes to come back


def run_part(
    part: str, work: Callable[[], dict[str, Any]], progress: Callable[[str], None]
) -> dict[str, Any]:
    """``work()``'s figures with its ``wall_s``; a part that fails gives ``{"error": ...}``
    (said through ``progress``) instead, and the benchmark goes on with the next."""
    started = time.monotonic()
    try:
        result = work()
    except BenchError as exc:
        result = {"error": str(exc)}
    except Exception as exc:  # a benchmark reports a broken part and goes on
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result["wall_s"] = round(time.monotonic() - started, 1)
    if "error" in result:
        progress(f"{part} failed: {result['error']}")
    return result
