"""What the tracker stage costs, and how fast a stream is tracked again when its tracker dies.

    python -m bench.tracking [--assets DIR] [--clip PATH] [--model PATH] [--frames 2000]
        [--rounds 2] [--live-seconds 30] [--live-warmup 5] [--kills 3] [--lease-s 3]
        [--only time,live,stack,takeover] [--json PATH]

Four parts, in this order:

time
    :meth:`tracker.stream.StreamTracker.update` per frame on a generated scene
    (:mod:`bench.scenes`: 22 players with their keepers, a referee and two assistants, the
    ball, a few false positives: about 25 boxes a frame) at 25 fps frame times, at the clip's
    frame size. Once without pixels (association, ball, possession), once as the tracker stage
    calls it: when :meth:`~tracker.stream.StreamTracker.wants_pixels` says so, the frame comes
    with a callable that decodes a JPEG of one real frame of the clip (ingest's quality), so
    that team sampling (decode and crops) is in the time of the frames that need it. Also
    one JPEG decode alone.
live
    Section (d) of ``pitchside bench`` (ingest, a worker and the gateway in this process,
    latency capture -> WebSocket receipt), without and with a tracker in the path, alternately,
    ``--rounds`` times each, the same detectors throughout: the latency percentiles of each
    (every round's samples pooled), the p95 the tracker adds (target: at most
    :data:`MAX_ADDED_P95_MS`), the share of frames that came with tracks, and the tracker
    stage's span (detections written -> tracks written).
stack
    The same comparison through ``pitchside up`` (every service its own process, as it runs
    for users), a fresh stack per run, with ``PITCHSIDE_TRACKERS=0`` and ``1`` alternately,
    ``--rounds`` times each: latency receipt - capture of every frame after the warm-up.
takeover
    ``pitchside up`` with two trackers and a ``--lease-s`` lease (embedded Redis, the clip
    looping as a live stream, one WebSocket viewer). ``--kills`` times: read which tracker
    tracks the stream from the frames' ``tracker``, SIGKILL that process, and time until a
    frame comes with tracks written after the kill, the longest gap between any two frames
    received meanwhile (the video must not stop), and which tracker took over (the other, or
    the killed one restarted by the supervisor under its name). The next kill waits for the
    killed tracker's new heartbeat.

It prints a small table and writes every figure to JSON. A benchmark, not a test: a missed
target still exits 0; a part that could not run exits 1; a bad option or a missing asset 2.

It reads its settings from the process environment as ``pitchside bench`` does, here, its
entry point, and nowhere else; :mod:`bench.up` starts ``pitchside up`` for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import av
import cv2
import httpx
import numpy as np
import numpy.typing as npt
from websockets.asyncio.client import connect

from bench import up
from bench.common import BenchConfig, run_part
from bench.scenes import Scene, SceneConfig, generate
from bench.stats import summary_ms
from gateway import protocol
from pitchside.errors import BenchError, PitchsideError, SettingsError
from pitchside.service import run_async
from pitchside.settings import Settings, usable_cores
from tracker.stream import StreamTracker

if TYPE_CHECKING:  # loaded when the part `live` runs
    from workers.engines import Detector

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ASSETS = REPO.parent / "shared" / "assets"
CLIP_NAME = "08fd33_4.mp4"
MODEL_NAME = "yolov8n_int8.onnx"  # COCO: "person", "sports ball"
PARTS = ("time", "live", "stack", "takeover")

MAX_ADDED_P95_MS = 10.0  # issue 10: the tracker adds at most this to the live p95
FRAME_INDEX = 60  # the clip's frame whose pixels the teams sample
DECODES = 50  # JPEG decodes timed alone
WARM_FRAMES = 50  # tracked untimed first: imports, allocations
# With SceneConfig's 22 players (two of them keepers): a referee and two assistants, and a
# weaker detector's false positives: about 25 boxes a frame.
SCENE_REFEREES = 3
SCENE_FP_RATE = 5.0

TRACKED_S = 60.0  # the stream's first tracked frame, and both trackers' heartbeats, by then
AFTER_S = 2.0  # frames watched after the takeover, for the longest gap
RESTART_S = 60.0  # the killed tracker beats again by then
RESTART_POLL_S = 0.1
POLL_S = 0.05
SID = "bench-takeover"
STACK_SID = "bench-stack"
T = TypeVar("T")


def _run(part: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    return run_part(part, work, _progress)


def _progress(text: str) -> None:
    print(f"[bench.tracking] {text}", file=sys.stderr, flush=True)


# -- time: StreamTracker.update per frame ------------------------------------------------------


class _Pixels:
    """The tracker stage's image callable: decodes one JPEG each time it is asked; counts."""

    def __init__(self, jpeg: bytes) -> None:
        self.jpeg = jpeg
        self.calls = 0

    def __call__(self) -> npt.NDArray[Any] | None:
        self.calls += 1
        image = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
        return image if image is not None else None


