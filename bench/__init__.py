"""``pitchside bench``: the pipeline against its ceiling and against Ultralytics, on the real clip.

Six sections, side by side in one run, on the same clip and the same model:

(a) the bare engine (``onnxruntime``'s ``session.run``) on frames decoded and letterboxed
    beforehand: the ceiling (:mod:`bench.ceiling`);
(b) the whole pipeline unpaced (analyse mode), ingest to a WebSocket client, frames per
    second (:mod:`bench.pipeline`);
(c) Ultralytics' own streaming loop ``YOLO(model).predict(source=clip, stream=True)``
    (:mod:`bench.ultra`);
(d) live mode, paced at the clip's rate: latency from capture to WebSocket receipt, its
    percentiles and its trend (:mod:`bench.pipeline`);
(e) the clip from a real RTSP camera (GStreamer's RTSP server, needs Debian's
    python3-gi and gst-rtsp-server): the same live latency, then ``--reconnects`` times the
    time from the camera coming back to its first frame shown (:mod:`bench.cameras`);
(f) the clip from a WebRTC publisher over WHIP (aiortc, VP8): the same live latency, and
    from the publisher's encoder to the viewer (:mod:`bench.whip`).

Sections (a), (b) and (c) run ``--rounds`` times, interleaved (a b c a b c ...), and each
reports its median round: the speed of these shared machines drifts within a minute, and
interleaving spreads that drift over all three instead of loading it onto one ratio. (d),
(e) and (f) run once.

It prints one table, says which targets were met (:mod:`bench.report`) and
writes every raw figure to JSON. It is a benchmark, not a test: a missed target still exits
0; a section that could not run exits 1; a bad option, clip or model exits 2.

The benchmark is an entry point, a top-level package of its own: it may import every
service (it runs ingest, a worker and the gateway in one process), and nothing imports it.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import BenchConfig
from pitchside.errors import BenchError, ExitCode, PitchsideError, SettingsError
from pitchside.settings import Settings, imgsz_arg, usable_cores

if TYPE_CHECKING:  # imported when a run needs them: `pitchside --help` stays light
    from pitchside.models import ResolvedModel
    from workers.engines import Detector

REPO = Path(__file__).resolve().parents[1]
CLIP_NAME = "08fd33_4.mp4"
SECTIONS = ("a", "b", "c", "d", "e", "f")
ROUNDED = ("a", "b", "c")  # run --rounds times, interleaved
ONCE = tuple(key for key in SECTIONS if key not in ROUNDED)  # run once, after the rounds
TITLES = {
    "a": "the bare engine on pre-letterboxed frames (ceiling)",
    "b": "whole pipeline unpaced, ingest -> WebSocket",
    "c": "Ultralytics predict(stream=True)",
    "d": "live mode latency, capture -> WebSocket",
    "e": "RTSP camera live latency and reconnection",
    "f": "WebRTC (WHIP) publisher live latency",
}
DEFAULT_ASSETS = REPO.parent / "shared" / "assets"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``pitchside bench``."""
    parser.add_argument(
        "--assets", type=Path, default=DEFAULT_ASSETS,
        help="the shared test assets, holding video/ and models/ (default: ../shared/assets "
        "beside the repository)",
    )  # fmt: skip
    parser.add_argument(
        "--clip", type=Path, help=f"video to run (default: ASSETS/video/{CLIP_NAME})"
    )
    parser.add_argument(
        "--model",
        help="ONNX detector, also for (c) (default: PITCHSIDE_MODEL, else "
        "models/pitchside-football.onnx); e.g. ../shared/assets/models/yolov8n_int8.onnx",
    )
    parser.add_argument("--imgsz", type=imgsz_arg, default=640, help="long side of the input (640)")
    parser.add_argument(
        "--threads", type=int, default=usable_cores(),
        help="inference threads: the worker's (PITCHSIDE_THREADS) in (a), (b), (d)-(f), ORT and "
        "torch threads in (c) (default: the usable cores, %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--frames", type=int,
        help="timed frames of (a), (b) and (c) (default: the clip's frame count; the clip "
        "loops to reach more; (b) rounds up to whole batches)",
    )  # fmt: skip
    parser.add_argument(
        "--warmup", type=int, default=10, help="untimed frames before (a), (b), (c) (10)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3,
        help="times (a), (b) and (c) run, interleaved; each reports its median round (3)",
    )  # fmt: skip
    parser.add_argument(
        "--live-seconds", type=float, default=60.0, help="measured seconds of (d), (e), (f) (60)"
    )
    parser.add_argument(
        "--live-warmup", type=float, default=2.0,
        help="untimed seconds before the window of (d), (e), (f) (2)",
    )  # fmt: skip
    parser.add_argument(
        "--reconnects", type=int, default=3,
        help="times (e) stops its camera and starts it again, timing its return (3)",
    )  # fmt: skip
    parser.add_argument(
        "--json", type=Path,
        help="where to write the results (default: bench-results/bench-<timestamp>.json)",
    )  # fmt: skip
    parser.add_argument(
        "--only", default=",".join(SECTIONS),
        help=f"sections to run, e.g. a,b (default: {','.join(SECTIONS)})",
    )  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="log the services at INFO")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen sections, print the table, write the JSON; the exit status.

    Raises:
        SettingsError: a bad option, clip or model (exit status 2).
    """
    load_before = os.getloadavg()
    config, settings, resolved = _configure(args, settings)
    from bench import report
    from pitchside.logs import setup_logging

    setup_logging(settings.replace(log_level="INFO" if args.verbose else "WARNING"), "bench")
    json_path = args.json or Path("bench-results") / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    _progress(f"loading {config.model} ({config.threads} threads, imgsz {config.imgsz})")
    try:
        from workers.engines import load_for_worker

        detectors = load_for_worker(resolved, settings)
    except (PitchsideError, ImportError) as exc:
        raise SettingsError(f"cannot load the model: {exc}") from exc
    rounds: dict[str, list[dict[str, Any]]] = {key: [] for key in config.sections}
    for n in range(config.rounds):
        for key in (k for k in config.sections if k in ROUNDED):
            label = f"round {n + 1}/{config.rounds}" if config.rounds > 1 else ""
            rounds[key].append(_section(key, config, settings, detectors, label))
    for key in (k for k in config.sections if k in ONCE):
        rounds[key].append(_section(key, config, settings, detectors))
    sections = {key: _median_round(results) for key, results in rounds.items()}
    detector = detectors[0]
    targets = report.evaluate(sections)
    doc = {
        "arguments": sys.argv[1:],
        "environment": _environment(detector, load_before),
        "config": {
            "clip": str(config.clip),
            "model": str(config.model),
            "model_id": detector.model_id,
            "model_input_shape": list(detector.engine.input_shape),
            "imgsz": config.imgsz,
            "threads": config.threads,
            "frames": config.frames,
            "warmup_frames": config.warmup,
            "live_seconds": config.live_seconds,
            "live_warmup_s": config.live_warmup_s,
            "rounds": config.rounds,
            "reconnects": config.reconnects,
            "lanes": settings.lanes,
            "sections": list(config.sections),
            "conf": settings.conf,
            "iou": settings.iou,
        },
        "sections": sections,
        "ratios": _ratios(sections),
    }
    report.write_json(json_path, doc, targets)
    shape = sections.get("a", {}).get("input_shape") or list(detector.engine.input_shape)
    header = (
        f"pitchside bench: {detector.model_id}, input {shape}, "
        f"{config.threads} threads, {config.clip.name}; "
        f"load average before {load_before[0]:.2f} on {os.cpu_count()} CPUs"
    )
    report.print_table(header, sections, targets, json_path, sys.stdout)
    failed = any("error" in s for s in sections.values())
    return ExitCode.FAILED if failed else ExitCode.OK


def _configure(
    args: argparse.Namespace, settings: Settings
) -> tuple[BenchConfig, Settings, ResolvedModel]:
    """Check the options, the clip and the model; the config, settings and resolved model.

    Raises:
        SettingsError: with a message a user can act on.
    """
    from pitchside.models import resolve

    sections = tuple(s for s in SECTIONS if s in {p.strip() for p in args.only.split(",")})
    unknown = {p.strip() for p in args.only.split(",")} - set(SECTIONS)
    if unknown or not sections:
        raise SettingsError(
            f"--only takes a comma list of {', '.join(SECTIONS)}; got {args.only!r}"
        )
    for name, value, low in (
        ("--threads", args.threads, 1),
        ("--warmup", args.warmup, 0),
        ("--rounds", args.rounds, 1),
        ("--reconnects", args.reconnects, 0),
    ):
        if value < low:
            raise SettingsError(f"{name} must be at least {low}, got {value}")
    if args.frames is not None and args.frames < 2:
        raise SettingsError(f"--frames must be at least 2, got {args.frames}")
    if args.live_seconds <= 0 or args.live_warmup < 0:
        raise SettingsError("--live-seconds must be positive and --live-warmup not negative")
    clip = args.clip or args.assets / "video" / CLIP_NAME
    if not clip.is_file():
        raise SettingsError(
            f"clip not found: {clip}; give --clip PATH, or --assets DIR (the folder holding "
            "video/), or put ../shared beside the repository"
        )
    settings = settings.replace(imgsz=args.imgsz, threads=args.threads)
    if args.model:
        settings = settings.replace(model=args.model)
    resolved = resolve(settings.model_uri, settings)
    if not resolved.path.exists():
        hint = "" if (args.model or settings.model) else " (the default detector: train it)"
        raise SettingsError(
            f"model not found: {resolved.path}{hint}; give --model PATH or set "
            f"PITCHSIDE_MODEL, e.g. --model {args.assets / 'models' / 'yolov8n_int8.onnx'}"
        )
    from bench.ceiling import count_frames

    frames = args.frames or count_frames(clip)
    config = BenchConfig(
        clip=clip.resolve(), model=resolved.path.resolve(), imgsz=args.imgsz,
        threads=args.threads, frames=frames, warmup=args.warmup,
        live_seconds=args.live_seconds, live_warmup_s=args.live_warmup, sections=sections,
        rounds=args.rounds, reconnects=args.reconnects,
    )  # fmt: skip
    return config, settings, resolved


def _median_round(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median fps (the lower middle of an even count), with every
    round's fps beside it; the first error when a round could not run."""
    failed = [r for r in results if "error" in r]
    if failed:
        return failed[0]
    if len(results) == 1:
        return results[0]
    ranked = sorted(results, key=lambda r: r["fps"])
    return {**ranked[(len(ranked) - 1) // 2], "fps_rounds": [r["fps"] for r in results]}


def _section(
    key: str,
    config: BenchConfig,
    settings: Settings,
    detectors: tuple[Detector, Detector],
    label: str = "",
) -> dict[str, Any]:
    """Run one section; its figures, or ``{"error": ...}`` when it could not run."""
    from bench import cameras, ceiling, pipeline, ultra, whip

    timed = f"{config.live_seconds:g} s after {config.live_warmup_s:g} s warm-up"
    what = {
        "a": f"{config.frames} frames after {config.warmup} warm-up",
        "b": f"{config.frames} frames after {config.warmup} warm-up",
        "c": f"{config.frames} frames after {config.warmup} warm-up",
        "d": timed,
        "e": f"{timed}, then {config.reconnects} reconnections",
        "f": timed,
    }[key]
    _progress(f"({key}) {TITLES[key]}: {what}" + (f", {label}" if label else ""))
    load = os.getloadavg()[0]
    started = time.monotonic()
    try:
        if key == "a":
            result = ceiling.run_ceiling(
                detectors[1], config.clip, config.frames, config.warmup, settings.lanes
            )
            live = result
            if detectors[1] is not detectors[0]:  # live streams infer on every thread
                live = ceiling.run_ceiling(detectors[0], config.clip, config.frames, config.warmup)
            result["live_median_ms"] = live["median_ms"]
        elif key == "b":
            result = pipeline.run_unpaced(config, settings, detectors)
        elif key == "c":
            result = ultra.run_ultralytics(config, settings.conf, settings.iou)
        elif key == "d":
            result = pipeline.run_live(config, settings, detectors)
        elif key == "e":
            result = cameras.run_rtsp(config, settings, detectors)
        else:
            result = whip.run_whip(config, settings, detectors)
    except BenchError as exc:
        result = {"error": str(exc)}
    except Exception as exc:  # a benchmark reports a broken section and goes on
        log.exception("section (%s) failed", key)
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result["load_average_before"] = round(load, 2)
    result["wall_s"] = round(time.monotonic() - started, 2)
    if "error" in result:
        _progress(f"({key}) failed: {result['error']}")
    return result


def _ratios(sections: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    fps: dict[str, float] = {
        k: float(s["fps"]) for k, s in sections.items() if "error" not in s and s.get("fps")
    }

    def ratio(x: str, y: str) -> float | None:
        return round(fps[x] / fps[y], 3) if x in fps and y in fps else None

    return {"b_over_a": ratio("b", "a"), "b_over_c": ratio("b", "c")}


def _environment(detector: Detector, load_before: tuple[float, float, float]) -> dict[str, Any]:
    import onnxruntime

    import pitchside

    cpu_model = next(
        (line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    return {
        "pitchside": pitchside.__version__,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "load_average_before": [round(x, 2) for x in load_before],
        "onnxruntime": onnxruntime.__version__,
        "ort_available_providers": onnxruntime.get_available_providers(),
        "providers": list(detector.engine.providers),
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
            timeout=5, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _progress(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)
