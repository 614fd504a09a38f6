"""Scale on one machine: one, two and four workers on several live streams, a worker's
throughput as its batch grows, what a 1080p frame costs around the detector; and from those
figures, what 100 live 1080p streams need.

    python -m bench.scale [--workers 1,2,4] [--streams N] [--batches 1,2,4,8] [--phase-s S]
        [--settle-s S] [--rounds R] [--size 1080p|native] [--only workers,batch,components]
        [--assets DIR] [--clip PATH] [--model PATH] [--json PATH]

The shared clip is 848x478: by default the parts workers and batch run it transcoded to
1920x1080 (H.264, its own 25 fps; ``--size native`` to run it as it is), and the part
components measures both, and the 1080p broadcast stills of the assets (``images/``), whose
JPEGs are the size a real 1080p camera's are (the upscaled clip's are smaller).

Three parts, everything on 127.0.0.1:

workers
    For each worker count a fresh ``pitchside up`` (:mod:`bench.up`: ``PITCHSIDE_WORKERS``
    workers, ``PITCHSIDE_BATCH`` 4, one tracker, the embedded Redis). The machine's usable
    cores are shared out: each worker gets ``max(1, cores // workers)`` inference threads
    (``PITCHSIDE_THREADS``) and ``min(2, threads)`` analyse lanes (``PITCHSIDE_LANES``); four
    single-thread workers on two cores oversubscribe them, which is the point of that row.
    ``--streams`` looping live streams of the clip (paced at its 25 fps), one WebSocket viewer
    on each; after ``--settle-s``, for ``--phase-s``: frames detected per second (every
    worker's ``/metrics``, found through ``GET /api/sd/prometheus``), frames offered and
    dropped (latest frame wins: ``pitchside_frames_dropped_total`` by reason), each viewer's
    fps, the end-to-end latency (receipt minus the header's ``ts_capture``, all viewers
    pooled) and each process's CPU (/proc). Then the same number of analyse-mode streams
    (unpaced, every frame detected): frames detected per second (``--no-analyse`` to skip).
batch
    One worker's session (every usable core, one lane) as the batch grows (``--batches``):
    the bare engine on pre-letterboxed frames, and the whole pipeline in this process with
    ``PITCHSIDE_BATCH=n`` on an analyse stream (``--batch-via``); interleaved over
    ``--rounds`` (1 2 4 8 1 2 4 8 ...) since these shared machines drift; fps, ms a frame
    and the ratio to batch 1 (:mod:`bench.scale_parts`).
components
    Per 1080p frame: PyAV decode on one thread and as ingest decodes, JPEG encode at the
    ingest's quality and its bytes, the worker's JPEG decode, and ``XADD`` / ``XREVRANGE`` of
    frame-sized entries on an embedded Redis with the server's CPU per call.

Then the plan for 100 live 1080p streams (:func:`bench.scale_stats.plan`), every figure with
its formula. It prints tables and writes every figure to JSON
(``bench-results/scale-<time>.json``). A benchmark, not a test: a missed target still exits
0; a part that could not run exits 1; a bad option or a missing asset 2. Every loop is
bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from bench import CLIP_NAME, DEFAULT_ASSETS, soak, up
from bench.common import run_part
from bench.scale_stats import (
    CAMERA_BITRATE_BPS,
    CAMERA_SOURCE,
    MAX_BATCH,
    MAX_STREAMS,
    MAX_WORKERS,
    READS_PER_FRAME,
    Measured,
    parse_counts,
    plan,
    report_lines,
    shares,
    thread_plan,
)
from bench.soak_stats import INFERRED_KEY, PUBLISHED_KEY, increase
from bench.stats import summary_ms
from pitchside.errors import BenchError
from pitchside.service import run_async
from pitchside.settings import default_model_path, usable_cores

PARTS = ("workers", "batch", "components")
VIA = ("engine", "worker")

FIRST_FRAME_S = 240.0  # every worker listed and every viewer's first frame by then
POLL_S = 1.0
HD = (1920, 1080)
WORKER_BATCH = 4  # PITCHSIDE_BATCH of the part workers: the default, whatever the environment


def _progress(text: str) -> None:
    print(f"[bench.scale] {text}", file=sys.stderr, flush=True)


def _run(part: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    return run_part(part, work, _progress)


# -- workers -----------------------------------------------------------------------------------


async def _wait(what: str, ready: Callable[[], Any]) -> None:
    deadline = time.monotonic() + FIRST_FRAME_S
    while not await ready():
        if time.monotonic() > deadline:
            raise BenchError(f"{what} within {FIRST_FRAME_S:g} s")
        await asyncio.sleep(POLL_S)


async def _workers_listed(http: httpx.AsyncClient, n: int) -> None:
    async def listed() -> bool:
        names = await soak.metrics_targets(http)
        return sum(1 for name in names if name.startswith("worker")) >= n

    await _wait(f"not every one of the {n} workers was listed", listed)


async def _measure(http: httpx.AsyncClient, up_pid: int, phase_s: float) -> dict[str, Any]:
    """Counters and CPU over the next ``phase_s``."""
    before, cpu_before, t0 = await soak.scrape(http), soak.cpu_now(up_pid), time.monotonic()
    await asyncio.sleep(phase_s)
    grown, cpu_after = increase(before, await soak.scrape(http)), soak.cpu_now(up_pid)
    span = time.monotonic() - t0
    cpu = soak.cpu_cores(cpu_before, cpu_after, span)
    return {
        "span_s": round(span, 2),
        "detected_fps": round(grown.get(INFERRED_KEY, 0.0) / span, 2),
        "offered_fps": round(grown.get(PUBLISHED_KEY, 0.0) / span, 2),
        "drops_per_s": {
            k.removeprefix("dropped/"): round(v / span, 2)
            for k, v in sorted(grown.items())
            if k.startswith("dropped/") and v > 0
        },
        "cpu_cores": cpu, "cpu_cores_by_kind": shares(cpu),
    }  # fmt: skip


async def _live(
    http: httpx.AsyncClient, base: str, up_pid: int, clip: Path, streams: int,
    phase_s: float, settle_s: float,
) -> dict[str, Any]:  # fmt: skip
    sids = [f"live-{i + 1}" for i in range(streams)]
    points: list[list[tuple[float, float]]] = [[] for _ in sids]
    t0 = time.monotonic()

    def record(i: int) -> Callable[[int, dict[str, Any]], None]:
        def on_frame(receipt_ns: int, meta: dict[str, Any]) -> None:
            points[i].append((time.monotonic() - t0, (receipt_ns - int(meta["ts_capture"])) / 1e6))

        return on_frame

    for sid in sids:
        await soak.start_stream(http, sid, clip)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(soak.view(soak.ws_url(base, sid), record(i), stop))
        for i, sid in enumerate(sids)
    ]
    try:

        async def all_seen() -> bool:
            for task in tasks:
                if task.done():
                    raise BenchError(f"a viewer stopped before its first frame: {task.result()}")
            return all(points)

        await _wait("not every viewer had a frame", all_seen)
        await asyncio.sleep(settle_s)
        start = time.monotonic() - t0
        figures = await _measure(http, up_pid, phase_s)
        end = time.monotonic() - t0
    finally:
        stop.set()
        done, pending = await asyncio.wait(tasks, timeout=soak.CLOSE_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for sid in sids:
            await soak.stop_stream(http, sid)
    inside = [[lat for t, lat in p if start <= t < end] for p in points]
    viewer_fps = [round(len(w) / (end - start), 2) for w in inside]
    return {
        "streams": streams,
        **figures,
        "viewer_fps": viewer_fps,
        "viewer_fps_mean": round(sum(viewer_fps) / len(viewer_fps), 2),
        "latency_ms": summary_ms([lat for w in inside for lat in w]),
    }


async def _analyse(
    http: httpx.AsyncClient, up_pid: int, clip: Path, streams: int, phase_s: float,
    settle_s: float,
) -> dict[str, Any]:  # fmt: skip
    sids = [f"analyse-{i + 1}" for i in range(streams)]
    for sid in sids:
        body = {"source": str(clip), "id": sid, "mode": "analyse", "loop": True}
        resp = await http.post("/api/streams", json=body)
        if resp.status_code != 201:
            raise BenchError(f"starting stream {sid} answered {resp.status_code}: {resp.text}")
    try:
        first = await soak.scrape(http)

        async def inferring() -> bool:
            return increase(first, await soak.scrape(http)).get(INFERRED_KEY, 0) > 0

        await _wait("no analyse frame was detected", inferring)
        await asyncio.sleep(settle_s)
        figures = await _measure(http, up_pid, phase_s)
    finally:
        for sid in sids:
            await soak.stop_stream(http, sid)
    return {"streams": streams, **figures}


async def _one_count(
    base: str, up_pid: int, n: int, clip: Path, streams: int, phase_s: float,
    settle_s: float, analyse: bool,
) -> dict[str, Any]:  # fmt: skip
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await _workers_listed(http, n)
        _progress(f"workers {n}: {streams} live streams, a viewer each, {phase_s:g} s")
        out: dict[str, Any] = {
            "live": await _live(http, base, up_pid, clip, streams, phase_s, settle_s)
        }
        if analyse:
            _progress(f"workers {n}: {streams} analyse streams, {phase_s:g} s")
            out["analyse"] = await _analyse(http, up_pid, clip, streams, phase_s, settle_s)
    return out


def one_count(
    n: int, clip: Path, model: Path, streams: int, phase_s: float, settle_s: float,
    analyse: bool,
) -> dict[str, Any]:  # fmt: skip
    """``n`` workers on a fresh ``pitchside up``: the live figures, then the analyse ones."""
    threads = thread_plan(usable_cores(), n)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        log_path = Path(tmp) / "up.log"
        try:
            with up.pitchside_up(
                Path(tmp) / "data", log_path, PITCHSIDE_MODEL=str(model),
                PITCHSIDE_WORKERS=str(n), PITCHSIDE_THREADS=str(threads["threads_per_worker"]),
                PITCHSIDE_LANES=str(threads["lanes_per_worker"]), PITCHSIDE_MEDIA_ALLOW=str(clip),
                PITCHSIDE_BATCH=str(WORKER_BATCH),
            ) as (base, proc):  # fmt: skip
                figures = run_async(
                    _one_count(base, proc.pid, n, clip, streams, phase_s, settle_s, analyse)
                )
        except BaseException:
            if log_path.exists():
                _progress(f"pitchside up said: {up.tail(log_path)}")
            raise
    return {**threads, "batch_max": WORKER_BATCH, **figures}


def workers_part(args: argparse.Namespace, counts: Sequence[int]) -> dict[str, Any]:
    """The part ``workers``: one fresh stack per worker count, in the order given."""
    results = {}
    for n in counts:
        _progress(f"workers {n}: starting pitchside up ({thread_plan(usable_cores(), n)})")
        work = functools.partial(
            one_count, n, args.run_clip, args.model, args.streams, args.phase_s, args.settle_s,
            args.analyse,
        )  # fmt: skip
        results[str(n)] = _run(f"workers {n}", work)
    return {"counts": results, "streams": args.streams, "clip_fps": soak.clip_fps(args.run_clip)}


# -- batch and components ----------------------------------------------------------------------


def batch_part(
    args: argparse.Namespace, batches: Sequence[int], via: Sequence[str]
) -> dict[str, Any]:
    from bench import scale_parts
    from pitchside.models import resolve
    from pitchside.settings import Settings
    from workers.engines import load_resolved

    threads = usable_cores()
    settings = Settings().replace(model=str(args.model), threads=threads, lanes=1)
    detector = load_resolved(resolve(settings.model_uri, settings), settings, lanes=1)
    figures = scale_parts.run_batches(
        detector, threads, args.run_clip, args.model, batches, args.rounds, args.frames, via,
        _progress,
    )  # fmt: skip
    return {
        "threads": threads, "lanes": 1, "rounds": args.rounds, "frames": args.frames,
        "batches": list(batches), "providers": list(detector.engine.providers),
        "input_hw": list(detector.input_hw_for((1080, 1920))), **figures,
    }  # fmt: skip


def components_part(args: argparse.Namespace) -> dict[str, Any]:
    from bench import scale_parts

    clips = {"native": args.clip}
    if args.run_clip != args.clip:
        clips["1080p"] = args.run_clip
    return scale_parts.run_components(
        clips, args.assets / "images", args.component_frames, args.entries
    )


def hd_clip(args: argparse.Namespace, folder: Path) -> Path:
    """The clip the workers and batch parts run: the clip itself (``--size native``, or a
    clip already 1920x1080), else the clip transcoded to 1920x1080 in ``folder``."""
    import av

    from bench import scale_parts

    with av.open(str(args.clip)) as container:
        video = container.streams.video[0]
        native = (video.width, video.height)
    if args.size == "native" or native == HD:
        return Path(args.clip)
    _progress(f"transcoding the {native[0]}x{native[1]} clip to {HD[0]}x{HD[1]}")
    return scale_parts.transcoded(args.clip, HD, folder / f"{args.clip.stem}-1080p.mp4")


def measured(figures: dict[str, Any]) -> tuple[Measured, dict[str, str]]:
    """What the plan needs from this run's figures, and where each came from."""
    source: dict[str, str] = {}
    worker_fps, cores_each = None, usable_cores()
    one = figures.get("workers", {}).get("counts", {}).get("1", {})
    if "live" in one:
        worker_fps = float(one["live"]["detected_fps"])
        cores_each = int(one["threads_per_worker"])
        source["worker_fps"] = "workers: 1 worker, live, frames detected a second"
    table = figures.get("batch", {}).get("engine", {}).get("table", {})
    if worker_fps is None and "1" in table:
        worker_fps = float(table["1"]["fps"])
        source["worker_fps"] = "batch: bare engine, batch 1 (no workers part)"
    gain = table[str(max(int(b) for b in table))].get("ratio_paired") if table else None
    comp = figures.get("components", {})
    if not comp or "error" in comp:
        return Measured(worker_fps, cores_each, None, None, None, None, None, None, gain), source
    clip_name = "1080p" if "1080p" in comp else "native"
    clip = comp[clip_name]
    jpeg = comp.get("stills", clip["jpeg"])
    source["decode"] = f"components: {clip_name} clip ({clip['source']['size']}), PyAV 1 thread"
    source["jpeg"] = (
        f"components: {'the 1080p stills' if 'stills' in comp else clip_name + ' clip'} "
        f"({jpeg['size']}), quality {jpeg['quality']}"
    )
    redis = comp["redis"]
    per_msg_us = (
        redis["xadd"]["server_cpu_us_per_call"]
        + READS_PER_FRAME * redis["xrevrange"]["server_cpu_us_per_call"]
    )
    source["redis"] = "components: embedded Redis, server CPU per XADD + 2 reads"
    source["camera"] = CAMERA_SOURCE
    facts = Measured(
        worker_fps_cpu=worker_fps,
        cores_per_worker=cores_each,
        decode_cpu_ms=clip["decode_1_thread"]["cpu_ms_per_frame"],
        jpeg_cpu_ms=jpeg["encode_cpu_ms"],
        jpeg_bytes=jpeg["bytes_mean"],
        jpeg_decode_cpu_ms=jpeg["decode_cpu_ms"],
        redis_msgs_per_core_s=1e6 / per_msg_us if per_msg_us > 0 else None,
        source_bitrate_bps=CAMERA_BITRATE_BPS,
        batch_gain=gain,
    )
    return facts, source


