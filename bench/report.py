"""The targets of the benchmark, its table and its JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

# The targets.
MIN_B_OVER_A = 0.85  # (b) at least this share of the ceiling (a)
MIN_B_OVER_C = 1.25  # (b) at least this many times Ultralytics (c)
P95_INFER_FACTOR = 2.0  # (d) p95 <= 2 x one frame's inference time + 50 ms
P95_SLACK_MS = 50.0
# "No upward trend": the last window's median may exceed the first's by this much at most.
TREND_SLACK_MS = 10.0
TREND_SLACK_SHARE = 0.10
TARGET_NAMES = ("b_over_a", "b_over_c", "d_p95", "d_trend")
INFORMATION = ("(information)", "")  # the target and result columns of a row without a target


@dataclass(frozen=True, slots=True)
class Target:
    name: str  # one of TARGET_NAMES
    rule: str  # the target in words, with the numbers it was checked against
    short: str  # the same for the table
    figure: float  # what was measured
    limit: float  # the bound it was checked against
    met: bool


def _ok(section: dict[str, Any] | None) -> dict[str, Any] | None:
    return section if section and "error" not in section else None


def _ratio_target(name: str, other: str, b_fps: float, other_fps: float, minimum: float) -> Target:
    """(b) must reach ``minimum`` times the frames per second of section ``other``."""
    ratio, limit = b_fps / other_fps, minimum * other_fps
    rule = f"(b) >= {minimum} x ({other}): {b_fps:.2f} fps >= {limit:.2f} fps"
    short = f">= {minimum} x ({other}) = {limit:.2f} fps"
    return Target(name, rule, short, round(ratio, 3), minimum, ratio >= minimum)


def evaluate(sections: dict[str, dict[str, Any]]) -> list[Target]:
    """Check every target that the sections which ran allow."""
    a, b, c, d = (_ok(sections.get(k)) for k in "abcd")
    targets = []
    if b and a:
        targets.append(_ratio_target("b_over_a", "a", b["fps"], a["fps"], MIN_B_OVER_A))
    if b and c:
        targets.append(_ratio_target("b_over_c", "c", b["fps"], c["fps"], MIN_B_OVER_C))
    if d:
        if a:
            infer_ms = a.get("live_median_ms", a["median_ms"])
            source = "median engine call of (a) on the live session"
        else:
            infer_ms, source = d["pipeline_infer_ms"]["p50_ms"], "median inference in (d)"
        limit = P95_INFER_FACTOR * infer_ms + P95_SLACK_MS
        p95 = d["latency_ms"]["p95_ms"]
        rule = f"p95 <= 2 x {infer_ms:.1f} ms ({source}) + 50 ms = {limit:.0f} ms"
        short = f"p95 <= 2 x {infer_ms:.0f}{'' if a else '*'} + 50 = {limit:.0f} ms"
        targets.append(Target("d_p95", rule, short, p95, round(limit, 2), p95 <= limit))
        trend = d["trend"]
        first, last = trend["first_median_ms"], trend["last_median_ms"]
        allowed = first + max(TREND_SLACK_MS, TREND_SLACK_SHARE * first)
        rule = (
            f"no upward trend: median latency of the last {trend['window_s']:g} s <= the "
            f"first {trend['window_s']:g} s's + max(10 ms, 10 %) = {allowed:.0f} ms"
        )
        short = f"no rise: last <= first + max(10 ms, 10%) = {allowed:.0f} ms"
        targets.append(Target("d_trend", rule, short, last, round(allowed, 2), last <= allowed))
    return targets


def rows(sections: dict[str, dict[str, Any]], targets: list[Target]) -> list[tuple[str, ...]]:
    """(what, figure, target, result) rows of the table, in the issue's order."""
    by_name = {t.name: t for t in targets}
    out: list[tuple[str, ...]] = []

    def verdict(name: str, needs: str) -> tuple[str, str]:
        t = by_name.get(name)
        return (t.short, "PASS" if t.met else "FAIL") if t else (f"(needs {needs})", "n/a")

    def section(key: str, title: str) -> dict[str, Any] | None:
        s = sections.get(key)
        if s is not None and "error" in s:
            out.append((title, "ERROR (see below)", "", ""))
            return None
        return s

    if (a := section("a", "(a) bare engine (ceiling)")) is not None:
        lanes = a.get("lanes", 1)
        figure = f"{a['fps']:.2f} fps; {a['median_ms']:.1f} ms/call median, {lanes} at once"
        if lanes > 1 and "live_median_ms" in a:
            figure += f"; live {a['live_median_ms']:.1f} ms/call"
        out.append(("(a) bare engine (ceiling)", figure, "", ""))
        _rounds(out, a)
    if (b := section("b", "(b) pipeline unpaced -> WS")) is not None:
        figure = f"{b['fps']:.2f} fps, {b['lost_frames']} lost of {b['frames']}"
        out.append(("(b) pipeline unpaced -> WS", figure, *verdict("b_over_a", "(a)")))
        _rounds(out, b)
        if "b_over_a" in by_name:
            out.append(("    b/a", f"{by_name['b_over_a'].figure:.2f}", "", ""))
    if (c := section("c", "(c) Ultralytics stream=True")) is not None:
        out.append(("(c) Ultralytics stream=True", f"{c['fps']:.2f} fps", "", ""))
        _rounds(out, c)
    if b is not None and (c is not None or "c" in sections):
        figure = f"{by_name['b_over_c'].figure:.2f}" if "b_over_c" in by_name else "-"
        out.append(("(b) vs (c): b/c", figure, *verdict("b_over_c", "(c)")))
    if (d := section("d", "(d) live latency p50/p95/p99")) is not None:
        _live(out, "d", "live", d, verdict("d_p95", "(d)"), verdict("d_trend", "(d)"))
    if (e := section("e", "(e) RTSP camera")) is not None:
        _live(out, "e", "RTSP", e, INFORMATION, INFORMATION)
        rec, backoff = e["recovery"], e["backoff"]
        figure = f"{rec['n']} restarts"
        if rec["n"]:
            figure = f"median {rec['median_s']:.2f} s, max {rec['max_s']:.2f} s of {figure}"
        figure += (
            f" (backoff {backoff['reconnect_initial_s']:g} s doubling to "
            f"{backoff['reconnect_max_s']:g} s)"
        )
        out.append(("(e) camera back -> frame shown", figure, *INFORMATION))
    if (f := section("f", "(f) WHIP publisher")) is not None:
        _live(out, "f", "WHIP", f, INFORMATION, INFORMATION)
        lat = f["source_latency_ms"]
        figure = (
            f"{lat['p50_ms']:.0f} / {lat['p95_ms']:.0f} / {lat['p99_ms']:.0f} ms "
            f"({f['source_read']} of {f['messages']} stamps read)"
            if f["source_read"] else "no frame stamp read back"
        )  # fmt: skip
        out.append(("(f) publisher -> viewer p50/p95/p99", figure, *INFORMATION))
    return out


