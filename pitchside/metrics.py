"""Every Prometheus metric family of pitchside, defined once, and the bound on stream labels.

A :class:`Family` is a metric's whole definition: kind, name, help, label names, buckets and
the services that export it. Each service's ``metrics`` module builds its instances from these
with :func:`counter`, :func:`gauge`, :func:`histogram` and :func:`info`, into a registry of its
own (ingest and the workers: one per process and service; the gateway: one per app), so that
the benchmark can run ingest, a worker and the gateway in one process without two of them
registering one name, and a name means the same thing, with the same buckets, everywhere.
prometheus_client adds ``_total`` to a counter's name and ``_info`` to an info's.

Label values stay bounded: stage, reason, state, group, model, command, result; and the stream
id, through :class:`StreamLabels`: at most ``PITCHSIDE_METRICS_MAX_STREAMS`` streams get their
own ``stream`` value per process and service, later ones share ``stream="other"``, and a
stream's series go when it leaves the registry (``DELETE /api/streams/{sid}``).
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

PREFIX = "pitchside_"
OTHER = "other"  # the stream label value of every stream past the cap
DEFAULT_MAX_STREAMS = 100

INGEST, WORKER, TRACKER, GATEWAY = "ingest", "worker", "tracker", "gateway"  # as in health keys
SERVICES = (INGEST, WORKER, TRACKER, GATEWAY)

#: Seconds of work per frame or batch: a JPEG encode (~1 ms) up to a slow batch (~2 s).
STAGE_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Seconds from capture to a viewer: the live target is about 0.1 s, overload shows above 1 s.
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Kind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family's definition."""

    kind: Kind
    name: str  # without the ``_total``/``_info`` prometheus_client adds
    help: str
    labels: tuple[str, ...]
    services: tuple[str, ...]  # which services export it
    buckets: tuple[float, ...] = ()  # histograms only


# -- every service ---------------------------------------------------------------------------
FRAMES_DROPPED = Family(
    Kind.COUNTER,
    "pitchside_frames_dropped",
    "Frames not processed or not delivered, by stage (the service), reason and stream",
    ("stage", "reason", "stream"),
    (INGEST, WORKER, TRACKER, GATEWAY),
)

# -- ingest ----------------------------------------------------------------------------------
INGEST_FRAMES = Family(
    Kind.COUNTER,
    "pitchside_ingest_frames_published",
    "Frames ingest published to a stream's frames stream",
    ("stream",),
    (INGEST,),
)
INGEST_BYTES = Family(
    Kind.COUNTER,
    "pitchside_ingest_published_bytes",
    "JPEG bytes ingest published to a stream's frames stream",
    ("stream",),
    (INGEST,),
)
INGEST_DECODE_SECONDS = Family(
    Kind.HISTOGRAM,
    "pitchside_ingest_decode_seconds",
    "Video decode time per frame",
    (),
    (INGEST,),
    STAGE_BUCKETS_S,
)
INGEST_ENCODE_SECONDS = Family(
    Kind.HISTOGRAM,
    "pitchside_ingest_encode_seconds",
    "JPEG encode time per frame, with any downscale",
    (),
    (INGEST,),
    STAGE_BUCKETS_S,
)
INGEST_SOURCE_STATE = Family(
    Kind.GAUGE,
    "pitchside_ingest_source_state",
    "Streams in a state: a stream has one series, 1, with its state as a label; "
    'stream="other" counts the streams past the cap in each state',
    ("stream", "state"),
    (INGEST,),
)
INGEST_RECONNECTS = Family(
    Kind.COUNTER,
    "pitchside_ingest_reconnects",
    "Times a camera dropped out and was opened again",
    ("stream",),
    (INGEST,),
)
INGEST_STREAMS = Family(
    Kind.GAUGE, "pitchside_ingest_streams", "Streams this ingest process runs", (), (INGEST,)
)

