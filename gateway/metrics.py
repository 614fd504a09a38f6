"""The gateway's Prometheus metrics, one registry per app (``GET /metrics`` exposes it).

A registry per :func:`gateway.app.create_app` call, rather than a process-wide one, keeps
apps (and tests) independent and lets other services' metrics of the same names live in the
same process (the benchmark). Every family comes from :mod:`pitchside.metrics`. Per stream, at
most ``max_streams`` streams by name and the rest as ``stream="other"``: frames handed to
viewers, messages sent, viewers, frames dropped, end-to-end latency and the consumer groups'
lag and pending entries (measured at each scrape, :mod:`gateway.groups`). A stream's series
are removed at the first scrape after it left the registry. Uploads by result, and analysis
jobs: by state in the store (counted at each scrape), each running job's progress (set by the
job keeper's tick, under its stream's label ``job-<id>``) and the jobs the keeper ended.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import NamedTuple

from prometheus_client import generate_latest

from gateway.groups import GroupState
from pitchside import metrics as m
from pitchside.schema import DetsMsg

STAGE = m.GATEWAY

# Drop reasons (frames_dropped_total{stage="gateway", reason=...})
SLOW_CLIENT = "slow_client"  # a viewer's queue was full: its oldest message went
FRAME_TRIMMED = "frame_trimmed"  # the JPEG had left the bounded frames stream before we read it
BAD_MESSAGE = "bad_message"  # a dets entry of another schema version or malformed
REASONS = (SLOW_CLIENT, FRAME_TRIMMED, BAD_MESSAGE)


class JobProgress(NamedTuple):
    """A running analysis job, as its metrics show it."""

    done: int  # frames with their results stored
    expected: int | None  # frames its video has, when known
    moved_s: float  # Unix time its results last grew (or its state changed)


class Metrics:
    """Every metric the gateway exports, registered in its own registry.

    Args:
        max_streams: how many streams get their own ``stream`` label value
            (``PITCHSIDE_METRICS_MAX_STREAMS``).
    """

    def __init__(self, max_streams: int = m.DEFAULT_MAX_STREAMS) -> None:
        self.registry = m.service_registry()
        self.streams = m.StreamLabels(max_streams)
        registry, track = self.registry, self.streams.track
        self.frames_dropped = track(m.FRAMES_DROPPED, m.counter(m.FRAMES_DROPPED, registry))
        # a stream's drops exist from its first viewer, at 0: a first drop shows in rate()
        self.streams.start_at_zero(
            self.frames_dropped, *({"stage": STAGE, "reason": r} for r in REASONS)
        )
        self.frames = track(m.GATEWAY_FRAMES, m.counter(m.GATEWAY_FRAMES, registry))
        self.sent = track(m.GATEWAY_MESSAGES_SENT, m.counter(m.GATEWAY_MESSAGES_SENT, registry))
        self.viewers = track(m.GATEWAY_VIEWERS, m.gauge(m.GATEWAY_VIEWERS, registry))
        self.end_to_end = track(m.END_TO_END_SECONDS, m.histogram(m.END_TO_END_SECONDS, registry))
        self.group_lag = track(m.GROUP_LAG, m.gauge(m.GROUP_LAG, registry))
        self.group_pending = track(m.GROUP_PENDING, m.gauge(m.GROUP_PENDING, registry))
        self.feeds = m.gauge(m.GATEWAY_FEEDS, registry)
        self.control = m.counter(m.GATEWAY_CONTROL, registry)
        self.frame_stages = m.histogram(m.FRAME_STAGE_SECONDS, registry)
        self.uploads = m.counter(m.UPLOADS, registry)
        self.upload_bytes = m.counter(m.UPLOAD_BYTES, registry)
        self.jobs = m.gauge(m.JOBS, registry)
        self.jobs_ended = m.counter(m.JOBS_ENDED, registry)
        self.job_done = track(m.JOB_FRAMES_DONE, m.gauge(m.JOB_FRAMES_DONE, registry))
        self.job_expected = track(m.JOB_FRAMES_EXPECTED, m.gauge(m.JOB_FRAMES_EXPECTED, registry))
        self.job_moved = track(m.JOB_PROGRESS_TIME, m.gauge(m.JOB_PROGRESS_TIME, registry))
        self._groups: set[tuple[str, str]] = set()  # (stream label, group) series set now
        self._running: set[str] = set()  # job stream labels with progress series now

    def dropped(self, sid: str, reason: str, n: int = 1) -> None:
        self.streams.child(self.frames_dropped, sid, stage=STAGE, reason=reason).inc(n)

    def handed(self, sid: str, dets: DetsMsg, handed_ns: int) -> None:
        """A frame message of ``sid`` was offered to its viewers at ``handed_ns`` (epoch ns):
        count it, and observe the time it spent in each stage (negative spans, which clocks
        of different hosts can give, are left out)."""
        self.streams.child(self.frames, sid).inc()
        stamps = {**dets.timings, "gateway_send": handed_ns}
        observed: set[str] = set()
        for stage, start, end in m.FRAME_STAGES:  # a stage listed twice: its first span found
            if stage in observed or start not in stamps or end not in stamps:
                continue
            observed.add(stage)
            if stamps[end] >= stamps[start] > 0:
                self.frame_stages.labels(stage).observe((stamps[end] - stamps[start]) / 1e9)

    def sent_to_viewer(self, sid: str, ts_capture: int, sent_ns: int) -> None:
        """One frame message of ``sid``, captured at ``ts_capture``, sent to a viewer."""
        self.streams.child(self.sent, sid).inc()
        if 0 < ts_capture <= sent_ns:
            self.streams.child(self.end_to_end, sid).observe((sent_ns - ts_capture) / 1e9)

    def viewer_joined(self, sid: str) -> None:
        self.streams.child(self.viewers, sid).inc()

    def viewer_left(self, sid: str) -> None:
        self.streams.child(self.viewers, sid).dec()

    def set_groups(self, groups: Iterable[GroupState]) -> None:
        """The consumer groups as measured now; streams past the cap add up in "other"."""
        lag: dict[tuple[str, str], int] = {}
        pending: dict[tuple[str, str], int] = {}
        for group in groups:
            key = (self.streams.label(group.sid), group.group)
            pending[key] = pending.get(key, 0) + group.pending
            if group.lag is not None:
                lag[key] = lag.get(key, 0) + group.lag
        for label, name in self._groups - pending.keys():
            self.group_pending.remove(label, name)
            self.group_lag.remove(label, name)
        for (label, name), value in pending.items():
            self.streams.child(self.group_pending, label, group=name).set(value)
            if (label, name) in lag:
                self.streams.child(self.group_lag, label, group=name).set(lag[label, name])
            else:  # not measurable now: no value rather than an old one
                self.group_lag.remove(label, name)
        self._groups = set(pending)

    def clear_groups(self) -> None:
        """Remove every group series: they could not be measured."""
        self.set_groups(())

    def upload(self, result: str, size: int = 0) -> None:
        """An upload ended: ``accepted`` (of ``size`` bytes) or the error code refusing it."""
        self.uploads.labels(result).inc()
        self.upload_bytes.inc(size)

    def set_job_states(self, counts: Mapping[str, int]) -> None:
        """The store's jobs per state, as counted now (a state with none reads 0)."""
        for state, n in counts.items():
            self.jobs.labels(state).set(n)

    def set_running_jobs(self, progress: Mapping[str, JobProgress]) -> None:
        """Each running job's progress by its stream id; the series of jobs no longer running
        go. Jobs past the stream cap add up in "other" (the newest progress time of them)."""
        done: dict[str, int] = {}
        expected: dict[str, int] = {}
        moved: dict[str, float] = {}
        for sid, job in progress.items():
            label = self.streams.label(sid)
            done[label] = done.get(label, 0) + job.done
            moved[label] = max(moved.get(label, 0.0), job.moved_s)
            if job.expected is not None:
                expected[label] = expected.get(label, 0) + job.expected
        for label in self._running - done.keys():
            self.job_done.remove(label)
            self.job_expected.remove(label)
            self.job_moved.remove(label)
        for label, n_done in done.items():
            self.streams.child(self.job_done, label).set(n_done)
            self.streams.child(self.job_moved, label).set(moved[label])
            if label in expected:
                self.streams.child(self.job_expected, label).set(expected[label])
            else:  # not known yet: no value rather than an old one
                self.job_expected.remove(label)
        self._running = set(done)

    def job_ended(self, state: str) -> None:
        self.jobs_ended.labels(state).inc()

    def keep_only(self, sids: Collection[str]) -> None:
        """Remove the series of every stream not in ``sids`` (the registry's ids)."""
        self.streams.keep_only(sids)

    def exposition(self) -> bytes:
        """The text exposition format of every metric in this registry."""
        return generate_latest(self.registry)
