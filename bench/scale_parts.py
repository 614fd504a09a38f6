"""The parts of :mod:`bench.scale` that run in this process: batch sizes and components.

batch
    One worker's throughput as its batch grows. ``engine``: the worker's own session (every
    usable core, one caller, as a worker serving one lane calls it) on frames decoded and
    letterboxed beforehand, as :mod:`bench.ceiling` does, batches of n made of n distinct
    frames; ``worker``: the whole pipeline in this process (:func:`bench.pipeline.run_unpaced`:
    ingest, one worker with ``PITCHSIDE_BATCH=n`` and one lane, the gateway, a WebSocket
    client) on an analyse-mode stream. Batch sizes run interleaved over rounds (1 2 4 8 1 2
    4 8 ...).
components
    What one 1080p frame costs outside the detector: decoding (PyAV with one thread, and as
    ingest decodes: PyAV's default slice threads), JPEG encoding at the ingest's quality
    (:class:`ingest.encode.JpegEncoder`), the worker's JPEG decode (``cv2.imdecode``), and
    ``XADD`` / ``XREVRANGE`` of frame-sized entries on a private embedded Redis, with the
    server's own CPU per message (/proc), so that one Redis core's capacity follows.

Every loop is bounded by a count and by a time.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import av
import cv2
import numpy as np
import redis

from bench import procs
from bench.ceiling import clip_frames
from bench.common import BenchConfig
from bench.scale_stats import batch_table, whole_batches
from bench.stats import summary_ms
from ingest.encode import JpegEncoder
from pitchside.embedded_redis import EmbeddedRedis
from pitchside.errors import BenchError
from pitchside.schema import FrameMsg, frames_key
from pitchside.settings import Settings
from workers.engines import Detector

PART_MAX_S = 120.0  # one measurement stops after this long, whatever its count
KEPT_FRAMES = 8  # distinct decoded frames kept for JPEG and Redis (6 MB each at 1080p)


# -- batch -------------------------------------------------------------------------------------


def engine_batch(
    detector: Detector, singles: Sequence[np.ndarray], batch: int, frames: int
) -> dict[str, Any]:
    """``Engine.infer`` on batches of ``batch`` distinct frames, one call after another, until
    ``frames`` (rounded up to whole batches) or :data:`PART_MAX_S`; one untimed call first."""
    engine = detector.engine
    batches = [
        np.concatenate([singles[(i + k) % len(singles)] for k in range(batch)])
        for i in range(0, max(batch, 2 * batch), batch)
    ]
    engine.infer(batches[0])  # untimed: this shape's first call allocates
    goal = whole_batches(frames, batch)
    calls_ms: list[float] = []
    done = 0
    started = time.perf_counter()
    while done < goal and time.perf_counter() - started < PART_MAX_S:
        t0 = time.perf_counter()
        engine.infer(batches[len(calls_ms) % len(batches)])
        calls_ms.append((time.perf_counter() - t0) * 1000)
        done += batch
    elapsed = time.perf_counter() - started
    return {
        "batch": batch, "frames": done, "seconds": round(elapsed, 3),
        "fps": round(done / elapsed, 3) if elapsed > 0 else 0.0,
        "call_ms": summary_ms(calls_ms),
        "ms_per_frame": round(float(np.median(calls_ms)) / batch, 2) if calls_ms else None,
    }  # fmt: skip


def letterboxed(detector: Detector, clip: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of ``clip``, each a ``(1, 3, H, W)`` letterboxed batch."""
    singles = [detector.prepare([bgr]).batch for bgr in itertools.islice(clip_frames(clip), count)]
    if not singles:
        raise BenchError(f"{clip} has no frames")
    return singles


