"""Overload and long runs: live streams offered at about three times what the workers detect,
for minutes on end; and viewers that read slowly, or by the hundred, next to others.

    python -m bench.soak [--minutes 10] [--only soak,viewers] [--streams N] [--viewers 100]
        [--refs 3] [--phase-s 60] [--settle-s 5] [--assets DIR] [--clip PATH] [--model PATH]
        [--json PATH]

Two parts, each on a fresh ``pitchside up`` (:mod:`bench.up`: one worker with every usable
core, one tracker, the embedded Redis; the project's default detector unless ``--model``),
everything on 127.0.0.1:

soak
    First what one worker detects: the clip looping as live streams (three, then three more
    while the worker keeps up), frames inferred per second from the worker's ``/metrics``.
    Then as many looping live streams of the clip as offer about :data:`OFFER_FACTOR` times
    that (``--streams`` to choose), one WebSocket viewer on each, for ``--minutes``. Each
    viewer notes every frame's end-to-end latency (receipt minus the header's
    ``ts_capture``); about every :data:`SAMPLE_S` s the benchmark notes each process's
    resident memory (/proc, :mod:`bench.procs`), Redis's ``used_memory`` (``INFO memory`` on
    the stack's own Redis, found in the gateway's environment) and every service's counters
    (``pitchside_frames_dropped_total`` by stage and reason, frames inferred, frames
    published; the services found through ``GET /api/sd/prometheus``). Per minute: latency
    p50/p95, viewer fps, memory, drops; then the verdicts (:mod:`bench.soak_stats`): p95 of
    the last minute within 10 % of the second's, each process's memory grown by less than
    5 % from the end of the second minute to the end, Redis's memory bounded.
viewers
    One live stream and ``--refs`` reference viewers, ``--phase-s`` per phase after
    ``--settle-s``: (A) alone; (B) with a slow viewer, a raw client that reads one message a
    second (so its TCP buffers fill and the hub must drop for it); (C) with ``--viewers``
    more viewers on the same stream that receive and discard; (A2) alone again, to show how
    far the machine itself drifted meanwhile. For each phase the reference
    viewers' fps and latency p50/p95 and their change against (A) (target: 10 % at most),
    their latency from the last stage's publish to the receipt (the gateway's own part),
    what the slow viewer got, the gateway's ``slow_client`` drops, the worker's detected fps
    and each process's CPU (a two-core machine shares its cores among all of them).

It prints tables and writes every figure to JSON (``bench-results/soak-<time>.json``). A
benchmark, not a test: a missed target still exits 0; a part that could not run exits 1; a
bad option or a missing asset 2. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import av
import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from bench import procs, soak_report, up
from bench.common import run_part
from bench.soak_stats import (
    INFERRED_KEY,
    PUBLISHED_KEY,
    Counters,
    Sample,
    Seen,
    increase,
    latency_verdict,
    memory_verdict,
    per_minute,
    phase_figures,
    redis_verdict,
    scrape_counters,
    viewer_verdict,
)
from gateway import protocol
from pitchside.errors import BenchError
from pitchside.service import run_async
from pitchside.settings import default_model_path, usable_cores

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ASSETS = REPO.parent / "shared" / "assets"
CLIP_NAME = "08fd33_4.mp4"
PARTS = ("soak", "viewers")

OFFER_FACTOR = 3.0  # streams offer about this many times what the worker detects
SAMPLE_S = 10.0  # memory, Redis and counters this often
CAL_STREAMS = 3  # streams added per calibration round
CAL_ROUNDS = 3  # at most, while the worker keeps up with what is offered
CAL_SETTLE_S = 10.0  # after adding streams, before measuring
CAL_MEASURE_S = 20.0
KEEPS_UP = 0.8  # the worker is not saturated while it detects this share of what is offered
MAX_STREAMS = 30
FIRST_FRAME_S = 180.0  # a stream's first frame reaches its viewer by then (model loading)
RECONNECTS = 5  # a viewer connects again this many times at most
SLOW_READ_S = 1.0  # the slow viewer reads one message this often
CONNECT_S = 60.0  # every extra viewer connected by then
CLOSE_S = 15.0  # viewers given this long to close at the end


def _run(part: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    return run_part(part, work, _progress)


def _progress(text: str) -> None:
    print(f"[bench.soak] {text}", file=sys.stderr, flush=True)


# -- the stack, its streams, its figures -------------------------------------------------------


@contextlib.contextmanager
def stack(tmp: Path, model: Path, clip: Path) -> Iterator[tuple[str, int]]:
    """``pitchside up`` with one worker on every usable core; yields its URL and its pid."""
    log_path = tmp / "up.log"
    try:
        with up.pitchside_up(
            tmp / "data", log_path, PITCHSIDE_MODEL=str(model), PITCHSIDE_WORKERS="1",
            PITCHSIDE_THREADS=str(usable_cores()), PITCHSIDE_MEDIA_ALLOW=str(clip),
        ) as (base, proc):  # fmt: skip
            yield base, proc.pid
    except BaseException:
        if log_path.exists():
            _progress(f"pitchside up said: {up.tail(log_path)}")
        raise


def thinned(clip: Path, every: int, out: Path) -> Path:
    """``clip`` with one frame in ``every`` kept, at ``1/every`` of its frame rate (H.264 in
    ``out``): a stream the worker keeps up with, so that what viewers change is seen apart
    from a detector that shares the cores."""
    with av.open(str(clip)) as src, av.open(str(out), "w") as dst:
        video = src.streams.video[0]
        rate = video.average_rate
        if not rate:
            raise BenchError(f"{clip} does not say its frame rate")
        enc = dst.add_stream("libx264", rate=rate / every)
        enc.width, enc.height, enc.pix_fmt = video.width, video.height, "yuv420p"
        for index, frame in enumerate(src.decode(video)):
            if index % every == 0:
                dst.mux(enc.encode(frame.reformat(format="yuv420p")))
        dst.mux(enc.encode(None))
    return out


def clip_fps(clip: Path) -> float:
    with av.open(str(clip)) as container:
        rate = container.streams.video[0].average_rate
    if not rate:
        raise BenchError(f"{clip} does not say its frame rate")
    return float(rate)


async def start_stream(http: httpx.AsyncClient, sid: str, clip: Path) -> None:
    body = {"source": str(clip), "id": sid, "mode": "live", "loop": True}
    resp = await http.post("/api/streams", json=body)
    if resp.status_code != 201:
        raise BenchError(f"starting stream {sid} answered {resp.status_code}: {resp.text}")


async def stop_stream(http: httpx.AsyncClient, sid: str) -> None:
    resp = await http.delete(f"/api/streams/{sid}")
    if resp.status_code >= 400 and resp.status_code != 404:
        raise BenchError(f"stopping stream {sid} answered {resp.status_code}: {resp.text}")


async def metrics_targets(http: httpx.AsyncClient) -> dict[str, str]:
    """Every live service's name -> ``/metrics`` URL, from the gateway's service discovery
    (and the gateway's own, if it is not listed)."""
    groups = (await http.get("/api/sd/prometheus")).json()
    found = {
        g["labels"].get("instance_name", g["targets"][0]): f"http://{g['targets'][0]}/metrics"
        for g in groups
        if g.get("targets")
    }
    if not any(g["labels"].get("service") == "gateway" for g in groups):
        found["gateway"] = f"{http.base_url}".rstrip("/") + "/metrics"
    return found


async def scrape(http: httpx.AsyncClient) -> Counters:
    """The counters the soak follows, per service instance (one that does not answer is
    left out of this sample)."""
    counters: Counters = {}
    for name, url in (await metrics_targets(http)).items():
        with contextlib.suppress(httpx.HTTPError):
            resp = await http.get(url, timeout=10)
            if resp.status_code == 200:
                counters[name] = scrape_counters(resp.text)
    return counters


async def redis_used(redis: Redis) -> int | None:
    try:
        info = await redis.info("memory")
    except (RedisError, OSError):
        return None
    return int(info["used_memory"])


async def sample(http: httpx.AsyncClient, redis: Redis, up_pid: int, t0: float) -> Sample:
    t_s = time.monotonic() - t0
    pids = procs.stack_processes(up_pid)
    rss = {name: kib for name, pid in pids.items() if (kib := procs.rss_kib(pid)) is not None}
    used = await redis_used(redis)
    return Sample(t_s, pids, rss, used, await scrape(http))


def stack_redis(up_pid: int) -> Redis:
    """A client on the stack's own Redis: the ``REDIS_URL`` in its gateway's environment."""
    gateway = procs.stack_processes(up_pid).get("gateway")
    url = procs.environ_of(gateway).get("REDIS_URL") if gateway else None
    if not url:
        raise BenchError("no REDIS_URL in the environment of pitchside up's gateway")
    return Redis.from_url(url)


def cpu_now(up_pid: int) -> dict[str, float]:
    """CPU seconds so far of every process of the stack and of this benchmark (``bench``)."""
    pids = {**procs.stack_processes(up_pid), "bench": os.getpid()}
    return {name: s for name, pid in pids.items() if (s := procs.cpu_s(pid)) is not None}


def cpu_cores(before: dict[str, float], after: dict[str, float], span_s: float) -> dict[str, float]:
    """Cores each process used on average between two :func:`cpu_now`."""
    return {
        name: round((after[name] - before[name]) / span_s, 2)
        for name in after
        if name in before and span_s > 0 and after[name] >= before[name]
    }


# -- viewers -----------------------------------------------------------------------------------


def ws_url(base: str, sid: str) -> str:
    return base.replace("http://", "ws://", 1) + f"/ws/streams/{sid}"


def _connect(url: str, **options: Any) -> Any:
    return connect(
        url, max_size=None, compression=None, proxy=None, open_timeout=30, close_timeout=2,
        **options,
    )  # fmt: skip


async def view(
    url: str, on_frame: Callable[[int, dict[str, Any]], None], stop: asyncio.Event, *,
    pause_s: float = 0.0,
    **options: Any,
) -> dict[str, Any]:  # fmt: skip
    """A viewer until ``stop``: ``on_frame(receipt_ns, meta)`` for every frame message,
    sleeping ``pause_s`` after each (a slow reader). Connects again after a close,
    :data:`RECONNECTS` times at most; returns its messages and what closed it."""
    messages, closes = 0, []
    for _ in range(RECONNECTS + 1):
        try:
            async with _connect(url, **options) as ws:
                while not stop.is_set():
                    try:
                        data = await asyncio.wait_for(ws.recv(), 1.0)
                    except TimeoutError:
                        continue
                    if isinstance(data, str):
                        continue  # hello, stats
                    receipt_ns = time.time_ns()
                    meta, _ = protocol.decode_binary(data)
                    on_frame(receipt_ns, meta)
                    messages += 1
                    if pause_s:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), pause_s)
        except (OSError, WebSocketException) as exc:
            closes.append(f"{type(exc).__name__}: {exc}")
        if stop.is_set():
            break
        await asyncio.sleep(1.0)
    return {"messages": messages, "closes": closes}


