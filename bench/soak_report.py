"""The tables of :mod:`bench.soak`: per minute, the verdicts, the viewers' phases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

MIB = 1024.0  # KiB per MiB


def _ms(summary: Mapping[str, Any], key: str) -> str:
    return f"{summary[key]:.0f}" if summary.get("n") else "-"


def _mb(value: float | None, per: float = MIB) -> str:
    return "-" if value is None else f"{value / per:.1f}"


def minute_line(row: Mapping[str, Any]) -> str:
    """One minute on one line, for the progress log."""
    lat = row["latency_ms"]
    drops = ", ".join(f"{k} {v}" for k, v in row.get("drops", {}).items()) or "none"
    redis = row.get("redis_used", {}).get("max")
    return (
        f"minute {row['minute']}: offered {row.get('offered_fps', '-')} fps, detected "
        f"{row.get('detected_fps', '-')} fps, viewer {row['viewer_fps']['mean']} fps, "
        f"p50/p95 {_ms(lat, 'p50_ms')}/{_ms(lat, 'p95_ms')} ms, redis "
        f"{_mb(redis, MIB * MIB)} MiB, drops: {drops}"
    )


def _table(titles: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in [titles, *rows]) for i in range(len(titles))]
    for r in [titles, ["-" * w for w in widths], *rows]:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)).rstrip(), file=out)


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def soak_lines(s: Mapping[str, Any], out: TextIO) -> None:
    cal = s["calibration"]
    print(
        f"soak: {len(s['streams'])} looping live streams of {cal['clip_fps']:g} fps, one viewer "
        f"each, {s['minutes']} min; offered {cal['offered_fps']:.0f} fps, one worker detected "
        f"{cal['detected_fps']:.1f} fps when measured first: {cal['ratio']} x "
        f"({cal['chosen_by']})",
        file=out,
    )
    rows = s["per_minute"]
    drop_keys = sorted({k for r in rows for k in r.get("drops", {})})
    titles = ["min", "offered", "detected", "viewer fps", "p50 ms", "p95 ms", "redis MiB",
              *drop_keys]  # fmt: skip
    table = []
    for r in rows:
        lat, redis = r["latency_ms"], r.get("redis_used", {})
        table.append([
            str(r["minute"]), str(r.get("offered_fps", "-")), str(r.get("detected_fps", "-")),
            f"{r['viewer_fps']['mean']:.2f}", _ms(lat, "p50_ms"), _ms(lat, "p95_ms"),
            _mb(redis.get("max"), MIB * MIB),
            *(str(r.get("drops", {}).get(k, 0)) for k in drop_keys),
        ])  # fmt: skip
    print("per minute (drops: frames in the minute, by stage/reason):", file=out)
    _table(titles, table, out)
    names = sorted({n for r in rows for n in r.get("rss_kib", {})})
    print("resident memory, MiB, at the end of each minute:", file=out)
    _table(
        ["min", *names],
        [[str(r["minute"]), *(_mb(r.get("rss_kib", {}).get(n)) for n in names)] for r in rows],
        out,
    )
    v = s["verdicts"]
    lat = v["latency"]
    if "ratio" in lat:
        print(
            f"latency p95, last minute vs the second: {lat['last_p95_ms']:.0f} / "
            f"{lat['second_p95_ms']:.0f} ms = {lat['ratio']:.3f} (within 10 %): "
            f"{_verdict(lat['met'])}",
            file=out,
        )
    else:
        print(f"latency: not evaluated ({lat['why']})", file=out)
    mem = v["memory"]
    grown = ", ".join(
        f"{n} {_mb(p['start_kib'])} -> {_mb(p['end_kib'])} MiB"
        + (f" ({100 * p['growth']:+.1f} %{', restarted' if p.get('restarted') else ''})"
           if "growth" in p else " (gone)")
        for n, p in mem["processes"].items()
    )  # fmt: skip
    print(
        f"memory from {mem.get('from_s', 0):.0f} s to {mem.get('to_s', 0):.0f} s (each < 5 %): "
        f"{_verdict(mem['met'])}: {grown}",
        file=out,
    )
    red = v["redis"]
    if "max" in red:
        print(
            f"redis used_memory: min {_mb(red['min'], MIB * MIB)}, max "
            f"{_mb(red['max'], MIB * MIB)} MiB; max of the last minute / of the second "
            f"{red['last_over_second']:.3f} (bounded: <= 1.10): {_verdict(red['met'])}",
            file=out,
        )


def viewers_lines(v: Mapping[str, Any], out: TextIO) -> None:
    print(
        f"viewers: one stream of {v.get('stream_fps', '?')} fps (one frame in {v.get('every', 1)} "
        f"of the clip), {v['refs']} reference viewers, {v['phase_s']:g} s a phase "
        f"(A alone, B + a slow viewer, C + many viewers, A2 alone again); gateway->viewer: "
        f"from the last stage's publish (dets or tracks) to the receipt",
        file=out,
    )
    table = []
    for key, phase in v["phases"].items():
        refs = phase["refs"]
        fps = sum(r["fps"] for r in refs) / len(refs)
        p50 = "/".join(_ms(r["latency_ms"], "p50_ms") for r in refs)
        p95 = "/".join(_ms(r["latency_ms"], "p95_ms") for r in refs)
        verdict = phase.get("verdict")
        worst = (
            ", ".join(f"{k} {w:.1f}" for k, w in verdict["worst_percent"].items() if w is not None)
            if verdict else "-"
        )  # fmt: skip
        shown = f"{fps / phase['detected_fps']:.2f}" if phase["detected_fps"] else "-"
        deliv = "/".join(_ms(d["latency_ms"], "p95_ms") for d in phase.get("delivery", []))
        table.append([
            key, f"{fps:.2f}", p50, p95, worst, _verdict(verdict["met"]) if verdict else "-",
            shown, deliv or "-",
            str(phase["drops"].get("gateway/slow_client", 0)), f"{phase['detected_fps']:.1f}",
            f"{phase['cpu_cores'].get('gateway', 0):.2f}",
            f"{phase['cpu_cores'].get('bench', 0):.2f}",
        ])  # fmt: skip
    _table(
        ["phase", "ref fps", "p50 ms (each)", "p95 ms (each)", "worst change % vs A",
         "within 10 %", "shown/detected", "gateway->viewer p95", "slow_client drops",
         "detected fps", "gateway cores", "bench cores"],
        table, out,
    )  # fmt: skip
    slow = v["phases"].get("B", {}).get("slow_viewer")
    if slow:
        lat = slow["latency_ms"]
        print(
            f"slow viewer in B: {slow['fps']:.2f} messages/s, latency p50/p95 "
            f"{_ms(lat, 'p50_ms')}/{_ms(lat, 'p95_ms')} ms, closes: "
            f"{len((slow.get('run') or {}).get('closes', []))}",
            file=out,
        )
    extra = v["phases"].get("C", {}).get("extra_viewers")
    if extra:
        print(
            f"extra viewers in C: {extra['connected']} of {extra['asked']} connected, "
            f"{extra['fps_mean']:.2f} fps each on average (min {extra['fps_min']:.2f})",
            file=out,
        )


def print_figures(figures: Mapping[str, Any], json_path: Path, out: TextIO) -> None:
    print(
        f"bench.soak: {figures['cores']} cores, {figures['clip']}, {figures['model']}, load "
        f"average {figures['load_average_before']} before, {figures['load_average_after']} after",
        file=out,
    )
    for part, lines in (("soak", soak_lines), ("viewers", viewers_lines)):
        section = figures.get(part)
        if section is None:
            continue
        if "error" in section:
            print(f"{part} could not run: {section['error']}", file=out)
        else:
            lines(section, out)
    print(f"raw figures: {json_path}", file=out)