def run_batches(
    detector: Detector, threads: int, clip: Path, model: Path, batches: Sequence[int],
    rounds: int, frames: int, via: Sequence[str], progress: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    """The part ``batch``: every batch size in ``batches`` by every way in ``via``
    (``engine``, ``worker``), interleaved over ``rounds``; per way, :func:`batch_table`.
    ``detector``'s session has ``threads`` intra-op threads; the worker gets as many."""
    singles = letterboxed(detector, clip, max(batches) * 2) if "engine" in via else []
    runs: dict[str, list[dict[str, Any]]] = {way: [] for way in via}
    fps: dict[str, list[dict[int, float]]] = {way: [] for way in via}
    for r in range(rounds):
        for way in via:
            fps[way].append({})
        for b in batches:
            for way in via:
                progress(f"batch: round {r + 1}/{rounds}, batch {b}, {way}")
                if way == "engine":
                    result = engine_batch(detector, singles, b, frames)
                else:
                    result = worker_batch(detector, threads, clip, model, b, frames)
                result["round"] = r + 1
                runs[way].append(result)
                fps[way][-1][b] = float(result["fps"])
    return {
        way: {"table": {str(k): v for k, v in batch_table(fps[way]).items()}, "runs": runs[way]}
        for way in via
    }


def worker_batch(
    detector: Detector, threads: int, clip: Path, model: Path, batch: int, frames: int
) -> dict[str, Any]:
    """The whole pipeline in this process on one analyse stream, ``PITCHSIDE_BATCH=batch``,
    one lane: frames per second at the WebSocket client (:func:`bench.pipeline.run_unpaced`)."""
    from bench import pipeline

    config = BenchConfig(
        clip=clip, model=model, imgsz=detector.imgsz, threads=threads,
        frames=whole_batches(frames, batch), warmup=2 * batch, live_seconds=1.0,
        live_warmup_s=0.0, sections=("b",),
    )  # fmt: skip
    # Ingest waits above analyse_max_lag: keep two batches in reach, so a batch can fill.
    settings = Settings()
    settings = settings.replace(
        batch_max=batch, lanes=1, analyse_max_lag=max(settings.analyse_max_lag, 2 * batch)
    )
    result = pipeline.run_unpaced(config, settings, (detector, detector))
    keep = ("fps", "frames", "seconds", "lost_frames", "batch_max", "pipeline_inference", "worker")
    return {"batch": batch, **{k: result[k] for k in keep if k in result}}


# -- components --------------------------------------------------------------------------------


def decode_figures(clip: Path, frames: int, threads: int | None) -> dict[str, Any]:
    """Decode (H.264 to BGR, as ingest converts it) of up to ``frames`` frames, looping the
    clip: wall and CPU ms per frame. ``threads=1``: PyAV with one thread (the CPU is this
    thread's); ``None``: PyAV's default slice threads, as ingest decodes (the CPU is the
    process's)."""
    wall_ms: list[float] = []
    clock = time.thread_time if threads == 1 else time.process_time
    cpu0, started = clock(), time.perf_counter()
    while len(wall_ms) < frames and time.perf_counter() - started < PART_MAX_S:
        before = len(wall_ms)
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            if threads is not None:
                stream.codec_context.thread_count = threads
            decoded = container.decode(stream)
            while len(wall_ms) < frames:
                t0 = time.perf_counter()
                frame = next(decoded, None)
                if frame is None:
                    break
                frame.to_ndarray(format="bgr24")
                wall_ms.append((time.perf_counter() - t0) * 1000)
        if len(wall_ms) == before:
            raise BenchError(f"{clip} has no frames")
    cpu_s = clock() - cpu0
    return {
        "threads": threads or "default (slices)", "frames": len(wall_ms),
        "wall_ms": summary_ms(wall_ms),
        "cpu_ms_per_frame": round(cpu_s * 1000 / len(wall_ms), 2),
    }  # fmt: skip


def jpeg_figures(images: Sequence[np.ndarray], count: int, quality: int) -> dict[str, Any]:
    """JPEG encode (ingest's encoder) and decode (the worker's ``cv2.imdecode``) of
    ``count`` frames cycling through ``images``: ms (wall and this thread's CPU), bytes."""
    encoder = JpegEncoder(quality, None)
    enc_ms, dec_ms, sizes = [], [], []
    jpegs: list[bytes] = []
    enc_cpu = dec_cpu = 0.0
    started = time.perf_counter()
    for i in range(count):
        if time.perf_counter() - started > PART_MAX_S:
            break
        c0, t0 = time.thread_time(), time.perf_counter()
        jpeg = encoder.encode(images[i % len(images)]).jpeg
        enc_ms.append((time.perf_counter() - t0) * 1000)
        enc_cpu += time.thread_time() - c0
        sizes.append(len(jpeg))
        if len(jpegs) < len(images):
            jpegs.append(jpeg)
        c0, t0 = time.thread_time(), time.perf_counter()
        cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
        dec_ms.append((time.perf_counter() - t0) * 1000)
        dec_cpu += time.thread_time() - c0
    n = max(1, len(sizes))
    return {
        "quality": quality, "frames": len(sizes),
        "size": f"{images[0].shape[1]}x{images[0].shape[0]}",
        "encode_ms": summary_ms(enc_ms), "encode_cpu_ms": round(enc_cpu * 1000 / n, 2),
        "decode_ms": summary_ms(dec_ms), "decode_cpu_ms": round(dec_cpu * 1000 / n, 2),
        "bytes_mean": round(sum(sizes) / n), "bytes_max": max(sizes, default=0),
        "bytes_min": min(sizes, default=0), "_jpegs": jpegs,
    }  # fmt: skip


def redis_figures(
    jpegs: Sequence[bytes], count: int, maxlen: int, size: tuple[int, int] = (1920, 1080)
) -> dict[str, Any]:  # the header's size: any, it is not read here
    """``count`` frame entries (FrameMsg fields, the clip's own JPEGs) ``XADD``ed with
    ``MAXLEN ~ maxlen`` to one stream of a private embedded Redis, one round trip each, then
    as many ``XREVRANGE ... COUNT 1`` (a reader fetching the newest frame); for each, calls a
    second, MB a second, and the server's CPU per call (its /proc): what one Redis core serves."""
    if not jpegs:
        raise BenchError("no JPEG to write")
    with EmbeddedRedis(maxmemory_mb=1024) as server:
        client = redis.Redis.from_url(server.url)
        try:
            key = frames_key("bench-scale")
            pid = server.pid
            if pid is None:
                raise BenchError("the embedded Redis has no pid")
            msgs = [
                FrameMsg(seq=i, pts_ns=i * 40_000_000, ts_capture=time.time_ns(),
                         ts_publish=time.time_ns(), w=size[0], h=size[1], img=jpeg).to_fields()
                for i, jpeg in enumerate(jpegs)
            ]  # fmt: skip

            def xadd(i: int) -> int:
                client.xadd(key, msgs[i % len(msgs)], maxlen=maxlen, approximate=True)
                return len(jpegs[i % len(jpegs)])

            def xrevrange(_: int) -> int:
                reply = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrevrange(key, count=1))
                return sum(len(v) for _, fields in reply for v in fields.values())

            return {
                "entries": count, "maxlen": maxlen,
                "xadd": _timed(xadd, count, pid),
                "xrevrange": _timed(xrevrange, count, pid),
                "used_memory": int(client.info("memory")["used_memory"]),
                "stream_length": int(client.xlen(key)),
            }  # fmt: skip
        finally:
            client.close()