async def _crowd_counts(stdin: asyncio.StreamWriter, stdout: asyncio.StreamReader) -> list[int]:
    """The frames each of bench.crowd's viewers has received so far."""
    stdin.write(b"mark\n")
    await stdin.drain()
    counts: list[int] = json.loads(await asyncio.wait_for(stdout.readline(), CLOSE_S * 4))
    return counts


async def _wait_frames(
    counts: Callable[[], Sequence[int]], tasks: Sequence[asyncio.Task[Any]]
) -> None:
    deadline = time.monotonic() + FIRST_FRAME_S
    while not all(counts()):
        for task in tasks:
            if task.done():
                raise BenchError(f"a viewer stopped before its first frame: {task.result()}")
        if time.monotonic() > deadline:
            raise BenchError(f"not every viewer had a frame within {FIRST_FRAME_S:g} s")
        await asyncio.sleep(0.2)


async def _finish(stop: asyncio.Event, tasks: Sequence[asyncio.Task[Any]]) -> list[Any]:
    stop.set()
    done, pending = await asyncio.wait(tasks, timeout=CLOSE_S) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return [t.result() if t in done and not t.exception() else None for t in tasks]


# -- soak --------------------------------------------------------------------------------------


async def calibrate(
    http: httpx.AsyncClient, clip: Path, fps: float, wanted: int | None
) -> tuple[list[str], dict[str, Any]]:
    """What one worker detects, with streams enough to keep it busy; then the streams to run
    (``wanted``, or :data:`OFFER_FACTOR` x that); returns their ids and the figures."""
    sids: list[str] = []

    async def add(n: int) -> None:
        for _ in range(n):
            sid = f"soak-{len(sids) + 1}"
            await start_stream(http, sid, clip)
            sids.append(sid)

    await add(CAL_STREAMS)
    deadline = time.monotonic() + FIRST_FRAME_S
    while not increase({}, await scrape(http)).get(INFERRED_KEY):
        if time.monotonic() > deadline:
            raise BenchError(f"the worker inferred no frame within {FIRST_FRAME_S:g} s")
        await asyncio.sleep(1.0)
    rounds = []
    for n in range(CAL_ROUNDS):
        await asyncio.sleep(CAL_SETTLE_S)
        before, start = await scrape(http), time.monotonic()
        await asyncio.sleep(CAL_MEASURE_S)
        grown = increase(before, await scrape(http))
        span = time.monotonic() - start
        detected, offered = grown.get(INFERRED_KEY, 0) / span, grown.get(PUBLISHED_KEY, 0) / span
        rounds.append({"streams": len(sids), "offered_fps": round(offered, 2),
                       "detected_fps": round(detected, 2)})  # fmt: skip
        _progress(f"calibration: {len(sids)} streams offer {offered:.1f} fps, the worker "
                  f"detects {detected:.1f} fps")  # fmt: skip
        if detected < KEEPS_UP * offered or n + 1 == CAL_ROUNDS:
            break
        await add(CAL_STREAMS)
    detected = rounds[-1]["detected_fps"]
    target = wanted or max(1, round(OFFER_FACTOR * detected / fps))
    target = min(target, MAX_STREAMS)
    while len(sids) > target:
        await stop_stream(http, sids.pop())
    await add(target - len(sids))
    figures = {
        "clip_fps": fps, "rounds": rounds, "detected_fps": detected, "streams": target,
        "chosen_by": "--streams" if wanted else f"{OFFER_FACTOR:g} x detected / clip fps",
        "offered_fps": round(target * fps, 2),
        "ratio": round(target * fps / detected, 2) if detected else None,
    }  # fmt: skip
    return sids, figures