# -- workers ---------------------------------------------------------------------------------
WORKER_FRAMES = Family(
    Kind.COUNTER,
    "pitchside_worker_frames_inferred",
    "Frames a worker detected objects in, by stream and model",
    ("stream", "model"),
    (WORKER,),
)
WORKER_BATCH_SIZE = Family(
    Kind.HISTOGRAM,
    "pitchside_worker_batch_size",
    "Frames per inference batch",
    (),
    (WORKER,),
    BATCH_SIZE_BUCKETS,
)
WORKER_PREPROCESS_SECONDS = Family(
    Kind.HISTOGRAM,
    "pitchside_worker_preprocess_seconds",
    "JPEG decode and letterbox time per batch",
    (),
    (WORKER,),
    STAGE_BUCKETS_S,
)
WORKER_INFERENCE_SECONDS = Family(
    Kind.HISTOGRAM,
    "pitchside_worker_inference_seconds",
    "Inference time per batch",
    (),
    (WORKER,),
    STAGE_BUCKETS_S,
)
WORKER_INFERENCE_FRAME_SECONDS = Family(
    Kind.HISTOGRAM,
    "pitchside_worker_inference_frame_seconds",
    "Inference time per frame: its batch's time over the batch size, once per frame",
    (),
    (WORKER,),
    STAGE_BUCKETS_S,
)
WORKER_POSTPROCESS_SECONDS = Family(
    Kind.HISTOGRAM,
    "pitchside_worker_postprocess_seconds",
    "Post-processing time per batch: NMS, boxes to source pixels, messages",
    (),
    (WORKER,),
    STAGE_BUCKETS_S,
)
WORKER_MODEL = Family(
    Kind.INFO,
    "pitchside_worker_model",
    "The model this worker serves: its name, and its version for a registry model",
    ("name", "version"),
    (WORKER,),
)

# -- tracker ---------------------------------------------------------------------------------
TRACKER_FRAMES = Family(
    Kind.COUNTER,
    "pitchside_tracker_frames",
    "Frames the tracker tracked and wrote to a stream's tracks stream",
    ("stream",),
    (TRACKER,),
)
TRACKER_SECONDS = Family(
    Kind.HISTOGRAM,
    "pitchside_tracker_seconds",
    "Tracking time per frame: association, teams (with any JPEG decode), ball, possession",
    (),
    (TRACKER,),
    STAGE_BUCKETS_S,
)
TRACKER_ACTIVE_TRACKS = Family(
    Kind.GAUGE,
    "pitchside_tracker_active_tracks",
    "Tracks a stream's tracker keeps now (matched in the last frame, or lost for a while)",
    ("stream",),
    (TRACKER,),
)
TRACKER_STREAMS = Family(
    Kind.GAUGE,
    "pitchside_tracker_streams",
    "Streams this tracker process owns (holds the lease of)",
    (),
    (TRACKER,),
)
TRACKER_LEASES = Family(
    Kind.COUNTER,
    "pitchside_tracker_leases_taken",
    "Stream leases this tracker took: a new stream, or one whose owner went away",
    (),
    (TRACKER,),
)

# -- gateway ---------------------------------------------------------------------------------
GATEWAY_FRAMES = Family(
    Kind.COUNTER,
    "pitchside_gateway_frames",
    "Analysed frames the gateway handed to a stream's viewers, once per frame",
    ("stream",),
    (GATEWAY,),
)
GATEWAY_MESSAGES_SENT = Family(
    Kind.COUNTER,
    "pitchside_gateway_messages_sent",
    "WebSocket frame messages sent to viewers",
    ("stream",),
    (GATEWAY,),
)
GATEWAY_VIEWERS = Family(
    Kind.GAUGE, "pitchside_gateway_viewers", "Open viewer WebSockets", ("stream",), (GATEWAY,)
)
GATEWAY_FEEDS = Family(
    Kind.GAUGE,
    "pitchside_gateway_feeds",
    "Streams with a reader task (at least one viewer)",
    (),
    (GATEWAY,),
)
GATEWAY_CONTROL = Family(
    Kind.COUNTER,
    "pitchside_gateway_control_requests",
    "Control commands sent to ingest, by command and result",
    ("cmd", "result"),
    (GATEWAY,),
)
END_TO_END_SECONDS = Family(
    Kind.HISTOGRAM,
    "pitchside_end_to_end_seconds",
    "From frame capture to its WebSocket message sent, once per message sent to a viewer",
    ("stream",),
    (GATEWAY,),
    LATENCY_BUCKETS_S,
)
FRAME_STAGE_SECONDS = Family(
    Kind.HISTOGRAM,
    "pitchside_frame_stage_seconds",
    "Time a frame spent in each stage, from its stamps: ingest (capture to publish), queue "
    "(to a worker's read), batch (to inference), infer, post (to its detections written), "
    "tracker (to its tracks written), gateway (to the hand-off to its viewers)",
    ("stage",),
    (GATEWAY,),
    STAGE_BUCKETS_S,
)
GROUP_LAG = Family(
    Kind.GAUGE,
    "pitchside_consumer_group_lag",
    "Entries of a stream not yet delivered to a consumer group",
    ("stream", "group"),
    (GATEWAY,),
)
GROUP_PENDING = Family(
    Kind.GAUGE,
    "pitchside_consumer_group_pending",
    "Entries delivered to a consumer group and not yet acknowledged",
    ("stream", "group"),
    (GATEWAY,),
)