def _timed(call: Callable[[int], int], count: int, pid: int) -> dict[str, Any]:
    call(0)  # untimed: the connection opens
    server0 = procs.cpu_s(pid) or 0.0
    calls_us: list[float] = []
    moved = 0
    started = time.perf_counter()
    for i in range(count):
        if time.perf_counter() - started > PART_MAX_S:
            break
        t0 = time.perf_counter()
        moved += call(i)
        calls_us.append((time.perf_counter() - t0) * 1e6)
    elapsed = time.perf_counter() - started
    server_s = (procs.cpu_s(pid) or 0.0) - server0
    n = max(1, len(calls_us))
    stats = summary_ms(calls_us)  # the same percentiles, in microseconds here
    return {
        "calls": len(calls_us), "calls_per_s": round(n / elapsed, 1) if elapsed else 0.0,
        "mbyte_per_s": round(moved / elapsed / 1e6, 1) if elapsed else 0.0,
        "call_us": {k.replace("_ms", "_us"): v for k, v in stats.items()},
        "server_cpu_us_per_call": round(server_s * 1e6 / n, 1),
    }  # fmt: skip


def transcoded(clip: Path, size: tuple[int, int], out: Path) -> Path:
    """``clip`` resized to ``size`` (width, height), H.264 at its own frame rate, in ``out``:
    the 1080p stream the scale plan is about, made from the 848x478 shared clip. Its frames
    are smoother than a camera's 1080p: their JPEGs are smaller (see :func:`still_images`)."""
    width, height = size
    with av.open(str(clip)) as src, av.open(str(out), "w") as dst:
        video = src.streams.video[0]
        rate = video.average_rate
        if not rate:
            raise BenchError(f"{clip} does not say its frame rate")
        enc = dst.add_stream("libx264", rate=rate)
        enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
        enc.options = {"preset": "veryfast"}
        for frame in src.decode(video):
            dst.mux(enc.encode(frame.reformat(width=width, height=height, format="yuv420p")))
        dst.mux(enc.encode(None))
    return out