async def _soak(
    base: str, up_pid: int, clip: Path, minutes: int, wanted: int | None
) -> dict[str, Any]:
    redis = stack_redis(up_pid)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            sids, calibration = await calibrate(http, clip, clip_fps(clip), wanted)
            _progress(
                f"soak: {len(sids)} streams offer {calibration['offered_fps']:.0f} fps, "
                f"{calibration['ratio']} x the {calibration['detected_fps']:.1f} fps detected; "
                f"{minutes} min"
            )
            return await _run_soak(http, redis, base, up_pid, sids, minutes, calibration)
    finally:
        await redis.aclose()


async def _run_soak(
    http: httpx.AsyncClient, redis: Redis, base: str, up_pid: int, sids: list[str],
    minutes: int, calibration: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    seen: list[Seen] = []
    counts = [0] * len(sids)
    t0 = time.monotonic()

    def record(index: int) -> Callable[[int, dict[str, Any]], None]:
        def on_frame(receipt_ns: int, meta: dict[str, Any]) -> None:
            latency_ms = (receipt_ns - int(meta["ts_capture"])) / 1e6
            seen.append(Seen(time.monotonic() - t0, index, latency_ms))
            counts[index] += 1

        return on_frame

    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(view(ws_url(base, sid), record(i), stop), name=f"viewer-{sid}")
        for i, sid in enumerate(sids)
    ]
    samples: list[Sample] = []
    cpu = [(0.0, cpu_now(up_pid))]
    try:
        end, next_at, reported = t0 + minutes * 60.0, t0, 0
        while True:
            samples.append(await sample(http, redis, up_pid, t0))
            now = time.monotonic()
            if int((now - t0) // 60) > reported:
                reported = int((now - t0) // 60)
                cpu.append((now - t0, cpu_now(up_pid)))
                row = per_minute(seen, samples, reported, len(sids))[-1]
                _progress(soak_report.minute_line(row))
            if now >= end - 0.5:
                break
            next_at = min(next_at + SAMPLE_S, end)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        viewers = await _finish(stop, tasks)
    rows = per_minute(seen, samples, minutes, len(sids))
    return {
        "calibration": calibration,
        "minutes": minutes,
        "streams": sids,
        "viewers": viewers,
        "per_minute": rows,
        "cpu_cores_per_minute": [
            cpu_cores(a, b, tb - ta) for (ta, a), (tb, b) in zip(cpu, cpu[1:], strict=False)
        ],
        "samples": [
            {
                "t_s": round(s.t_s, 2),
                "pids": s.pids,
                "rss_kib": s.rss_kib,
                "redis_used": s.redis_used,
                "counters": s.counters,
            }
            for s in samples
        ],  # fmt: skip
        "verdicts": {
            "latency": latency_verdict(rows),
            "memory": memory_verdict(samples, minutes),
            "redis": redis_verdict(samples, minutes),
        },
    }


def soak(clip: Path, model: Path, minutes: int, streams: int | None) -> dict[str, Any]:
    """The part ``soak``: see the module docstring."""
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        with stack(Path(tmp), model, clip) as (base, pid):
            return run_async(_soak(base, pid, clip, minutes, streams))


# -- viewers -----------------------------------------------------------------------------------


async def _phase(
    http: httpx.AsyncClient, up_pid: int, t0: float, phase_s: float,
    refs: Sequence[list[tuple[float, float]]], delivery: Sequence[list[tuple[float, float]]],
) -> dict[str, Any]:  # fmt: skip
    """The reference viewers (end to end, and from the stage before the gateway to the
    receipt), the gateway's drops and the worker over the next ``phase_s``."""
    before, cpu_before = await scrape(http), cpu_now(up_pid)
    start = time.monotonic() - t0
    await asyncio.sleep(phase_s)
    end = time.monotonic() - t0
    grown, cpu_after = increase(before, await scrape(http)), cpu_now(up_pid)
    span = end - start
    return {
        "start_s": round(start, 2), "end_s": round(end, 2),
        "refs": [phase_figures(points, start, end) for points in refs],
        "delivery": [phase_figures(points, start, end) for points in delivery],
        "drops": {k.removeprefix("dropped/"): int(v) for k, v in sorted(grown.items())
                  if k.startswith("dropped/") and v > 0},
        "detected_fps": round(grown.get(INFERRED_KEY, 0.0) / span, 2),
        "cpu_cores": cpu_cores(cpu_before, cpu_after, span),
    }  # fmt: skip


async def _viewers(
    base: str, up_pid: int, clip: Path, n_refs: int, extra: int, phase_s: float, settle_s: float
) -> dict[str, Any]:
    sid = "viewers-1"
    url = ws_url(base, sid)
    t0 = time.monotonic()
    refs: list[list[tuple[float, float]]] = [[] for _ in range(n_refs)]
    delivery: list[list[tuple[float, float]]] = [[] for _ in range(n_refs)]

    def record(
        points: list[tuple[float, float]], gateway: list[tuple[float, float]] | None = None
    ) -> Callable[[int, dict[str, Any]], None]:
        def on_frame(receipt_ns: int, meta: dict[str, Any]) -> None:
            t_s = time.monotonic() - t0
            points.append((t_s, (receipt_ns - int(meta["ts_capture"])) / 1e6))
            if gateway is not None:  # from the last stage before the gateway to the receipt
                timings = meta.get("timings", {})
                before = max(timings.get("dets_publish", 0), timings.get("tracks_publish", 0))
                if before:
                    gateway.append((t_s, (receipt_ns - before) / 1e6))

        return on_frame

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await start_stream(http, sid, clip)
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(view(url, record(p, d), stop))
            for p, d in zip(refs, delivery, strict=True)
        ]
        phases: dict[str, Any] = {}
        try:
            await _wait_frames(lambda: [len(p) for p in refs], tasks)
            await asyncio.sleep(settle_s)
            _progress(f"viewers A: {n_refs} reference viewers alone, {phase_s:g} s")
            phases["A"] = await _phase(http, up_pid, t0, phase_s, refs, delivery)

            slow_points: list[tuple[float, float]] = []
            slow_stop = asyncio.Event()
            slow = asyncio.create_task(
                view(url, record(slow_points), slow_stop, pause_s=SLOW_READ_S,
                     max_queue=1, ping_interval=None)
            )  # fmt: skip
            await asyncio.sleep(settle_s)
            _progress(f"viewers B: and a viewer that reads one message a second, {phase_s:g} s")
            phases["B"] = await _phase(http, up_pid, t0, phase_s, refs, delivery)
            (slow_result,) = await _finish(slow_stop, [slow])
            b = phases["B"]
            phases["B"]["slow_viewer"] = {
                **phase_figures(slow_points, b["start_s"], b["end_s"]),
                "run": slow_result,
            }

            # The crowd receives in a process of its own: in this one, it would delay the
            # reference viewers' receipts (bench.crowd).
            crowd = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.crowd", url, str(extra),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert crowd.stdin is not None and crowd.stdout is not None
            try:
                line = await asyncio.wait_for(crowd.stdout.readline(), CONNECT_S + 30)
                connected = int(line.split()[1]) if line.startswith(b"connected") else 0
                await asyncio.sleep(settle_s)
                _progress(f"viewers C: and {connected} more viewers (of {extra}), {phase_s:g} s")
                before = await _crowd_counts(crowd.stdin, crowd.stdout)
                phases["C"] = await _phase(http, up_pid, t0, phase_s, refs, delivery)
                after = await _crowd_counts(crowd.stdin, crowd.stdout)
                crowd.stdin.close()
                failed = json.loads(await asyncio.wait_for(crowd.stdout.readline(), CLOSE_S * 4))
            finally:
                if crowd.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        crowd.kill()
                await crowd.wait()
            per_extra = [(a - b) / phase_s for a, b in zip(after, before, strict=True)]
            phases["C"]["extra_viewers"] = {
                "asked": extra, "connected": connected, "failed": failed,
                "fps_mean": round(sum(per_extra) / max(1, extra), 2),
                "fps_min": round(min(per_extra, default=0.0), 2),
                "process": "bench.crowd",
            }  # fmt: skip
            await asyncio.sleep(settle_s)
            _progress(f"viewers A2: the reference viewers alone again, {phase_s:g} s")
            phases["A2"] = await _phase(http, up_pid, t0, phase_s, refs, delivery)
        finally:
            await _finish(stop, tasks)
    baseline = phases["A"]["refs"]
    for key in ("B", "C", "A2"):
        phases[key]["verdict"] = viewer_verdict(phases[key]["refs"], baseline)
    return {"sid": sid, "refs": n_refs, "phase_s": phase_s, "settle_s": settle_s, "phases": phases}


def viewers(
    clip: Path, model: Path, refs: int, extra: int, phase_s: float, settle_s: float, every: int
) -> dict[str, Any]:
    """The part ``viewers``: see the module docstring."""
    with tempfile.TemporaryDirectory(prefix="bench-soak-viewers-") as tmp:
        if every > 1:
            clip = thinned(clip, every, Path(tmp) / f"{clip.stem}-every-{every}.mp4")
        with stack(Path(tmp), model, clip) as (base, pid):
            figures = run_async(_viewers(base, pid, clip, refs, extra, phase_s, settle_s))
        return {**figures, "every": every, "stream_fps": round(clip_fps(clip), 2)}


# -- the command -------------------------------------------------------------------------------


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add = parser.add_argument
    add("--assets", type=Path, default=DEFAULT_ASSETS,
        help="the shared assets, holding video/ (default: ../shared/assets)")  # fmt: skip
    add("--clip", type=Path, help=f"the video (default: ASSETS/video/{CLIP_NAME})")
    add("--model", type=Path, help="the detector (default: the project's, models/)")
    add("--minutes", type=int, default=10, help="length of the soak (10)")
    add("--only", default=",".join(PARTS), help=f"comma list of parts ({','.join(PARTS)})")
    add(
        "--streams",
        type=int,
        help="live streams in the soak (default: 3 x what one worker detects)",
    )
    add("--viewers", type=int, default=100, help="extra viewers in phase C (100)")
    add("--refs", type=int, default=3, help="reference viewers of the part viewers (3)")
    add("--phase-s", type=float, default=60.0, help="measured seconds of each viewers phase (60)")
    add("--every", type=int, default=1,
        help="viewers: stream one frame in EVERY of the clip, at that fraction of its rate "
        "(1: the clip as it is, more than the worker detects on 2 cores; 2: a stream it "
        "keeps up with)")  # fmt: skip
    add("--settle-s", type=float, default=5.0, help="unmeasured seconds before each phase (5)")
    add("--json", type=Path, help="default: bench-results/soak-<time>.json")
    return parser


def check(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The parts asked for, and what is wrong with the options (each one line)."""
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    problems = [
        f"--only: no part {p!r} (parts: {', '.join(PARTS)})" for p in parts if p not in PARTS
    ]
    if not parts:
        problems.append(f"--only: name at least one part ({', '.join(PARTS)})")
    for name, value, lo, hi in (
        ("--minutes", args.minutes, 1, 120), ("--viewers", args.viewers, 0, 1000),
        ("--refs", args.refs, 1, 50), ("--every", args.every, 1, 10),
        ("--streams", args.streams or 1, 1, MAX_STREAMS),
    ):  # fmt: skip
        if not lo <= value <= hi:
            problems.append(f"{name} must be {lo}-{hi}, got {value}")
    if not 1 <= args.phase_s <= 600 or not 0 <= args.settle_s <= 120:
        problems.append("--phase-s must be 1-600 and --settle-s 0-120")
    for what, path, flag in (("clip", args.clip, "--clip"), ("model", args.model, "--model")):
        if not path.is_file():
            problems.append(
                f"no {what} at {path}: pass {flag}, or --assets DIR, or put ../shared "
                "(its assets/) beside the repository"
            )
    return parts, problems


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments().parse_args(argv)
    args.clip = args.clip or args.assets / "video" / CLIP_NAME
    args.model = args.model or default_model_path()
    parts, problems = check(args)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    clip, model = args.clip.resolve(), args.model.resolve()
    json_path = args.json or Path("bench-results") / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    figures: dict[str, Any] = {
        "arguments": sys.argv[1:] if argv is None else list(argv),
        "cores": usable_cores(), "clip": str(clip), "model": str(model),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip
    if "soak" in parts:
        figures["soak"] = _run("soak", lambda: soak(clip, model, args.minutes, args.streams))
    if "viewers" in parts:
        figures["viewers"] = _run(
            "viewers",
            lambda: viewers(
                clip, model, args.refs, args.viewers, args.phase_s, args.settle_s, args.every
            ),
        )
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(figures, indent=2) + "\n")
    soak_report.print_figures(figures, json_path, sys.stdout)
    return 1 if any("error" in figures[p] for p in parts) else 0


if __name__ == "__main__":
    sys.exit(main())
