"""How fast the results store takes frame results: SQLite and PostgreSQL side by side.

    python -m bench.results_store [--records 5000] [--calls-of 1,8,32,256] [--postgres-url URL]

Each figure is frame records (20 detections each, as a busy broadcast frame has) written per
second through :meth:`~pitchside.results.ResultsStore.write_frames`, one transaction per
call of N records, as a consumer acknowledging N frames at a time would write them; then the
same frames written again (every one ignored, as a redelivery is) and read back in ``seq``
order. The target is ten times what the workers produce, ~35 frames/s: 350 records/s.

SQLite is a file in a temporary folder (WAL, synchronous=FULL: every commit reaches the
disk). PostgreSQL is ``--postgres-url``, or else a private server started for the run
(:mod:`bench.postgres`, durable: fsync on). A backend that cannot run is reported and the
exit status is 1; a missed target still exits 0.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.postgres import PostgresUnavailable, PrivatePostgres
from pitchside.results import FrameRecord, NewUpload, ResultsStore

TARGET_RPS = 350.0  # ten times the ~35 frames/s the workers produce
DETECTIONS = 20
LABELS = ("person", "sports ball", "person", "person")


def frame_records(count: int, start: int = 0, seed: int = 0) -> list[FrameRecord]:
    """``count`` realistic frame records: 20 detections each, in 1920x1080 pixels."""
    rng = random.Random(seed)
    records = []
    for seq in range(start, start + count):
        detections: list[dict[str, Any]] = []
        for _ in range(DETECTIONS):
            x, y = rng.uniform(0, 1860), rng.uniform(0, 1000)
            w, h = rng.uniform(10, 60), rng.uniform(25, 80)
            cls = rng.choice((0, 0, 0, 32))
            detections.append(
                {
                    "box": [round(x, 1), round(y, 1), round(x + w, 1), round(y + h, 1)],
                    "score": round(rng.uniform(0.25, 0.95), 4),
                    "cls": cls,
                    "label": "person" if cls == 0 else "sports ball",
                }
            )
        records.append(FrameRecord(seq=seq, pts_ns=seq * 40_000_000, detections=detections))
    return records


@dataclass(frozen=True, slots=True)
class Figures:
    """records/s by measurement name."""

    backend: str
    rates: dict[str, float]


def _new_job(store: ResultsStore) -> str:
    upload_id, job_id = uuid.uuid4().hex, uuid.uuid4().hex
    store.add_upload(NewUpload(id=upload_id, name="bench.mp4", size=0))
    store.add_job(job_id, upload_id)
    return job_id


def _rate(records: int, run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return records / (time.perf_counter() - started)


def measure(
    store: ResultsStore, records: Sequence[FrameRecord], calls_of: Sequence[int], budget_s: float
) -> dict[str, float]:
    """Write ``records`` in calls of each size (at most ``budget_s`` each), rewrite, read."""
    rates: dict[str, float] = {}
    for size in calls_of:
        job_id = _new_job(store)
        written, started = 0, time.perf_counter()
        while written < len(records) and time.perf_counter() - started < budget_s:
            store.write_frames(job_id, records[written : written + size])
            written += len(records[written : written + size])
        rates[f"write, calls of {size}"] = written / (time.perf_counter() - started)
        stored = store.count_frames(job_id)
        if stored != written:
            raise RuntimeError(f"wrote {written} records, the store holds {stored}")
    size = max(calls_of)
    job_id = _new_job(store)
    store.write_frames(job_id, records)

    def rewrite() -> None:
        for start in range(0, len(records), size):
            store.write_frames(job_id, records[start : start + size])

    rates[f"rewrite (all ignored), calls of {size}"] = _rate(len(records), rewrite)

    def read() -> None:
        count = sum(1 for _ in store.iter_frames(job_id))
        if count != len(records):
            raise RuntimeError(f"read {count} records back, wrote {len(records)}")

    rates["read in seq order (streamed)"] = _rate(len(records), read)
    return rates


@contextmanager
def _sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="pitchside-bench-db-") as folder:
        yield f"sqlite:///{Path(folder) / 'results.db'}"


def run_backend(
    name: str, url: str, records: Sequence[FrameRecord], calls_of: Sequence[int], budget_s: float
) -> Figures:
    with ResultsStore.open(url) as store:
        return Figures(name, measure(store, records, calls_of, budget_s))


def table(figures: Sequence[Figures]) -> str:
    """The figures side by side, one row per measurement, with the target's verdict."""
    names = list(dict.fromkeys(k for f in figures for k in f.rates))
    width = max(len(n) for n in names)
    lines = [
        f"results store: frame records ({DETECTIONS} detections each) per second",
        f"{'':{width}}  " + "  ".join(f"{f.backend:>12}" for f in figures),
    ]
    for name in names:
        cells = "  ".join(f"{f.rates.get(name, float('nan')):>12,.0f}" for f in figures)
        lines.append(f"{name:{width}}  {cells}")
    for f in figures:
        writes = {k: v for k, v in f.rates.items() if k.startswith("write")}
        slowest = min(writes, key=writes.__getitem__)
        verdict = "met" if writes[slowest] >= TARGET_RPS else "MISSED"
        lines.append(
            f"{f.backend}: target {TARGET_RPS:.0f} records/s {verdict} by every write size "
            f"(slowest: {slowest}, {writes[slowest]:,.0f}/s)"
            if verdict == "met"
            else f"{f.backend}: target {TARGET_RPS:.0f} records/s MISSED at {slowest} "
            f"({writes[slowest]:,.0f}/s)"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.results_store", description=__doc__)
    parser.add_argument("--records", type=int, default=5000, help="records per measurement")
    parser.add_argument(
        "--calls-of", default="1,8,32,256", help="records per write call (comma list)"
    )
    parser.add_argument("--budget-s", type=float, default=5.0, help="time bound of each write")
    parser.add_argument("--postgres-url", help="an existing server (default: a private one)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        calls_of = [int(p) for p in args.calls_of.split(",") if p.strip()]
    except ValueError:
        parser.error(f"--calls-of must be a comma list of integers, got {args.calls_of!r}")
    if args.records < 1 or not calls_of or min(calls_of) < 1:
        parser.error("--records and every --calls-of size must be at least 1")
    records = frame_records(args.records)
    figures, failed = [], []
    with ExitStack() as stack:
        url = stack.enter_context(_sqlite_url())
        figures.append(run_backend("sqlite", url, records, calls_of, args.budget_s))
        if not args.no_postgres:
            try:
                if args.postgres_url:
                    pg_url = args.postgres_url
                else:
                    pg = stack.enter_context(PrivatePostgres(durable=True))
                    pg_url = pg.create_database("bench")
                figures.append(run_backend("postgresql", pg_url, records, calls_of, args.budget_s))
            except PostgresUnavailable as exc:
                failed.append(f"postgresql: could not run: {exc}")
    print(table(figures))
    for line in failed:
        print(line, file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({f.backend: f.rates for f in figures}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
