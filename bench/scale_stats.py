"""The pure half of :mod:`bench.scale`: options, thread shares, ratios, the plan's arithmetic.

Nothing here starts a process or reads a clock: figures in, figures out, so that the unit
tests can check every formula the scale plan (deploy/README.md, "Scale") rests on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.stats import median

MAX_WORKERS = 16
MAX_BATCH = 64
MAX_STREAMS = 16

# The plan's assumptions: each one is named in the printed plan and in the JSON.
PLAN_STREAMS = 100
PLAN_FPS = 25.0
UTILISATION = 0.7  # run every stage at this share of what it can do: room for bursts
GPU_FPS_ESTIMATE = 150.0  # deploy/kubernetes/overlays/gpu: an estimate, not measured here
REDIS_CORE_SHARE = 0.5  # one Redis shard's main thread kept at half its core
NIC_GBIT = 10.0  # a node's network, Gbit/s
NIC_SHARE = 0.5  # of which a shard may use this much
REDIS_OVERHEAD = 1.25  # stream entry and allocator overhead over the payload bytes
FRAMES_MAXLEN = 50  # PITCHSIDE_FRAMES_MAXLEN's default: about 2 s at 25 fps
VIEWERS_PER_STREAM = 1.0  # viewers of each stream, for the gateway's egress
READS_PER_FRAME = 2  # a frame is read once by a worker and once by the gateway's hub
CAMERA_BITRATE_BPS = 6e6  # a 1080p25 H.264 camera's main stream: 4-8 Mbit/s is usual
CAMERA_SOURCE = "assumption: a 1080p25 H.264 camera's main stream, 4-8 Mbit/s (6 taken)"


def parse_counts(raw: str, name: str, hi: int) -> tuple[tuple[int, ...], list[str]]:
    """A comma list of positive integers, e.g. ``"1,2,4"``, without repeats, in the order
    given; and what is wrong with it (one line per problem)."""
    values: list[int] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part.isdigit() or not 1 <= int(part) <= hi:
            return (), [f"{name} takes a comma list of integers 1-{hi}, got {raw!r}"]
        if int(part) not in values:
            values.append(int(part))
    return tuple(values), []


def thread_plan(cores: int, workers: int, default_lanes: int = 2) -> dict[str, int]:
    """How ``workers`` workers share ``cores``: inference threads each (``PITCHSIDE_THREADS``,
    at least 1, so more workers than cores oversubscribe them) and analyse lanes each
    (``PITCHSIDE_LANES``: the default 2 when a worker has two threads or more, else 1)."""
    threads = max(1, cores // workers)
    lanes = max(1, min(default_lanes, threads))
    return {
        "workers": workers, "threads_per_worker": threads, "lanes_per_worker": lanes,
        "threads_in_all": threads * workers, "cores": cores,
    }  # fmt: skip


def whole_batches(frames: int, batch: int) -> int:
    """``frames`` rounded up to a whole number of batches of ``batch``."""
    return -(-frames // batch) * batch


def batch_table(rounds: Sequence[Mapping[int, float]]) -> dict[int, dict[str, Any]]:
    """Per batch size, over interleaved rounds of fps (``rounds[r][batch] = fps``): the
    median fps, ms per frame at that median, each round's fps, and the ratio to batch 1 two
    ways: of the medians, and the median of each round's own ratio (paired within a round,
    so that a machine that drifts between rounds moves both sides of it alike)."""
    sizes = sorted({b for r in rounds for b in r})
    out: dict[int, dict[str, Any]] = {}
    base = sizes[0] if sizes else 1
    base_median = median([r[base] for r in rounds if base in r]) or 0.0
    for b in sizes:
        fps = [r[b] for r in rounds if b in r]
        mid = median(fps) or 0.0
        paired = [r[b] / r[base] for r in rounds if b in r and r.get(base)]
        out[b] = {
            "fps": round(mid, 2),
            "ms_per_frame": round(1000 / mid, 2) if mid else None,
            "fps_rounds": [round(f, 2) for f in fps],
            "ratio_of_medians": round(mid / base_median, 3) if base_median else None,
            "ratio_paired": round(median(paired) or 0.0, 3) if paired else None,
            "base": base,
        }
    return out


def ceil_div(need: float, each: float) -> int:
    """Units of capacity ``each`` that cover ``need`` (at least 1; 0 when nothing is needed)."""
    if need <= 0:
        return 0
    if each <= 0:
        raise ValueError(f"a unit must have a positive capacity, got {each}")
    return max(1, math.ceil(need / each - 1e-9))


@dataclass(frozen=True, slots=True)
class Measured:
    """The figures of one run that the plan needs; None where a part did not run."""

    worker_fps_cpu: float | None  # live frames one CPU worker detects per second, alone
    cores_per_worker: int  # the cores that worker had
    decode_cpu_ms: float | None  # CPU ms to decode one 1080p frame to BGR
    jpeg_cpu_ms: float | None  # CPU ms to JPEG-encode it at the ingest's quality
    jpeg_bytes: float | None  # its JPEG size
    jpeg_decode_cpu_ms: float | None  # CPU ms for a worker to decode that JPEG
    redis_msgs_per_core_s: float | None  # XADD + reads per frame one Redis core serves a second
    source_bitrate_bps: float | None  # the camera's H.264 stream
    batch_gain: float | None = None  # fps at the largest batch over batch 1, bare engine


def plan(
    m: Measured,
    streams: int = PLAN_STREAMS,
    fps: float = PLAN_FPS,
    gpu_fps: float = GPU_FPS_ESTIMATE,
    viewers_per_stream: float = VIEWERS_PER_STREAM,
) -> dict[str, Any]:
    """What ``streams`` live streams at ``fps`` need, from the measured figures: every
    result with the formula it came from. Stages run at :data:`UTILISATION` of capacity."""
    rate = streams * fps  # frames a second, in all
    u = UTILISATION
    out: dict[str, Any] = {
        "assumptions": {
            "streams": streams, "fps": fps, "frames_per_s": rate, "utilisation": u,
            "gpu_fps": gpu_fps, "gpu_fps_source": "estimate (overlays/gpu), not measured here",
            "redis_core_share": REDIS_CORE_SHARE, "nic_gbit": NIC_GBIT, "nic_share": NIC_SHARE,
            "viewers_per_stream": viewers_per_stream, "frames_maxlen": FRAMES_MAXLEN,
            "redis_overhead": REDIS_OVERHEAD, "reads_per_frame": READS_PER_FRAME,
        },
    }  # fmt: skip
    workers: dict[str, Any] = {
        "gpus": ceil_div(rate, gpu_fps * u), "gpus_formula": "ceil(N*fps / (gpu_fps*u))",
    }  # fmt: skip
    if m.worker_fps_cpu:
        n = ceil_div(rate, m.worker_fps_cpu * u)
        workers.update(
            cpu_workers=n, cpu_cores=n * m.cores_per_worker,
            cpu_formula=f"ceil(N*fps / (worker_fps*u)), {m.cores_per_worker} cores each",
        )  # fmt: skip
    if m.jpeg_decode_cpu_ms is not None:
        # a GPU worker still decodes each JPEG on its CPU before the letterbox
        workers["gpu_worker_cpu_cores"] = round(
            min(gpu_fps, rate) * m.jpeg_decode_cpu_ms / 1000 / u, 2
        )
    out["workers"] = workers
    if m.decode_cpu_ms is not None and m.jpeg_cpu_ms is not None:
        per_frame = m.decode_cpu_ms + m.jpeg_cpu_ms
        out["ingest"] = {
            "cpu_ms_per_frame": round(per_frame, 2),
            "cores": round(rate * per_frame / 1000 / u, 1),
            "cores_per_stream": round(fps * per_frame / 1000, 3),
            "formula": "N*fps*(decode_ms + jpeg_ms)/1000/u",
        }
    if m.jpeg_bytes:
        into = rate * m.jpeg_bytes  # bytes a second XADDed
        out_of = into * READS_PER_FRAME
        memory = streams * FRAMES_MAXLEN * m.jpeg_bytes * REDIS_OVERHEAD
        by_bandwidth = ceil_div((into + out_of) * 8, NIC_GBIT * 1e9 * NIC_SHARE)
        shards = {"by_bandwidth": by_bandwidth}
        if m.redis_msgs_per_core_s:
            shards["by_cpu"] = ceil_div(rate, m.redis_msgs_per_core_s * REDIS_CORE_SHARE)
        out["redis"] = {
            "in_mbyte_s": round(into / 1e6, 1), "out_mbyte_s": round(out_of / 1e6, 1),
            "memory_mib": round(memory / 2**20), "shards": max(shards.values()),
            "shards_by": shards,
            "formula": "in = N*fps*jpeg_bytes; out = in*reads; memory = N*maxlen*jpeg*1.25; "
            "shards = max(ceil(8*(in+out)/(nic*share)), ceil(N*fps/(msgs_per_core*share)))",
        }  # fmt: skip
        per_stream = fps * m.jpeg_bytes * 8  # bits a second, one copy of the JPEG stream
        network: dict[str, Any] = {
            "jpeg_mbit_s_per_stream": round(per_stream / 1e6, 1),
            "viewer_mbit_s_per_stream": round(per_stream * viewers_per_stream / 1e6, 1),
            "redis_mbit_s_in_all": round((into + out_of) * 8 / 1e6),
            "viewers_mbit_s_in_all": round(per_stream * viewers_per_stream * streams / 1e6),
        }
        if m.source_bitrate_bps:
            network["camera_mbit_s_per_stream"] = round(m.source_bitrate_bps / 1e6, 2)
            network["cameras_mbit_s_in_all"] = round(m.source_bitrate_bps * streams / 1e6)
        out["network"] = network
    keda: dict[str, Any] = {"backlog_per_worker": 8, "gpu_frames_per_worker": round(gpu_fps * u)}
    if m.worker_fps_cpu:
        keda["cpu_frames_per_worker"] = round(m.worker_fps_cpu * u)
    keda["formula"] = "frames threshold = worker_fps*u; backlog 8 = PITCHSIDE_ANALYSE_MAX_LAG/2"
    out["keda"] = keda
    return out


def shares(cpu: Mapping[str, float]) -> dict[str, float]:
    """CPU cores per process summed by kind: ``worker-1``, ``worker-2``... as ``workers``."""
    out: dict[str, float] = {}
    for name, cores in cpu.items():
        kind = "workers" if name.startswith("worker-") else name
        out[kind] = round(out.get(kind, 0.0) + cores, 2)
    return out


# -- tables ------------------------------------------------------------------------------------


def table(titles: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Right-aligned columns under their titles, a rule between."""
    widths = [max(len(r[i]) for r in [titles, *rows]) for i in range(len(titles))]
    rule = ["-" * w for w in widths]
    return [
        "  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)).rstrip()
        for r in [titles, rule, *rows]
    ]


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def workers_rows(counts: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """One row per worker count of the part ``workers``."""
    rows = []
    for n, r in counts.items():
        if "error" in r:
            rows.append([n, "-", f"failed: {r['error']}"[:60], *["-"] * 9])
            continue
        live, analyse = r["live"], r.get("analyse", {})
        lat, cpu = live["latency_ms"], live["cpu_cores_by_kind"]
        drops = sum(live["drops_per_s"].values())
        rows.append([
            n, f"{r['threads_per_worker']}x{r['lanes_per_worker']}",
            _num(live["offered_fps"]), _num(live["detected_fps"]),
            _num(live["viewer_fps_mean"]), _num(min(live["viewer_fps"], default=None)),
            _num(lat.get("p50_ms"), "{:.0f}"), _num(lat.get("p95_ms"), "{:.0f}"),
            _num(drops), _num(cpu.get("workers"), "{:.2f}"),
            _num(sum(v for k, v in cpu.items() if k != "workers"), "{:.2f}"),
            _num(analyse.get("detected_fps")),
        ])  # fmt: skip
    return rows


WORKERS_TITLES = (
    "workers", "threads x lanes", "offered fps", "detected fps", "viewer fps", "min viewer",
    "p50 ms", "p95 ms", "dropped/s", "cpu workers", "cpu rest", "analyse fps",
)  # fmt: skip


def batch_rows(by_way: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Batch sizes down, each way's fps, ms a frame and ratios to batch 1 across."""
    ways = [w for w in ("engine", "worker") if w in by_way and "table" in by_way[w]]
    titles = ["batch"]
    for w in ways:
        titles += [f"{w} fps", f"{w} ms/frame", f"{w} x b1 (paired)", f"{w} x b1 (medians)"]
    sizes = sorted({int(b) for w in ways for b in by_way[w]["table"]})
    rows = []
    for b in sizes:
        row = [str(b)]
        for w in ways:
            t = by_way[w]["table"].get(str(b), {})
            row += [_num(t.get("fps"), "{:.2f}"), _num(t.get("ms_per_frame"), "{:.1f}"),
                    _num(t.get("ratio_paired"), "{:.3f}"),
                    _num(t.get("ratio_of_medians"), "{:.3f}")]  # fmt: skip
        rows.append(row)
    return titles, rows


def report_lines(figures: Mapping[str, Any], json_path: Any) -> list[str]:
    """Every table of one run of :mod:`bench.scale`, and the plan."""
    out = [
        f"bench.scale: {figures['cores']} usable cores, load average before "
        f"{figures['load_average_before'][0]:.2f}, after {figures['load_average_after'][0]:.2f}"
    ]
    w = figures.get("workers")
    if w is not None:
        out.append("")
        if "error" in w:
            out.append(f"workers: failed: {w['error']}")
        else:
            out.append(
                f"workers: {w['streams']} looping live streams at {w['clip_fps']:.0f} fps, a "
                "viewer each; cpu in cores (/proc); analyse: as many unpaced streams"
            )
            out += table(WORKERS_TITLES, workers_rows(w["counts"]))
    b = figures.get("batch")
    if b is not None:
        out.append("")
        if "error" in b:
            out.append(f"batch: failed: {b['error']}")
        else:
            out.append(
                f"batch: one worker's session, {b['threads']} threads, 1 lane, input "
                f"{b['input_hw']}; median of {b['rounds']} interleaved rounds"
            )
            titles, rows = batch_rows(b)
            out += table(titles, rows)
    c = figures.get("components")
    if c is not None:
        out.append("")
        out += component_lines(c)
    p = figures.get("plan")
    if p is not None:
        out.append("")
        out += plan_lines(p)
    out += ["", f"figures: {json_path}"]
    return out


def component_lines(c: Mapping[str, Any]) -> list[str]:
    """The part ``components``: decode and JPEG per clip, the stills' JPEG, Redis."""
    if "error" in c:
        return [f"components: failed: {c['error']}"]
    rows = []
    for name in (k for k in ("native", "1080p") if k in c):
        size = c[name]["source"]["size"]
        d1, di, j = c[name]["decode_1_thread"], c[name]["decode_ingest"], c[name]["jpeg"]
        rows += [
            [f"{name} {size}: decode, PyAV 1 thread", _num(d1["wall_ms"]["p50_ms"], "{:.2f}"),
             _num(d1["cpu_ms_per_frame"], "{:.2f}"), "-"],
            [f"{name} {size}: decode as ingest", _num(di["wall_ms"]["p50_ms"], "{:.2f}"),
             _num(di["cpu_ms_per_frame"], "{:.2f}"), "-"],
            *_jpeg_rows(f"{name} {size}", j),
        ]  # fmt: skip
    if "stills" in c:
        rows += _jpeg_rows(f"stills {c['stills']['size']}", c["stills"])
    lines = ["components, per frame (decode: to BGR, as ingest converts it):"]
    lines += table(["what", "wall p50 ms", "cpu ms", "bytes"], rows)
    r = c["redis"]
    redis_rows = [
        [op, _num(r[op]["calls_per_s"], "{:.0f}"), _num(r[op]["mbyte_per_s"], "{:.0f}"),
         _num(r[op]["call_us"].get("p50_us"), "{:.0f}"),
         _num(r[op]["server_cpu_us_per_call"], "{:.0f}")]
        for op in ("xadd", "xrevrange")
    ]  # fmt: skip
    lines.append(
        f"Redis (embedded, unix socket, one client, one call at a time), {r['entries']} entries "
        f"of {r['payload_bytes_mean']} B:"
    )
    lines += table(["call", "calls/s", "MB/s", "p50 us", "server cpu us"], redis_rows)
    return lines


def _jpeg_rows(name: str, j: Mapping[str, Any]) -> list[list[str]]:
    return [
        [f"{name}: JPEG encode q{j['quality']}", _num(j["encode_ms"]["p50_ms"], "{:.2f}"),
         _num(j["encode_cpu_ms"], "{:.2f}"), str(j["bytes_mean"])],
        [f"{name}: JPEG decode (worker)", _num(j["decode_ms"]["p50_ms"], "{:.2f}"),
         _num(j["decode_cpu_ms"], "{:.2f}"), "-"],
    ]  # fmt: skip


def plan_lines(p: Mapping[str, Any]) -> list[str]:
    a = p["assumptions"]
    lines = [
        f"plan: {a['streams']} live streams x {a['fps']:g} fps = {a['frames_per_s']:g} frames/s, "
        f"each stage at {a['utilisation']:.0%} of what it can do (provisional: see the JSON)"
    ]
    wk = p["workers"]
    lines.append(
        f"  workers: {wk['gpus']} GPUs at {a['gpu_fps']:g} fps each ({a['gpu_fps_source']})"
        + (
            f"; or {wk['cpu_workers']} CPU workers = {wk['cpu_cores']} cores"
            if "cpu_workers" in wk
            else ""
        )
    )
    if "ingest" in p:
        i = p["ingest"]
        lines.append(
            f"  ingest: {i['cpu_ms_per_frame']} CPU ms a frame -> {i['cores']} cores "
            f"({i['cores_per_stream']} a stream)"
        )
    if "redis" in p:
        r = p["redis"]
        lines.append(
            f"  redis: in {r['in_mbyte_s']} MB/s, out {r['out_mbyte_s']} MB/s, frames "
            f"{r['memory_mib']} MiB; shards {r['shards']} ({r['shards_by']})"
        )
    if "network" in p:
        n = p["network"]
        lines.append(
            f"  network: camera {n.get('camera_mbit_s_per_stream', '-')} Mbit/s a stream, JPEG "
            f"{n['jpeg_mbit_s_per_stream']} Mbit/s a stream and viewer; Redis "
            f"{n['redis_mbit_s_in_all']} Mbit/s, viewers {n['viewers_mbit_s_in_all']} Mbit/s in all"
        )
    k = p["keda"]
    lines.append(
        f"  KEDA: frames threshold {k.get('cpu_frames_per_worker', '-')} (CPU worker), "
        f"{k['gpu_frames_per_worker']} (GPU worker); backlog {k['backlog_per_worker']}"
    )
    return lines
