"""The pure half of :mod:`bench.soak`: samples in, per-minute figures and verdicts out.

A soak run keeps two kinds of record. Every frame message a viewer receives gives a
:class:`Seen` (when, which viewer, its end-to-end latency). About every 10 s a
:class:`Sample` notes each process's resident memory, Redis's ``used_memory`` and the
services' counters (frames dropped by stage and reason, frames inferred, frames published),
per service instance, as their ``/metrics`` said. Counters are turned into increases the way
Prometheus's ``increase()`` does: a value lower than the one before is a restart from 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.stats import summary_ms

MINUTE_S = 60.0
# The thresholds.
LATENCY_FLAT_SHARE = 0.10  # p95 of the last minute within 10 % of the second minute's
MEMORY_GROWTH_MAX = 0.05  # each process's RSS grows less than 5 % after the warm-up
WARMUP_MINUTES = 2  # the warm-up ends with the second minute
# Redis "bounded": this benchmark's reading, not a figure of the issue (see redis_verdict).
REDIS_GROWTH_MAX = 0.10
VIEWER_CHANGE_MAX = 0.10  # another viewer's fps or latency moves by 10 % at most

DROPPED = "pitchside_frames_dropped_total"
INFERRED = "pitchside_worker_frames_inferred_total"
PUBLISHED = "pitchside_ingest_frames_published_total"
INFERRED_KEY, PUBLISHED_KEY = "inferred", "published"
Counters = dict[str, dict[str, float]]  # service instance -> series key -> value
TOL_S = 1.0  # a sample taken this late still counts as taken at its time (a scrape takes a while)


@dataclass(frozen=True, slots=True)
class Seen:
    """One frame message as a viewer received it."""

    t_s: float  # seconds since the soak started
    viewer: int
    latency_ms: float  # receipt minus the frame's ts_capture


@dataclass(frozen=True, slots=True)
class Sample:
    """The stack at one moment."""

    t_s: float  # seconds since the soak started
    pids: dict[str, int]  # process name -> pid
    rss_kib: dict[str, int]  # process name -> VmRSS
    redis_used: int | None  # INFO memory used_memory, bytes; None: Redis did not answer
    counters: Counters = field(default_factory=dict)


def scrape_counters(text: str) -> dict[str, float]:
    """The series the soak follows in one ``/metrics`` text, per stream (``KEY@stream``):
    ``dropped/<stage>/<reason>``, :data:`INFERRED_KEY` and :data:`PUBLISHED_KEY`. Kept per
    stream because a stream's series go when it is deleted: a sum over streams would fall,
    and read as a counter reset."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == DROPPED:
                key = (
                    f"dropped/{sample.labels.get('stage', '?')}/{sample.labels.get('reason', '?')}"
                )
            elif sample.name == INFERRED:
                key = INFERRED_KEY
            elif sample.name == PUBLISHED:
                key = PUBLISHED_KEY
            else:
                continue
            key = f"{key}@{sample.labels.get('stream', '')}"
            found[key] = found.get(key, 0.0) + float(sample.value)
    return found