# -- the command -------------------------------------------------------------------------------


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add = parser.add_argument
    add("--assets", type=Path, default=DEFAULT_ASSETS,
        help="the shared assets, holding video/ (default: ../shared/assets)")  # fmt: skip
    add("--clip", type=Path, help=f"the video (default: ASSETS/video/{CLIP_NAME})")
    add("--model", type=Path, help="the detector (default: the project's, models/)")
    add("--only", default=",".join(PARTS), help=f"comma list of parts ({','.join(PARTS)})")
    add("--workers", default="1,2,4", help="worker counts of the part workers (1,2,4)")
    add("--streams", type=int, default=4, help="live (and analyse) streams per worker count (4)")
    add("--phase-s", type=float, default=30.0, help="measured seconds of each phase (30)")
    add("--settle-s", type=float, default=10.0, help="unmeasured seconds before each phase (10)")
    add("--no-analyse", dest="analyse", action="store_false",
        help="workers: skip the analyse-mode phase")  # fmt: skip
    add("--size", choices=("1080p", "native"), default="1080p",
        help="workers and batch: the clip transcoded to 1920x1080 (1080p, the default), or "
        "as it is (native); components measure both")  # fmt: skip
    add("--batches", default="1,2,4,8", help="batch sizes of the part batch (1,2,4,8)")
    add("--batch-via", default=",".join(VIA),
        help="batch: engine (bare session), worker (whole pipeline), or engine,worker")  # fmt: skip
    add("--rounds", type=int, default=3, help="batch: interleaved rounds (3)")
    add("--frames", type=int, default=64,
        help="batch: timed frames per measurement, rounded up to whole batches (64)")  # fmt: skip
    add("--component-frames", type=int, default=200,
        help="components: frames decoded, encoded and decoded again (200)")  # fmt: skip
    add("--entries", type=int, default=2000, help="components: XADDs, then reads (2000)")
    add("--json", type=Path, help="default: bench-results/scale-<time>.json")
    return parser