# -- uploads and analysis jobs (the gateway: its upload route and its job keeper) -------------
UPLOADS = Family(
    Kind.COUNTER,
    "pitchside_uploads",
    "Video uploads by result: accepted, or rejected (too large, not a video, cut short, ...)",
    ("result",),
    (GATEWAY,),
)
UPLOAD_BYTES = Family(
    Kind.COUNTER,
    "pitchside_upload_bytes",
    "Bytes of the uploads accepted",
    (),
    (GATEWAY,),
)
JOBS = Family(
    Kind.GAUGE,
    "pitchside_jobs",
    "Analysis jobs in the results store, by state (queued, running, done, failed, cancelled)",
    ("state",),
    (GATEWAY,),
)
JOBS_ENDED = Family(
    Kind.COUNTER,
    "pitchside_jobs_ended",
    "Analysis jobs this gateway ended (its keeper, or a cancel), by the state they ended in",
    ("state",),
    (GATEWAY,),
)
JOB_FRAMES_DONE = Family(
    Kind.GAUGE,
    "pitchside_job_frames_done",
    "Frames of a running analysis job with their results stored; stream is the job's stream",
    ("stream",),
    (GATEWAY,),
)
JOB_FRAMES_EXPECTED = Family(
    Kind.GAUGE,
    "pitchside_job_frames_expected",
    "Frames a running analysis job's upload has (the probe's count, or ingest's final count)",
    ("stream",),
    (GATEWAY,),
)
JOB_PROGRESS_TIME = Family(
    Kind.GAUGE,
    "pitchside_job_progress_timestamp_seconds",
    "Unix time a running analysis job last stored more frames' results (or changed state); "
    "time() minus it is how long the job has not moved",
    ("stream",),
    (GATEWAY,),
)

#: Every family above.
FAMILIES = tuple(value for value in dict(globals()).values() if isinstance(value, Family))

#: The stage spans of ``pitchside_frame_stage_seconds``: (stage, from stamp, to stamp), stamps
#: as a frame message's ``timings`` names them (``gateway_send``: handed to the viewers). A
#: stage listed twice is measured by the first of its spans whose stamps the frame has: the
#: gateway's stage starts when the tracks were written, or the detections when untracked.
FRAME_STAGES = (
    ("ingest", "capture", "publish"),
    ("queue", "publish", "dequeue"),
    ("batch", "dequeue", "infer_start"),
    ("infer", "infer_start", "infer_end"),
    ("post", "infer_end", "dets_publish"),
    ("tracker", "dets_publish", "tracks_publish"),
    ("gateway", "tracks_publish", "gateway_send"),
    ("gateway", "dets_publish", "gateway_send"),  # an untracked stream's
)


def _check(family: Family, kind: Kind) -> None:
    if family.kind is not kind:
        raise TypeError(f"{family.name} is a {family.kind.value}, not a {kind.value}")


def counter(family: Family, registry: CollectorRegistry) -> Counter:
    _check(family, Kind.COUNTER)
    return Counter(family.name, family.help, family.labels, registry=registry)


def gauge(family: Family, registry: CollectorRegistry) -> Gauge:
    _check(family, Kind.GAUGE)
    return Gauge(family.name, family.help, family.labels, registry=registry)


