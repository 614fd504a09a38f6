"""Small statistics for the benchmark: percentiles, rates, the latency trend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def summary_ms(values_ms: Sequence[float]) -> dict[str, float | int]:
    """Count, median, p95, p99, mean and max of durations in milliseconds."""
    if not values_ms:
        return {"n": 0}
    a = np.asarray(values_ms, dtype=np.float64)
    return {
        "n": int(a.size),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "mean_ms": round(float(a.mean()), 2),
        "max_ms": round(float(a.max()), 2),
    }


def median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


def rate(count: int, seconds: float) -> float:
    """Events per second; 0 for an empty interval."""
    return count / seconds if seconds > 0 else 0.0


def trend(
    times_s: Sequence[float], values_ms: Sequence[float], window_s: float
) -> dict[str, float]:
    """Median of the first and the last ``window_s`` seconds, and the least-squares slope.

    Args:
        times_s: sample times in seconds from the start of the window, ascending.
        values_ms: one latency per sample.
        window_s: width of the first and last windows.

    Returns:
        ``first_median_ms``, ``last_median_ms``, ``slope_ms_per_min`` and ``window_s``.
    """
    t = np.asarray(times_s, dtype=np.float64)
    v = np.asarray(values_ms, dtype=np.float64)
    if t.size < 2:
        raise ValueError("a trend needs at least two samples")
    first = v[t <= t[0] + window_s]
    last = v[t >= t[-1] - window_s]
    slope = float(np.polyfit(t, v, 1)[0]) * 60 if np.ptp(t) > 0 else 0.0
    return {
        "window_s": round(window_s, 2),
        "first_median_ms": round(float(np.median(first)), 2),
        "last_median_ms": round(float(np.median(last)), 2),
        "slope_ms_per_min": round(slope, 2),
    }


def per_second(times_s: Sequence[float], duration_s: float) -> dict[str, float]:
    """Events per whole second of ``[0, duration_s)``: mean, min and max."""
    seconds = max(1, int(duration_s))
    counts = np.bincount(
        np.clip(np.asarray(times_s, dtype=np.float64), 0, seconds - 1e-9).astype(int),
        minlength=seconds,
    )[:seconds]
    return {
        "mean": round(float(counts.mean()), 2),
        "min": int(counts.min()),
        "max": int(counts.max()),
    }