def check(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """The parsed lists (parts, workers, batches, via), and what is wrong with the options."""
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    problems = [
        f"--only: no part {p!r} (parts: {', '.join(PARTS)})" for p in parts if p not in PARTS
    ]
    if not parts:
        problems.append(f"--only: name at least one part ({', '.join(PARTS)})")
    workers, bad = parse_counts(args.workers, "--workers", MAX_WORKERS)
    problems += bad
    batches, bad = parse_counts(args.batches, "--batches", MAX_BATCH)
    problems += bad
    via = [v.strip() for v in args.batch_via.split(",") if v.strip()]
    if not via or any(v not in VIA for v in via):
        problems.append(
            f"--batch-via takes a comma list of {', '.join(VIA)}, got {args.batch_via!r}"
        )
    for name, value, lo, hi in (
        ("--streams", args.streams, 1, MAX_STREAMS), ("--rounds", args.rounds, 1, 20),
        ("--frames", args.frames, 1, 10_000), ("--entries", args.entries, 1, 100_000),
        ("--component-frames", args.component_frames, 1, 5000),
    ):  # fmt: skip
        if not lo <= value <= hi:
            problems.append(f"{name} must be {lo}-{hi}, got {value}")
    if not 1 <= args.phase_s <= 600 or not 0 <= args.settle_s <= 120:
        problems.append(
            f"--phase-s must be 1-600 and --settle-s 0-120, got {args.phase_s:g} and "
            f"{args.settle_s:g}"
        )
    for what, path, flag in (("clip", args.clip, "--clip"), ("model", args.model, "--model")):
        if not path.is_file():
            problems.append(
                f"no {what} at {path}: pass {flag}, or --assets DIR, or put ../shared "
                "(its assets/) beside the repository"
            )
    lists = {"parts": parts, "workers": workers, "batches": batches, "via": via}
    return lists, problems


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments().parse_args(argv)
    args.clip = args.clip or args.assets / "video" / CLIP_NAME
    args.model = args.model or default_model_path()
    lists, problems = check(args)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    args.clip, args.model = args.clip.resolve(), args.model.resolve()
    parts = lists["parts"]
    json_path = args.json or Path("bench-results") / f"scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    figures: dict[str, Any] = {
        "arguments": sys.argv[1:] if argv is None else list(argv),
        "cores": usable_cores(), "cpu_count": os.cpu_count(), "clip": str(args.clip),
        "model": str(args.model), "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-scale-clip-") as tmp:
        try:
            args.run_clip = hd_clip(args, Path(tmp))
        except Exception as exc:  # an unreadable clip: a bad asset
            print(f"cannot transcode {args.clip} to 1080p: {exc}", file=sys.stderr)
            return 2
        figures["run_clip"] = str(args.run_clip) if args.run_clip == args.clip else "1080p"
        if "components" in parts:  # first: the lightest, and the plan needs it most
            _progress("components: decode, JPEG, Redis")
            figures["components"] = _run("components", lambda: components_part(args))
        if "batch" in parts:
            figures["batch"] = _run(
                "batch", lambda: batch_part(args, lists["batches"], lists["via"])
            )
        if "workers" in parts:
            figures["workers"] = _run("workers", lambda: workers_part(args, lists["workers"]))
    facts, source = measured(figures)
    figures["plan"] = {**plan(facts), "measured": dataclasses.asdict(facts), "sources": source}
    figures["wall_s"] = round(time.monotonic() - started, 1)
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(figures, indent=2) + "\n")
    print("\n".join(report_lines(figures, json_path)))
    failed = [p for p in parts if "error" in figures[p]]
    failed += [
        f"workers {n}"
        for n, r in figures.get("workers", {}).get("counts", {}).items()
        if "error" in r
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