def histogram(family: Family, registry: CollectorRegistry) -> Histogram:
    _check(family, Kind.HISTOGRAM)
    return Histogram(
        family.name, family.help, family.labels, buckets=family.buckets, registry=registry
    )


def info(family: Family, registry: CollectorRegistry) -> Info:
    _check(family, Kind.INFO)
    return Info(family.name, family.help, registry=registry)  # its labels: what .info() sets


def service_registry() -> CollectorRegistry:
    """A new registry with the process collectors every service exports: ``process_*``
    (CPU seconds, resident memory, open files), ``python_info`` and ``python_gc_*``, under
    their standard names."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


M = TypeVar("M", bound=MetricWrapperBase)


class StreamLabels:
    """The ``stream`` label values of one service's metrics: at most ``max_streams`` ids.

    A stream gets its own value (its id) while fewer than ``max_streams`` streams have one;
    the others share ``"other"`` until :meth:`forget` frees a place. Ask for per-stream
    children with :meth:`child`, which remembers each series it hands out, so that
    :meth:`forget` can remove them all. The series named with :meth:`start_at_zero` are
    created, at 0, as soon as a stream gets its own value: a counter that exists before its
    first event lets ``rate()`` and ``increase()`` see that event. Thread-safe.

    Args:
        max_streams: how many streams may have their own value; 0 folds every stream.
    """

    def __init__(self, max_streams: int = DEFAULT_MAX_STREAMS) -> None:
        self.max_streams = max_streams
        self._lock = threading.Lock()
        self._series: dict[str, set[tuple[MetricWrapperBase, tuple[str, ...]]]] = {}
        self._names: dict[MetricWrapperBase, tuple[str, ...]] = {}
        self._zeros: list[tuple[MetricWrapperBase, dict[str, str]]] = []

    @property
    def labelled(self) -> frozenset[str]:
        """The stream ids that have their own label value now."""
        with self._lock:
            return frozenset(self._series)

    def track(self, family: Family, metric: M) -> M:
        """Register ``metric``, built from ``family``, whose series :meth:`child` makes."""
        if "stream" not in family.labels:
            raise ValueError(f"{family.name} has no stream label")
        with self._lock:
            self._names[metric] = family.labels
        return metric

    def start_at_zero(self, metric: M, *label_sets: dict[str, str]) -> M:
        """Create ``metric``'s series of each of ``label_sets`` (its labels but ``stream``)
        for every stream that gets its own value from now on (a :meth:`track`-ed counter)."""
        with self._lock:
            if metric not in self._names:
                raise KeyError(f"{metric} is not tracked")
            self._zeros.extend((metric, labels) for labels in label_sets or ({},))
        return metric

    def label(self, sid: str) -> str:
        """The ``stream`` label value of ``sid``: its id, or ``"other"`` past the cap."""
        with self._lock:
            return self._label(sid)

    def child(self, metric: M, sid: str, **labels: str) -> M:
        """``metric``'s series for stream ``sid`` and the other ``labels``.

        Raises:
            KeyError: ``metric`` was not :meth:`track`-ed.
        """
        with self._lock:
            return self._child(metric, self._label(sid), labels)

    def forget(self, sid: str) -> None:
        """Remove every series of ``sid`` and free its place (``"other"`` is never removed)."""
        with self._lock:
            series = self._series.pop(sid, set())
        for metric, values in series:
            metric.remove(*values)

    def keep_only(self, sids: Collection[str]) -> None:
        """:meth:`forget` every stream with its own value that is not in ``sids``."""
        for sid in self.labelled - set(sids):
            self.forget(sid)

    def _label(self, sid: str) -> str:
        if sid == OTHER:  # a stream called "other" shares the series of the folded ones
            return OTHER
        if sid in self._series:
            return sid
        if len(self._series) < self.max_streams:
            self._series[sid] = set()
            for metric, labels in self._zeros:
                self._child(metric, sid, labels)
            return sid
        return OTHER

    def _child(self, metric: M, value: str, labels: dict[str, str]) -> M:
        names = self._names[metric]
        values = tuple(value if name == "stream" else labels[name] for name in names)
        if value != OTHER:
            self._series[value].add((metric, values))
        return metric.labels(*values)
