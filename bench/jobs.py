"""How fast analysis jobs go: one and two workers against the bare engine, and how long one
job's results take to write to SQLite and to PostgreSQL.

    python -m bench.jobs [--clip PATH] [--repeats 4] [--workers 1,2] [--model PATH]

For each worker count it starts ``pitchside up`` (embedded Redis, SQLite in a temporary data
folder) on a free loopback port, uploads the clip repeated ``--repeats`` times (its packets
remuxed, no re-encoding: a job long enough to time), analyses it with ``POST /api/jobs`` and
reports frames per second from the job's first stored result to its last, with the check
that every frame has exactly one result. Next to it, in the same run, section (a) of
``pitchside bench``: the bare engine on pre-letterboxed frames, with as many callers as the
workers have lanes. Then the job's results are read back and written again, in one call,
to a fresh SQLite file and to a private PostgreSQL (:mod:`bench.postgres`, fsync on): the
time it takes, and how many times faster than the workers produced them.

A benchmark, not a test: a missed figure still exits 0; a run that could not finish exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import av
import httpx

from bench import up
from bench.postgres import PostgresUnavailable, PrivatePostgres
from pitchside.results import FrameRecord, NewUpload, ResultsStore
from pitchside.settings import default_model_path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO.parent / "shared" / "assets" / "video" / "08fd33_4.mp4"
JOB_S = 900.0


def repeat_clip(src: Path, out: Path, times: int) -> Path:
    """Write ``src``'s video packets ``times`` times over into ``out`` (timestamps shifted,
    nothing re-encoded): a longer video with exactly ``times`` x the frames."""
    with av.open(str(src)) as source, av.open(str(out), "w") as sink:
        video = source.streams.video[0]
        stream = sink.add_stream_from_template(video)
        packets = [p for p in source.demux(video) if p.size]
        if not packets:
            raise ValueError(f"{src} has no video packets")
        pts = [p.pts for p in packets if p.pts is not None]
        span = max(pts) - min(pts) + (packets[-1].duration or 1)
        for n in range(times):
            for packet in packets:
                if n:
                    packet.pts = None if packet.pts is None else packet.pts + span
                    packet.dts = None if packet.dts is None else packet.dts + span
                packet.stream = stream
                sink.mux(packet)
    return out


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@contextlib.contextmanager
def stack(data_dir: Path, model: Path, workers: int, threads: int) -> Iterator[str]:
    """``pitchside up`` with ``workers`` workers of ``threads`` threads; yields its URL."""
    with up.pitchside_up(
        data_dir, data_dir.parent / f"up-{workers}.log", PITCHSIDE_MODEL=str(model),
        PITCHSIDE_WORKERS=str(workers), PITCHSIDE_THREADS=str(threads),
    ) as (base, _):  # fmt: skip
        yield base


def run_job(base: str, video: Path) -> dict[str, Any]:
    """Upload ``video``, analyse it, wait; the job as it ended and its results' lines."""
    with httpx.Client(base_url=base, timeout=120) as client, video.open("rb") as file:
        upload = client.post("/api/uploads", files={"file": (video.name, file)}).json()
        job = client.post("/api/jobs", json={"upload": upload["id"]}).json()
        deadline = time.monotonic() + JOB_S
        while job["state"] in ("queued", "running"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job['id']} still {job['state']} after {JOB_S:.0f} s")
            time.sleep(0.2)
            job = client.get(f"/api/jobs/{job['id']}").json()
        lines = client.get(job["links"]["results_jsonl"]).text.splitlines()
    job["seqs"] = [json.loads(line)["seq"] for line in lines]
    return dict(job)


def ceiling(model: Path, clip: Path, lanes: int, threads: int) -> float:
    """Section (a) of ``pitchside bench``: the bare engine, ``lanes`` callers."""
    from bench.ceiling import run_ceiling
    from pitchside.models import resolve
    from pitchside.settings import Settings
    from workers.engines import load_for_worker

    settings = Settings(threads=threads, lanes=lanes)
    _, detector = load_for_worker(resolve(str(model), settings), settings)
    return float(run_ceiling(detector, clip, 200, 20, lanes=lanes)["fps"])


def write_time(records: Sequence[FrameRecord], url: str) -> float:
    """Seconds to write ``records`` as one job's results, in one call, to the store at ``url``."""
    with ResultsStore.open(url) as store:
        store.add_upload(NewUpload(id="bench", name="bench", size=0))
        store.add_job("bench", "bench")
        start = time.perf_counter()
        store.write_frames("bench", records)
        return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.jobs", description=__doc__)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--workers", default="1,2", help="comma list of worker counts")
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if not args.clip.is_file():
        print(f"no clip at {args.clip} (pass --clip; ../shared/assets holds it)", file=sys.stderr)
        return 2
    cores = len(os.sched_getaffinity(0))
    counts = [int(n) for n in args.workers.split(",")]
    figures: dict[str, Any] = {"cores": cores, "workers": {}}
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        video = repeat_clip(args.clip, Path(tmp) / "long.mp4", args.repeats)
        frames = decoded_frames(video)
        figures["frames"] = frames
        last: dict[str, Any] = {}
        for n in counts:
            threads = max(1, cores // n)  # the cores shared out among the workers
            with stack(Path(tmp) / f"data-{n}", args.model, n, threads) as base:
                job = run_job(base, video)
            exact = job["seqs"] == list(range(frames)) and job["state"] == "done"
            figures["workers"][n] = {"fps": job["fps"], "threads": threads, "exact": exact}
            print(f"{n} worker(s) x {threads} threads: {job['fps']:.1f} frames/s, "
                  f"{len(job['seqs'])}/{frames} results, one per frame: {exact}")  # fmt: skip
            last = job
        figures["ceiling_fps"] = ceiling(args.model, args.clip, 2, cores)
        print(f"(a) bare engine, 2 callers x {max(1, cores // 2)} threads: "
              f"{figures['ceiling_fps']:.1f} frames/s")  # fmt: skip
        for n, row in figures["workers"].items():
            print(f"  {n} worker(s) / (a) = {row['fps'] / figures['ceiling_fps']:.2f}")
        if not last:
            return 1
        stored = Path(tmp) / f"data-{counts[-1]}" / "results.db"
        with ResultsStore.open(f"sqlite:///{stored}") as store:
            records = list(store.iter_frames(last["id"]))  # what the workers wrote
        produced_s = frames / last["fps"]
        figures["write_s"] = {"sqlite": write_time(records, f"sqlite:///{Path(tmp) / 'w.db'}")}
        try:
            server = PrivatePostgres(durable=True)
            server.start()
            try:
                figures["write_s"]["postgresql"] = write_time(records, server.url())
            finally:
                server.stop()
        except PostgresUnavailable as exc:
            print(f"PostgreSQL not measured: {exc}", file=sys.stderr)
        for backend, seconds in figures["write_s"].items():
            print(f"one job's {len(records)} results written to {backend} in "
                  f"{seconds * 1000:.0f} ms: {produced_s / seconds:.0f} x faster than the "
                  "workers made them")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