def counter_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` of a ``/metrics`` text whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += float(sample.value)
    return total


def increase(before: Counters, after: Counters) -> dict[str, float]:
    """How much each series grew from ``before`` to ``after``, summed over instances and
    streams (``KEY@stream`` -> ``KEY``); a value that went down is a counter that started
    again from 0 (a restarted process); a series gone from ``after`` adds nothing."""
    grown: dict[str, float] = {}
    for instance, series in after.items():
        old = before.get(instance, {})
        for key, value in series.items():
            prior = old.get(key, 0.0)
            total = key.split("@", 1)[0]
            grown[total] = grown.get(total, 0.0) + (value - prior if value >= prior else value)
    return grown


def _last_at_or_before(samples: Sequence[Sample], t_s: float) -> Sample | None:
    found = None
    for sample in samples:
        if sample.t_s <= t_s + TOL_S:
            found = sample
    return found


def per_minute(
    seen: Sequence[Seen], samples: Sequence[Sample], minutes: int, viewers: int
) -> list[dict[str, Any]]:
    """One row per minute of the run.

    Each row: ``latency_ms`` (p50/p95... of every frame every viewer received in the minute),
    ``viewer_fps`` (mean and min over the viewers), ``rss_kib`` per process and ``redis_used``
    (the minute's last sample and its max/min), ``drops`` by ``stage/reason``, and the
    ``offered_fps`` (frames ingest published) and ``detected_fps`` (frames the workers
    inferred), from the counters' increase between the last sample at or before the minute's
    start and the last sample in it.
    """
    rows = []
    for m in range(minutes):
        lo, hi = m * MINUTE_S, (m + 1) * MINUTE_S
        window = [s for s in seen if lo <= s.t_s < hi]
        counts = [0] * viewers
        for s in window:
            if 0 <= s.viewer < viewers:
                counts[s.viewer] += 1
        inside = [s for s in samples if lo + TOL_S < s.t_s <= hi + TOL_S]
        start = _last_at_or_before(samples, lo) or (samples[0] if samples else None)
        row: dict[str, Any] = {
            "minute": m + 1,
            "frames": len(window),
            "latency_ms": summary_ms([s.latency_ms for s in window]),
            "viewer_fps": {
                "mean": round(sum(counts) / max(1, viewers) / MINUTE_S, 2),
                "min": round(min(counts, default=0) / MINUTE_S, 2),
            },
        }
        if inside:
            end = inside[-1]
            used = [s.redis_used for s in inside if s.redis_used is not None]
            row["rss_kib"] = dict(end.rss_kib)
            row["redis_used"] = {
                "last": end.redis_used,
                "max": max(used, default=None),
                "min": min(used, default=None),
            }
            if start is not None and end.t_s > start.t_s:
                grown = increase(start.counters, end.counters)
                span = end.t_s - start.t_s
                row["drops"] = {
                    k.removeprefix("dropped/"): int(v)
                    for k, v in sorted(grown.items())
                    if k.startswith("dropped/") and v > 0
                }
                row["drops_per_s"] = round(
                    sum(v for k, v in grown.items() if k.startswith("dropped/")) / span, 2
                )
                row["offered_fps"] = round(grown.get(PUBLISHED_KEY, 0.0) / span, 2)
                row["detected_fps"] = round(grown.get(INFERRED_KEY, 0.0) / span, 2)
        rows.append(row)
    return rows


def ratio_within(value: float, reference: float, share: float) -> tuple[float, bool]:
    """``value / reference`` and whether it is within ``share`` of 1 (either way)."""
    if reference <= 0:
        return float("inf"), False
    ratio = value / reference
    return round(ratio, 3), abs(ratio - 1) <= share + 1e-12


def latency_verdict(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """p95 of the last minute against the second minute's: within 10 %?"""
    if len(rows) < 2 or not rows[1]["latency_ms"].get("n") or not rows[-1]["latency_ms"].get("n"):
        return {"met": False, "why": "needs frames in the second and the last minute"}
    second, last = rows[1]["latency_ms"]["p95_ms"], rows[-1]["latency_ms"]["p95_ms"]
    ratio, met = ratio_within(last, second, LATENCY_FLAT_SHARE)
    return {
        "second_p95_ms": second, "last_p95_ms": last, "ratio": ratio,
        "limit_share": LATENCY_FLAT_SHARE, "met": met,
    }  # fmt: skip


def warmup_end_s(minutes: int) -> float:
    """When the warm-up ends: after the second minute, or earlier in a shorter run."""
    return MINUTE_S * max(0, min(WARMUP_MINUTES, minutes - 1))


def memory_verdict(samples: Sequence[Sample], minutes: int) -> dict[str, Any]:
    """Each process's RSS from the end of the warm-up to the end of the run: growth < 5 %?
    A process with another pid at the end was restarted: that fails it too."""
    if not samples:
        return {"met": False, "why": "no sample", "processes": {}}
    start = _last_at_or_before(samples, warmup_end_s(minutes)) or samples[0]
    end = samples[-1]
    processes: dict[str, Any] = {}
    for name, before in sorted(start.rss_kib.items()):
        after = end.rss_kib.get(name)
        restarted = end.pids.get(name) != start.pids.get(name)
        if after is None or before <= 0:
            processes[name] = {"start_kib": before, "end_kib": after, "met": False, "gone": True}
            continue
        growth = after / before - 1
        processes[name] = {
            "start_kib": before, "end_kib": after, "growth": round(growth, 4),
            "restarted": restarted, "met": growth < MEMORY_GROWTH_MAX and not restarted,
        }  # fmt: skip
    return {
        "from_s": round(start.t_s, 1), "to_s": round(end.t_s, 1),
        "limit_share": MEMORY_GROWTH_MAX, "processes": processes,
        "met": bool(processes) and all(p["met"] for p in processes.values()),
    }  # fmt: skip


def redis_verdict(samples: Sequence[Sample], minutes: int) -> dict[str, Any]:
    """Redis's ``used_memory`` over the run: max and min (after the warm-up, and in all), and
    "bounded" read as: the last minute's max at most 10 % above the second minute's max."""
    used = [(s.t_s, s.redis_used) for s in samples if s.redis_used is not None]
    if not used:
        return {"met": False, "why": "Redis never answered"}
    after = [u for t, u in used if t > warmup_end_s(minutes) + TOL_S] or [u for _, u in used]
    second = [u for t, u in used if MINUTE_S + TOL_S < t <= 2 * MINUTE_S + TOL_S]
    second = second or [u for _, u in used]
    last_lo = MINUTE_S * (minutes - 1) + TOL_S
    last = [u for t, u in used if t > last_lo] or [used[-1][1]]
    ratio = max(last) / max(second)
    return {
        "max": max(u for _, u in used), "min": min(u for _, u in used),
        "after_warmup_max": max(after), "after_warmup_min": min(after),
        "second_minute_max": max(second), "last_minute_max": max(last),
        "last_over_second": round(ratio, 3), "limit_share": REDIS_GROWTH_MAX,
        "met": ratio <= 1 + REDIS_GROWTH_MAX,
    }  # fmt: skip


def phase_figures(
    points: Iterable[tuple[float, float]], start_s: float, end_s: float
) -> dict[str, Any]:
    """One viewer over one phase: ``points`` are (seconds, latency ms) of each frame it
    received; its frames per second and latency percentiles within ``[start_s, end_s)``."""
    window = [lat for t, lat in points if start_s <= t < end_s]
    span = end_s - start_s
    return {
        "fps": round(len(window) / span, 2) if span > 0 else 0.0,
        "latency_ms": summary_ms(window),
    }


def change(value: float, reference: float) -> float | None:
    """``value`` against ``reference`` in percent (+: higher); None against 0."""
    return round(100 * (value / reference - 1), 1) if reference else None


def viewer_verdict(
    phase: Sequence[Mapping[str, Any]], baseline: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The reference viewers in one phase against the same viewers alone (phase A): each
    one's fps, p50 and p95 changed by at most 10 %?"""
    changes: list[dict[str, float | None]] = []
    for now, before in zip(phase, baseline, strict=True):
        row: dict[str, float | None] = {"fps": change(now["fps"], before["fps"])}
        for key in ("p50_ms", "p95_ms"):
            a, b = now["latency_ms"].get(key), before["latency_ms"].get(key)
            row[key] = change(a, b) if a is not None and b is not None else None
        changes.append(row)
    limit = 100 * VIEWER_CHANGE_MAX
    keys = ("fps", "p50_ms", "p95_ms")
    worst = {key: max((abs(v) for c in changes if (v := c[key]) is not None), default=None)
             for key in keys}  # fmt: skip
    met = bool(changes) and all(
        (v := c[key]) is not None and abs(v) <= limit for c in changes for key in keys
    )
    return {"changes_percent": changes, "worst_percent": worst, "limit_percent": limit, "met": met}
