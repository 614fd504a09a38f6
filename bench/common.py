"""What every section of the benchmark shares: its configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