def _live(
    out: list[tuple[str, ...]],
    key: str,
    what: str,
    section: dict[str, Any],
    p95: tuple[str, str],
    trend: tuple[str, str],
) -> None:
    """The rows of a live section: latency percentiles, its trend, frames shown."""
    lat = section["latency_ms"]
    figure = f"{lat['p50_ms']:.0f} / {lat['p95_ms']:.0f} / {lat['p99_ms']:.0f} ms"
    out.append((f"({key}) {what} latency p50/p95/p99", figure, *p95))
    tr = section["trend"]
    figure = (
        f"{tr['first_median_ms']:.0f} -> {tr['last_median_ms']:.0f} ms "
        f"({tr['slope_ms_per_min']:+.1f} ms/min)"
    )
    out.append((f"({key}) trend first/last {tr['window_s']:g} s", figure, *trend))
    figure = (
        f"{section['shown_fps']:.1f} fps shown; {section['worker'].get('skipped', '?')} "
        f"skipped by the worker, {section['missing_frames']} missing at the client"
    )
    out.append((f"({key}) frames", figure, *INFORMATION))


def _rounds(out: list[tuple[str, ...]], section: dict[str, Any]) -> None:
    """A row with every round's fps under a section that ran more than once."""
    fps = section.get("fps_rounds")
    if fps:
        rounds = ", ".join(f"{x:.2f}" for x in fps)
        out.append(("    rounds", f"{rounds} (median above)", "", ""))


def print_table(
    header: str,
    sections: dict[str, dict[str, Any]],
    targets: list[Target],
    json_path: Path,
    out: TextIO,
) -> None:
    """The table, the errors of sections that failed, and which targets were met."""
    table = rows(sections, targets)
    titles = ("what", "figure", "target", "result")
    widths = [max(len(r[i]) for r in [titles, *table]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    print(header, file=out)
    for r in [None, titles, None, *table, None]:
        text = line if r is None else "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True))
        print(text.rstrip(), file=out)
    if "d_p95" in {t.name for t in targets} and "a" not in sections:
        print("* inference time from the worker's own timings in (d): (a) did not run", file=out)
    for key, s in sections.items():
        if "error" in s:
            print(f"({key}) could not run: {s['error']}", file=out)
    met = [t.name for t in targets if t.met]
    missed = [t.name for t in targets if not t.met]
    skipped = [n for n in TARGET_NAMES if n not in {t.name for t in targets}]
    summary = f"targets met: {len(met)} of {len(targets)}"
    if met:
        summary += f" ({', '.join(met)})"
    if missed:
        summary += f"; MISSED: {', '.join(missed)}"
    if skipped:
        summary += f"; not evaluated: {', '.join(skipped)}"
    print(summary, file=out)
    print(f"raw figures: {json_path}", file=out)


def write_json(path: Path, doc: dict[str, Any], targets: list[Target]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {**doc, "targets": [asdict(t) for t in targets]}
    path.write_text(json.dumps(doc, indent=2) + "\n")