def still_images(folder: Path) -> list[np.ndarray]:
    """The broadcast stills ``frame_*.jpg`` of the shared assets (1920x1080), BGR; [] when
    there are none."""
    images = [
        cv2.imread(str(path), cv2.IMREAD_COLOR) for path in sorted(folder.glob("frame_*.jpg"))
    ]
    return [image for image in images if image is not None][:KEPT_FRAMES]


def clip_components(clip: Path, frames: int, quality: int) -> dict[str, Any]:
    """Decode and JPEG figures of one clip (its first :data:`KEPT_FRAMES` frames for JPEG)."""
    images = list(itertools.islice(clip_frames(clip), KEPT_FRAMES))
    if not images:
        raise BenchError(f"{clip} has no frames")
    with av.open(str(clip)) as container:
        video = container.streams.video[0]
        bitrate = video.bit_rate or container.bit_rate
        codec = video.codec_context.name
    jpeg = jpeg_figures(images, frames, quality)
    return {
        "source": {"codec": codec, "bit_rate_bps": bitrate, "size": jpeg["size"]},
        "decode_1_thread": decode_figures(clip, frames, 1),
        "decode_ingest": decode_figures(clip, frames, None),
        "jpeg": jpeg,
    }


def run_components(
    clips: dict[str, Path], stills: Path, frames: int, entries: int
) -> dict[str, Any]:
    """The part ``components``: for each clip (``native``, ``1080p``...) decode and JPEG; the
    1080p stills' JPEG; Redis with the largest JPEGs measured (the stills' when there are)."""
    settings = Settings()  # the ingest's defaults: JPEG quality, frames stream length
    out: dict[str, Any] = {
        name: clip_components(clip, frames, settings.jpeg_quality) for name, clip in clips.items()
    }
    jpegs: list[bytes] = []
    images = still_images(stills)
    if images:
        out["stills"] = jpeg_figures(images, frames, settings.jpeg_quality)
    for figures in out.values():
        candidate = figures.get("jpeg", figures).pop("_jpegs", [])
        if sum(map(len, candidate)) * len(jpegs) >= sum(map(len, jpegs)) * len(candidate):
            jpegs = candidate  # the larger mean size
    if not jpegs:
        raise BenchError("no JPEG to write to Redis")
    out["redis"] = redis_figures(jpegs, entries, settings.frames_maxlen)
    out["redis"]["payload_bytes_mean"] = round(sum(map(len, jpegs)) / len(jpegs))
    return out