def clip_frame(clip: Path, index: int) -> npt.NDArray[Any]:
    """Frame ``index`` of ``clip`` (its last, if shorter), decoded to BGR."""
    found = None
    with av.open(str(clip)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            found = frame
            if n >= index:
                break
    if found is None:
        raise BenchError(f"{clip} has no video frame")
    image: npt.NDArray[Any] = found.to_ndarray(format="bgr24")
    return image


def replay(scene: Scene, pixels: _Pixels | None, frames: int | None = None) -> dict[str, Any]:
    """``scene`` through a new StreamTracker, as the tracker stage feeds it; per frame its
    milliseconds and whether it decoded pixels."""
    stream = StreamTracker(scene.config.fps, scene.config.width)
    times_ms: list[float] = []
    decoded: list[bool] = []
    for frame in scene.frames[:frames]:
        before = pixels.calls if pixels is not None else 0
        start = time.perf_counter()
        image = pixels if pixels is not None and stream.wants_pixels() else None
        stream.update(scene.detections.get(frame, []), scene.time_s(frame), image)
        times_ms.append((time.perf_counter() - start) * 1000)
        decoded.append(pixels is not None and pixels.calls > before)
    with_pixels = [t for t, d in zip(times_ms, decoded, strict=True) if d]
    return {
        "ms": summary_ms(times_ms),
        "pixel_frames": len(with_pixels),
        "pixel_frames_ms": summary_ms(with_pixels),
        "teams_found": bool(stream.teams.colours()),
    }


def tracker_time(clip: Path, frames: int, quality: int) -> dict[str, Any]:
    """The part ``time``: see the module docstring."""
    bgr = clip_frame(clip, FRAME_INDEX)
    height, width = bgr.shape[:2]
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise BenchError("OpenCV could not encode the clip's frame as JPEG")
    jpeg = bytes(buf)
    decode = _Pixels(jpeg)
    decode_ms = []
    for _ in range(DECODES):
        start = time.perf_counter()
        decode()
        decode_ms.append((time.perf_counter() - start) * 1000)
    config = SceneConfig(
        frames=frames, width=width, height=height, referees=SCENE_REFEREES, fp_rate=SCENE_FP_RATE
    )
    scene = generate(config)
    boxes = [len(scene.detections.get(f, [])) for f in scene.frames]
    replay(scene, _Pixels(jpeg), WARM_FRAMES)
    return {
        "frames": len(scene.frames),
        "fps": scene.config.fps,
        "size": [width, height],
        "boxes_per_frame": {
            "mean": round(float(np.mean(boxes)), 2),
            "p5": float(np.percentile(boxes, 5)),
            "p95": float(np.percentile(boxes, 95)),
        },
        "jpeg": {"bytes": len(jpeg), "quality": quality, "decode_ms": summary_ms(decode_ms)},
        "no_pixels": replay(scene, None),
        "with_pixels": replay(scene, _Pixels(jpeg)),
    }


# -- live: section (d) without and with the tracker --------------------------------------------


def _pooled(runs: Sequence[dict[str, Any]]) -> dict[str, float | int]:
    return summary_ms([sample[1] for run in runs for sample in run["samples"]])


def _round_median(runs: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [run["tracking"][key]["p50_ms"] for run in runs if "tracking" in run]
    return round(statistics.median(values), 2) if values else None


def live_latency(
    config: BenchConfig, settings: Settings, detectors: tuple[Detector, Detector], rounds: int
) -> dict[str, Any]:
    """The part ``live``: see the module docstring."""
    from bench import pipeline

    runs: dict[str, list[dict[str, Any]]] = {"untracked": [], "tracked": []}
    for n in range(rounds):
        for key in runs:
            _progress(
                f"live {key}, round {n + 1}/{rounds}: {config.live_seconds:g} s after "
                f"{config.live_warmup_s:g} s warm-up"
            )
            result = pipeline.run_live(config, settings, detectors, tracked=key == "tracked")
            runs[key].append(result)
    tracked, bare = runs["tracked"], runs["untracked"]
    latency = {key: _pooled(value) for key, value in runs.items()}
    frames = sum(r.get("tracking", {}).get("frames", 0) for r in tracked)
    messages = sum(r["messages"] for r in tracked)
    added = latency["tracked"]["p95_ms"] - latency["untracked"]["p95_ms"]
    return {
        "rounds": rounds,
        "latency_ms": latency,
        "p95_rounds_ms": {k: [r["latency_ms"]["p95_ms"] for r in v] for k, v in runs.items()},
        "added_p95_ms": round(added, 2),
        "target_added_p95_ms": MAX_ADDED_P95_MS,
        "met": added <= MAX_ADDED_P95_MS,
        "tracked_share": round(frames / messages, 4) if messages else 0.0,
        "tracker_span_ms": {  # dets_publish -> tracks_publish, the median run's
            "p50": _round_median(tracked, "dets_publish->tracks_publish_ms"),
            "p95": _round_p95(tracked),
            "tracks_publish->gateway_send_p50": _round_median(
                tracked, "tracks_publish->gateway_send_ms"
            ),
        },
        "runs": {"untracked": bare, "tracked": tracked},
    }


def _round_p95(runs: Sequence[dict[str, Any]]) -> float | None:
    values = [
        r["tracking"]["dets_publish->tracks_publish_ms"]["p95_ms"] for r in runs if "tracking" in r
    ]
    return round(statistics.median(values), 2) if values else None


def load_detectors(settings: Settings) -> tuple[Detector, Detector]:
    """The (live, lanes) detectors of ``settings.model``, loaded once as ``pitchside bench``
    loads them."""
    from pitchside.models import resolve
    from workers.engines import load_for_worker

    try:
        return load_for_worker(resolve(settings.model_uri, settings), settings)
    except (PitchsideError, ImportError) as exc:
        raise SettingsError(f"cannot load the model: {exc}") from exc


# -- takeover: SIGKILL the owning tracker ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    """One frame message as the viewer received it."""

    receipt_ns: int  # epoch ns
    seq: int
    tracker: str | None  # who tracked it; None: it came with its detections only
    tracks_ns: int | None  # its tracks_publish stamp, epoch ns
    capture_ns: int = 0  # its ts_capture, epoch ns


@contextlib.contextmanager
def pitchside_up(
    tmp: Path, model: Path, clip: Path, trackers: int, lease_s: float
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``pitchside up`` with one worker and ``trackers`` trackers; yields its URL and process."""
    log_path = tmp / "up.log"
    try:
        with up.pitchside_up(
            tmp / "data", log_path, PITCHSIDE_MODEL=str(model), PITCHSIDE_WORKERS="1",
            PITCHSIDE_THREADS=str(usable_cores()), PITCHSIDE_TRACKERS=str(trackers),
            PITCHSIDE_TRACKER_LEASE_S=str(lease_s), PITCHSIDE_MEDIA_ALLOW=str(clip),
        ) as running:  # fmt: skip
            yield running
    except BaseException:
        if log_path.exists():
            _progress(f"pitchside up said: {up.tail(log_path)}")
        raise


def tracker_pid(parent: int, name: str) -> int:
    """The pid of the child of ``parent`` started with ``--name name``."""
    for pid in up.children_of(parent):
        if _runs_as(pid, name):
            return pid
    raise BenchError(f"no child of pitchside up (pid {parent}) runs with --name {name}")


def _runs_as(pid: int, name: str) -> bool:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # gone meanwhile
        return False
    return any(a == b"--name" and b == name.encode() for a, b in zip(args, args[1:], strict=False))


async def _beats(http: httpx.AsyncClient) -> dict[str, str]:
    """The live trackers' names and metrics addresses (a restarted one has a new address)."""
    groups = (await http.get("/api/sd/prometheus")).json()
    return {
        g["labels"]["instance_name"]: g["targets"][0]
        for g in groups
        if g["labels"].get("service") == "tracker" and g["targets"]
    }


async def _view(url: str, seen: list[Seen], stop: asyncio.Event) -> None:
    """Append every frame message of the viewer WebSocket ``url`` to ``seen`` until ``stop``."""
    async with connect(url, max_size=None, open_timeout=10) as ws:
        while not stop.is_set():
            try:
                data = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            if isinstance(data, str):
                continue  # hello, stats
            receipt_ns = time.time_ns()
            meta, _ = protocol.decode_binary(data)
            tracks_ns = meta["timings"].get("tracks_publish")
            seen.append(
                Seen(
                    receipt_ns, int(meta["seq"]), meta.get("tracker"), tracks_ns,
                    int(meta["ts_capture"]),
                )
            )  # fmt: skip


async def _wait(
    probe: Callable[[], T | None], timeout_s: float, viewer: asyncio.Task[None], what: str
) -> T:
    """Poll ``probe`` until it gives something; BenchError after ``timeout_s`` or when the
    viewer stopped."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found is not None:
            return found
        if viewer.done():
            error = None if viewer.cancelled() else viewer.exception()
            raise BenchError(f"the viewer stopped while waiting for {what}: {error!r}")
        if time.monotonic() > deadline:
            raise BenchError(f"no {what} in {timeout_s:g} s")
        await asyncio.sleep(POLL_S)


async def _beating(http: httpx.AsyncClient, names: set[str], timeout_s: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while (beats := await _beats(http)).keys() < names:
        if time.monotonic() > deadline:
            raise BenchError(f"trackers {sorted(names)} not all beating in {timeout_s:g} s")
        await asyncio.sleep(0.25)
    return beats


async def _restarted(http: httpx.AsyncClient, name: str, old: str, kill_ns: int) -> float:
    """Seconds from ``kill_ns`` until tracker ``name`` beats with a new metrics address."""
    deadline = time.monotonic() + RESTART_S
    while (await _beats(http)).get(name) in (None, old):
        if time.monotonic() > deadline:
            raise BenchError(f"{name} did not beat again {RESTART_S:g} s after its kill")
        await asyncio.sleep(RESTART_POLL_S)
    return (time.time_ns() - kill_ns) / 1e9


async def _kill_once(
    http: httpx.AsyncClient,
    up_pid: int,
    seen: list[Seen],
    viewer: asyncio.Task[None],
    names: set[str],
    lease_s: float,
) -> dict[str, Any]:
    """Kill the stream's tracker once; the figures of its takeover."""
    before = await _beating(http, names, RESTART_S)
    owner = next(s.tracker for s in reversed(seen) if s.tracker)
    pid = tracker_pid(up_pid, owner)
    start = len(seen)
    os.kill(pid, signal.SIGKILL)
    kill_ns = time.time_ns()
    restart = asyncio.create_task(_restarted(http, owner, before[owner], kill_ns))
    try:
        resume_s = 10 * lease_s + 30
        tracked, after = "frame with tracks after the kill", f"frame {AFTER_S:g} s after that"
        await _wait(lambda: takeover_figures(seen[start:], kill_ns), resume_s, viewer, tracked)
        figures = await _wait(lambda: _settled(seen, start, kill_ns), 30, viewer, after)
        restarted_s = await restart
    finally:
        restart.cancel()
    return {
        "killed": owner,
        "pid": pid,
        **figures,
        "resumed_by_restarted": figures["resumed_by"] == owner,
        "restarted_s": round(restarted_s, 2),
    }


def _settled(seen: list[Seen], start: int, kill_ns: int) -> dict[str, Any] | None:
    """The takeover's figures once a frame came :data:`AFTER_S` after the resumption."""
    figures = takeover_figures(seen[max(0, start - 1) :], kill_ns)
    if figures is None or (seen[-1].receipt_ns - kill_ns) / 1e9 < figures["untracked_s"] + AFTER_S:
        return None
    return figures


def takeover_figures(
    seen: Sequence[Seen], kill_ns: int, after_s: float = AFTER_S
) -> dict[str, Any] | None:
    """A tracker killed at ``kill_ns`` (epoch ns) as a viewer saw it (``seen``: in order of
    receipt); None until a frame came with tracks written after the kill (frames tracked
    before it may still arrive after it).

    Returns:
        ``untracked_s``: from the kill to that frame's receipt; ``resumed_by``: the tracker
        that wrote its tracks; ``frames_without_tracks`` received meanwhile; ``max_gap_s``:
        the longest time between two frames received, from the last before the kill to
        ``after_s`` after the resumption.
    """
    back = next((s for s in seen if s.tracks_ns is not None and s.tracks_ns > kill_ns), None)
    if back is None:
        return None
    until_ns = back.receipt_ns + after_s * 1e9
    window = [s for s in seen if s.receipt_ns <= kill_ns][-1:]
    window += [s for s in seen if kill_ns < s.receipt_ns <= until_ns]
    gaps = [(b.receipt_ns - a.receipt_ns) / 1e9 for a, b in zip(window, window[1:], strict=False)]
    bare = [s for s in window if kill_ns < s.receipt_ns < back.receipt_ns and s.tracker is None]
    return {
        "untracked_s": round((back.receipt_ns - kill_ns) / 1e9, 3),
        "resumed_by": back.tracker,
        "frames_without_tracks": len(bare),
        "max_gap_s": round(max(gaps, default=0.0), 3),
    }


async def _takeover(
    base: str, up_pid: int, clip: Path, kills: int, lease_s: float, trackers: int
) -> dict[str, Any]:
    names = {f"tracker-{i}" for i in range(1, trackers + 1)}
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        body = {"source": str(clip), "id": SID, "mode": "live", "loop": True}
        resp = await http.post("/api/streams", json=body)
        if resp.status_code != 201:
            raise BenchError(f"starting the stream answered {resp.status_code}: {resp.text}")
        seen: list[Seen] = []
        stop = asyncio.Event()
        ws_url = base.replace("http://", "ws://") + f"/ws/streams/{SID}"
        viewer = asyncio.create_task(_view(ws_url, seen, stop), name="viewer")
        try:
            await _wait(
                lambda: any(s.tracker for s in seen[-3:]) or None,
                TRACKED_S,
                viewer,
                "tracked frame",
            )
            await _beating(http, names, TRACKED_S)
            results = []
            for n in range(kills):
                result = await _kill_once(http, up_pid, seen, viewer, names, lease_s)
                _progress(f"kill {n + 1}/{kills}: {result}")
                results.append(result)
        finally:
            stop.set()
            await asyncio.gather(viewer, return_exceptions=True)
    return {"kills": results, "frames_seen": len(seen)}


def takeover(
    clip: Path, model: Path, kills: int, lease_s: float, trackers: int = 2
) -> dict[str, Any]:
    """The part ``takeover``: see the module docstring."""
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        with pitchside_up(Path(tmp), model, clip, trackers, lease_s) as (base, proc):
            result = run_async(_takeover(base, proc.pid, clip, kills, lease_s, trackers))
    rows = result["kills"]

    def spread(key: str) -> dict[str, float]:
        values = [r[key] for r in rows]
        return {"median": round(statistics.median(values), 3), "max": max(values)}

    return {
        "trackers": trackers,
        "lease_s": lease_s,
        **result,
        "untracked_s": spread("untracked_s"),
        "max_gap_s": spread("max_gap_s"),
        "restarted_s": spread("restarted_s"),
        "resumed_by": [r["resumed_by"] for r in rows],
    }


async def _stack_run(base: str, clip: Path, warmup_s: float, seconds: float) -> dict[str, Any]:
    """One live run on a running stack: latency receipt - capture of every frame after the
    warm-up, and the share of them that came with tracks."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        body = {"source": str(clip), "id": STACK_SID, "mode": "live", "loop": True}
        resp = await http.post("/api/streams", json=body)
        if resp.status_code != 201:
            raise BenchError(f"starting the stream answered {resp.status_code}: {resp.text}")
        seen: list[Seen] = []
        stop = asyncio.Event()
        ws_url = base.replace("http://", "ws://") + f"/ws/streams/{STACK_SID}"
        viewer = asyncio.create_task(_view(ws_url, seen, stop), name="viewer")

        def long_enough() -> bool | None:
            if not seen:
                return None
            return (seen[-1].receipt_ns - seen[0].receipt_ns) / 1e9 >= warmup_s + seconds or None

        try:
            await _wait(long_enough, up.START_S + warmup_s + seconds, viewer, "the run's frames")
        finally:
            stop.set()
            await asyncio.gather(viewer, return_exceptions=True)
    start_ns = seen[0].receipt_ns + warmup_s * 1e9
    window = [f for f in seen if f.receipt_ns >= start_ns]
    latency = [(f.receipt_ns - f.capture_ns) / 1e6 for f in window]
    return {
        "frames": len(window),
        "latency_ms": summary_ms(latency),
        "samples": [[0, v] for v in latency],
        "tracked_share": round(sum(f.tracker is not None for f in window) / len(window), 4),
    }


def stack_latency(
    clip: Path, model: Path, rounds: int, warmup_s: float, seconds: float
) -> dict[str, Any]:
    """The part ``stack``: live latency through `pitchside up` (every service its own process)
    with no tracker and with one, alternately, each run on a fresh stack."""
    runs: dict[str, list[dict[str, Any]]] = {"untracked": [], "tracked": []}
    for n in range(rounds):
        for key, trackers in (("untracked", 0), ("tracked", 1)):
            _progress(f"stack {key}, round {n + 1}/{rounds}: {seconds:g} s after {warmup_s:g} s")
            with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
                with pitchside_up(Path(tmp), model, clip, trackers, 3.0) as (base, _):
                    runs[key].append(run_async(_stack_run(base, clip, warmup_s, seconds)))
    latency = {key: _pooled(value) for key, value in runs.items()}
    added = latency["tracked"]["p95_ms"] - latency["untracked"]["p95_ms"]
    return {
        "rounds": rounds,
        "latency_ms": latency,
        "p95_rounds_ms": {k: [r["latency_ms"]["p95_ms"] for r in v] for k, v in runs.items()},
        "added_p95_ms": round(added, 2),
        "target_added_p95_ms": MAX_ADDED_P95_MS,
        "met": added <= MAX_ADDED_P95_MS,
        "tracked_share": min((r["tracked_share"] for r in runs["tracked"]), default=0.0),
        "runs": {k: [{**r, "samples": len(r["samples"])} for r in v] for k, v in runs.items()},
    }


def _stack_rows(v: dict[str, Any]) -> list[tuple[str, str]]:
    per_round = v["p95_rounds_ms"]
    three = ("p50", "p95", "p99")
    verdict = "met" if v["met"] else "MISSED"
    return [
        (f"stack: `pitchside up`, each service a process, {v['rounds']} runs of each", ""),
        ("  without a tracker", _p(v["latency_ms"]["untracked"], three)),
        ("  with one tracker", _p(v["latency_ms"]["tracked"], three)),
        (
            f"  p95 added (target <= {v['target_added_p95_ms']:g} ms)",
            f"{v['added_p95_ms']:+.1f} ms: {verdict}",
        ),
        ("  p95 of each run, without / with", f"{per_round['untracked']} / {per_round['tracked']}"),
        (
            "  frames with tracks, the lowest tracked run",
            f"{100 * v['tracked_share']:.1f} %",
        ),
    ]


# -- the command -------------------------------------------------------------------------------


def _p(summary: dict[str, Any], keys: Sequence[str] = ("p50", "p99")) -> str:
    if not summary.get("n"):
        return "none"
    return ", ".join(f"{key} {summary[f'{key}_ms']:.2f} ms" for key in keys)


def _spread(values: dict[str, float]) -> str:
    return f"median {values['median']:.2f} s, max {values['max']:.2f} s"


def _time_rows(t: dict[str, Any]) -> list[tuple[str, str]]:
    pixels, jpeg, (w, h) = t["with_pixels"], t["jpeg"], t["size"]
    boxes = f"{t['boxes_per_frame']['mean']:.1f} boxes/frame"
    return [
        (f"time: tracker per frame, {t['frames']} frames, {boxes}, {w}x{h}", ""),
        ("  without pixels", _p(t["no_pixels"]["ms"])),
        ("  with pixels when it asks (as the stage runs)", _p(pixels["ms"])),
        (
            f"  the {pixels['pixel_frames']} frames that decoded pixels",
            _p(pixels["pixel_frames_ms"]),
        ),
        (
            f"  JPEG decode of one frame ({jpeg['bytes'] // 1000} kB)",
            _p(jpeg["decode_ms"], ["p50"]),
        ),
    ]


def _live_rows(v: dict[str, Any]) -> list[tuple[str, str]]:
    span, per_round = v["tracker_span_ms"], v["p95_rounds_ms"]
    verdict = "met" if v["met"] else "MISSED"
    three = ("p50", "p95", "p99")
    stage = f"p50 {span['p50']} ms, p95 {span['p95']} ms"
    return [
        (f"live: latency capture -> WebSocket, {v['rounds']} runs of each, pooled", ""),
        ("  without the tracker", _p(v["latency_ms"]["untracked"], three)),
        ("  with the tracker", _p(v["latency_ms"]["tracked"], three)),
        (
            f"  p95 added (target <= {v['target_added_p95_ms']:g} ms)",
            f"{v['added_p95_ms']:+.1f} ms: {verdict}",
        ),
        ("  p95 of each run, without / with", f"{per_round['untracked']} / {per_round['tracked']}"),
        ("  frames with tracks in the tracked runs", f"{100 * v['tracked_share']:.1f} %"),
        ("  tracker stage, dets_publish -> tracks_publish (median run)", stage),
    ]


def _takeover_rows(k: dict[str, Any]) -> list[tuple[str, str]]:
    what = f"{len(k['kills'])} kills, {k['trackers']} trackers, lease {k['lease_s']:g} s"
    turns = ", ".join(f"{r['killed']} -> {r['resumed_by']}" for r in k["kills"])
    return [
        (f"takeover: SIGKILL the stream's tracker, {what}", ""),
        ("  kill -> first frame with tracks again", _spread(k["untracked_s"])),
        ("  longest gap between frames received", _spread(k["max_gap_s"])),
        ("  kill -> killed tracker beating again", _spread(k["restarted_s"])),
        ("  killed -> resumed by", turns),
    ]


ROWS = {
    "time": _time_rows, "live": _live_rows, "stack": _stack_rows, "takeover": _takeover_rows,
}  # fmt: skip


def _print(figures: dict[str, Any], json_path: Path) -> None:
    rows = [
        row
        for part, make in ROWS.items()
        if part in figures and "error" not in figures[part]
        for row in make(figures[part])
    ]
    width = max((len(what) for what, _ in rows), default=0)
    print(f"bench.tracking: {figures['cores']} cores, {figures['clip']}, {figures['model']}")
    for what, figure in rows:
        print(f"{what.ljust(width)}  {figure}".rstrip())
    for part in PARTS:
        if "error" in figures.get(part, {}):
            print(f"{part} could not run: {figures[part]['error']}")
    print(f"raw figures: {json_path}")


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tracking",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--assets",
        type=Path,
        default=DEFAULT_ASSETS,
        help="the shared assets, holding video/ and models/ (default: ../shared/assets)",
    )
    add("--clip", type=Path, help=f"the video (default: ASSETS/video/{CLIP_NAME})")
    add("--model", type=Path, help=f"the detector (default: ASSETS/models/{MODEL_NAME})")
    add("--frames", type=int, default=2000, help="frames of the generated scene (2000)")
    add("--rounds", type=int, default=2, help="live runs of each kind, alternately (2)")
    add("--live-seconds", type=float, default=30.0, help="measured seconds of a live run (30)")
    add("--live-warmup", type=float, default=5.0, help="untimed start of a live run (5)")
    add("--kills", type=int, default=3, help="times the stream's tracker is killed (3)")
    add("--lease-s", type=float, default=3.0, help="the trackers' lease, seconds (3)")
    add("--only", default=",".join(PARTS), help=f"comma list of parts ({','.join(PARTS)})")
    add("--json", type=Path, help="default: bench-results/tracking-<time>.json")
    return parser


def _check(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The parts asked for, and what is wrong with the options."""
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    problems = [
        f"--only: no part {p!r} (parts: {', '.join(PARTS)})" for p in parts if p not in PARTS
    ]
    for name, value in (
        ("--frames", args.frames),
        ("--rounds", args.rounds),
        ("--kills", args.kills),
    ):
        if value < 1:
            problems.append(f"{name} must be at least 1, got {value}")
    if args.live_seconds <= 0 or args.live_warmup < 0:
        problems.append("--live-seconds must be positive and --live-warmup not negative")
    if not 0.3 <= args.lease_s <= 600:
        problems.append(
            f"--lease-s must be 0.3-600 (PITCHSIDE_TRACKER_LEASE_S), got {args.lease_s}"
        )
    for what, path, flag in (("clip", args.clip, "--clip"), ("model", args.model, "--model")):
        if not path.is_file():
            problems.append(
                f"no {what} at {path}: pass {flag}, or --assets DIR, or put "
                "../shared (its assets/) beside the repository"
            )
    return parts, problems


def _measure(parts: Sequence[str], args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    clip, model = args.clip.resolve(), args.model.resolve()
    figures: dict[str, Any] = {}
    if "time" in parts:
        _progress(f"time: StreamTracker.update over {args.frames} generated frames, twice")
        figures["time"] = _run(
            "time", lambda: tracker_time(clip, args.frames, settings.jpeg_quality)
        )
    if "live" in parts:
        config = BenchConfig(
            clip=clip,
            model=model,
            imgsz=settings.imgsz,
            threads=settings.threads,
            frames=1,
            warmup=0,
            live_seconds=args.live_seconds,
            live_warmup_s=args.live_warmup,
            sections=("d",),
        )
        _progress(f"live: loading {model}")
        figures["live"] = _run(
            "live", lambda: live_latency(config, settings, load_detectors(settings), args.rounds)
        )
    if "stack" in parts:
        figures["stack"] = _run(
            "stack",
            lambda: stack_latency(clip, model, args.rounds, args.live_warmup, args.live_seconds),
        )
    if "takeover" in parts:
        _progress(
            f"takeover: pitchside up, 2 trackers, lease {args.lease_s:g} s, {args.kills} kills"
        )
        figures["takeover"] = _run(
            "takeover", lambda: takeover(clip, model, args.kills, args.lease_s)
        )
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments().parse_args(argv)
    args.clip = args.clip or args.assets / "video" / CLIP_NAME
    args.model = args.model or args.assets / "models" / MODEL_NAME
    parts, problems = _check(args)
    try:
        settings = Settings.from_env(os.environ)  # as `pitchside bench` is configured
    except SettingsError as exc:
        problems.append(str(exc))
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    settings = settings.replace(model=str(args.model.resolve()), threads=usable_cores())
    from pitchside.logs import setup_logging

    setup_logging(settings.replace(log_level="WARNING"), "bench")
    json_path = (
        args.json or Path("bench-results") / f"tracking-{time.strftime('%Y%m%d-%H%M%S')}.json"
    )
    figures: dict[str, Any] = {
        "arguments": sys.argv[1:] if argv is None else list(argv),
        "cores": usable_cores(),
        "clip": str(args.clip),
        "model": str(args.model),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    figures.update(_measure(parts, args, settings))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(figures, indent=2) + "\n")
    _print(figures, json_path)
    return 1 if any("error" in figures[p] for p in parts) else 0


if __name__ == "__main__":
    sys.exit(main())
