"""The metric families: one definition each, the services built from it, and the bounded
``stream`` label (the cap, ``"other"``, forgetting a deleted stream)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from gateway.groups import GroupState
from gateway.metrics import JobProgress, Metrics
from ingest import metrics as ingest_metrics
from pitchside import metrics as m
from pitchside.exporter import advertised
from pitchside.schema import DetsMsg, StreamState
from tracker import metrics as tracker_metrics
from workers import metrics as worker_metrics

REPO = Path(__file__).resolve().parents[2]
SUFFIX = {m.Kind.COUNTER: "_total", m.Kind.INFO: "_info"}


def _registries() -> dict[str, CollectorRegistry]:
    return {
        m.INGEST: ingest_metrics.REGISTRY,
        m.WORKER: worker_metrics.REGISTRY,
        m.TRACKER: tracker_metrics.REGISTRY,
        m.GATEWAY: Metrics().registry,
    }


def _sample(registry: CollectorRegistry, sample: str, **labels: str) -> float | None:
    return registry.get_sample_value(sample, labels)


# ---------------------------------------------------------------- the shared definitions


def test_every_family_is_prefixed_named_once_and_exported_by_known_services() -> None:
    names = [family.name for family in m.FAMILIES]
    assert len(m.FAMILIES) >= 20, "pitchside.metrics.FAMILIES finds every family"
    assert len(names) == len(set(names)), "a family is defined once"
    for family in m.FAMILIES:
        assert family.name.startswith("pitchside_"), family.name
        assert not family.name.endswith(("_total", "_info")), "prometheus_client adds those"
        assert family.services and set(family.services) <= set(m.SERVICES), family.name
        if family.kind is m.Kind.HISTOGRAM:
            assert list(family.buckets) == sorted(family.buckets) and family.buckets
        else:
            assert not family.buckets, f"{family.name} is no histogram"


@pytest.mark.parametrize("service", m.SERVICES)
def test_each_service_exports_exactly_its_families_as_defined(service: str) -> None:
    # given the service's registry (the gateway's with one stream observed, so that its
    # per-stream histogram shows its buckets)
    registry = _registries()[service]
    if service == m.GATEWAY:
        gateway = Metrics()
        gateway.sent_to_viewer("s", 1, 2)
        gateway.handed("s", _dets({"capture": 1, "publish": 2}), 3)
        registry = gateway.registry
    # when it is collected
    collected = {family.name: family for family in registry.collect()}
    # then its pitchside families are the definitions that name it, with their type and help
    ours = {name for name in collected if name.startswith("pitchside_")}
    assert ours == {f.name for f in m.FAMILIES if service in f.services}
    for family in m.FAMILIES:
        if service not in family.services:
            continue
        got = collected[family.name]
        assert (got.type, got.documentation) == (family.kind.value, family.help), family.name
        buckets = [s.labels["le"] for s in got.samples if s.name.endswith("_bucket")]
        if buckets:  # the same buckets wherever the name is exported
            first = buckets[: len(family.buckets) + 1]
            assert first == [*(_le(b) for b in family.buckets), "+Inf"], family.name
    # and the process collectors are there, under their standard names
    assert {"process_cpu_seconds", "process_resident_memory_bytes"} <= set(collected)


def _le(bound: float) -> str:
    return str(float(bound))


def _dets(timings: dict[str, int]) -> DetsMsg:
    return DetsMsg(
        seq=0, frame_id="1-0", ts_capture=1, w=1, h=1, model="m", detections=[],
        timings=timings, worker="w", batch=1,
    )  # fmt: skip


def test_no_module_builds_a_metric_or_reads_registry_internals_itself() -> None:
    # A metric built from a string name anywhere but pitchside/metrics.py copies a definition.
    building = re.compile(r"(?<![\w.])(Counter|Gauge|Histogram|Summary|Info|Enum)\(\s*[\"']")
    offenders = []
    for package in ("pitchside", "ingest", "workers", "gateway", "bench"):
        for path in (REPO / package).rglob("*.py"):
            if path == REPO / "pitchside" / "metrics.py":
                continue
            text = path.read_text()
            if building.search(text) or "_names_to_collectors" in text:
                offenders.append(str(path.relative_to(REPO)))
    assert not offenders, f"build metrics from pitchside.metrics families: {offenders}"


def test_a_builder_refuses_a_family_of_another_kind() -> None:
    with pytest.raises(TypeError, match="is a counter, not a gauge"):
        m.gauge(m.FRAMES_DROPPED, CollectorRegistry())


# ---------------------------------------------------------------- the stream label cap


Drops = tuple[CollectorRegistry, m.StreamLabels, Counter]


@pytest.fixture
def drops() -> Drops:
    registry = CollectorRegistry()
    streams = m.StreamLabels(max_streams=2)
    counter = streams.track(m.FRAMES_DROPPED, m.counter(m.FRAMES_DROPPED, registry))
    return registry, streams, counter


def _drop(streams: m.StreamLabels, counter: Counter, sid: str, n: int = 1) -> None:
    streams.child(counter, sid, stage="ingest", reason="stale").inc(n)


def _dropped(registry: CollectorRegistry, stream: str) -> float | None:
    labels = {"stage": "ingest", "reason": "stale", "stream": stream}
    return _sample(registry, "pitchside_frames_dropped_total", **labels)


def test_stream_labels_fold_the_streams_past_the_cap_into_other(drops: Drops) -> None:
    registry, streams, counter = drops
    # when four streams count drops with a cap of two
    for i, sid in enumerate(("a", "b", "c", "d")):
        _drop(streams, counter, sid, n=i + 1)
    _drop(streams, counter, "a")
    # then the first two have their own series, and the others add up in "other"
    assert (_dropped(registry, "a"), _dropped(registry, "b")) == (2.0, 2.0)
    assert _dropped(registry, "other") == 3.0 + 4.0
    assert _dropped(registry, "c") is None and _dropped(registry, "d") is None
    assert streams.labelled == {"a", "b"}


def test_series_started_at_zero_exist_from_a_streams_first_label_and_go_with_it(
    drops: Drops,
) -> None:
    registry, streams, counter = drops
    other = {"stage": "ingest", "reason": "stopped"}
    # given drops started at zero for two reasons
    streams.start_at_zero(counter, {"stage": "ingest", "reason": "stale"}, other)
    # when a stream first gets its label, by any other series, then both exist at 0
    streams.label("a")
    assert _dropped(registry, "a") == 0.0
    assert _sample(registry, "pitchside_frames_dropped_total", stream="a", **other) == 0.0
    _drop(streams, counter, "a", n=3)
    assert _dropped(registry, "a") == 3.0
    # and the folded streams get none, and forgetting a stream removes them
    streams.label("b")
    streams.label("c")
    assert _dropped(registry, "other") is None
    streams.forget("a")
    assert _sample(registry, "pitchside_frames_dropped_total", stream="a", **other) is None
    # and only a tracked metric can start at zero
    with pytest.raises(KeyError):
        streams.start_at_zero(Counter("x", "x", ["stream"], registry=CollectorRegistry()))


def test_stream_labels_forget_removes_the_series_and_frees_the_place(drops: Drops) -> None:
    registry, streams, counter = drops
    for sid in ("a", "b", "c"):
        _drop(streams, counter, sid)
    # when a stream is forgotten (deleted from the registry)
    streams.forget("a")
    # then its series is gone, and the next new stream takes its place
    assert _dropped(registry, "a") is None
    _drop(streams, counter, "e")
    assert _dropped(registry, "e") == 1.0
    assert streams.labelled == {"b", "e"}
    assert _dropped(registry, "other") == 1.0, '"other" is never removed'


def test_stream_labels_keep_only_forgets_every_stream_not_listed(drops: Drops) -> None:
    registry, streams, counter = drops
    for sid in ("a", "b"):
        _drop(streams, counter, sid)
    streams.keep_only({"b", "z"})
    assert _dropped(registry, "a") is None and _dropped(registry, "b") == 1.0
    assert streams.labelled == {"b"}


def test_stream_labels_with_a_cap_of_zero_fold_every_stream() -> None:
    streams = m.StreamLabels(max_streams=0)
    assert {streams.label(sid) for sid in ("a", "b")} == {m.OTHER}
    assert not streams.labelled


def test_a_stream_called_other_shares_the_folded_series_without_taking_a_place() -> None:
    streams = m.StreamLabels(max_streams=1)
    assert streams.label(m.OTHER) == m.OTHER
    assert streams.label("a") == "a", "the place is still free"


def test_stream_labels_refuse_to_track_a_family_without_a_stream_label() -> None:
    registry = CollectorRegistry()
    with pytest.raises(ValueError, match="has no stream label"):
        m.StreamLabels().track(m.GATEWAY_FEEDS, m.gauge(m.GATEWAY_FEEDS, registry))


# ---------------------------------------------------------------- per-service helpers


def test_source_state_keeps_one_series_per_stream_and_counts_the_folded_ones() -> None:
    registry = CollectorRegistry()
    streams = m.StreamLabels(max_streams=1)
    states = ingest_metrics.SourceStates(m.gauge(m.INGEST_SOURCE_STATE, registry), streams)

    def value(stream: str, state: StreamState) -> float | None:
        return _sample(registry, "pitchside_ingest_source_state", stream=stream, state=state)

    # when a labelled stream goes live then reconnects, and two folded ones go live
    for sid in ("cam", "x", "y"):
        states.set(sid, StreamState.CONNECTING)
        states.set(sid, StreamState.LIVE)
    states.set("cam", StreamState.RECONNECTING)
    # then the labelled stream has one series, at its state; "other" counts streams
    assert value("cam", StreamState.RECONNECTING) == 1.0
    assert value("cam", StreamState.LIVE) is None and value("cam", StreamState.CONNECTING) is None
    assert value(m.OTHER, StreamState.LIVE) == 2.0
    assert value(m.OTHER, StreamState.CONNECTING) is None, "a series at 0 is removed"
    # and forgetting streams removes their part
    states.forget("cam")
    states.forget("x")
    assert value("cam", StreamState.RECONNECTING) is None
    assert value(m.OTHER, StreamState.LIVE) == 1.0


def test_gateway_group_figures_fold_past_the_cap_and_vanish_with_their_group() -> None:
    metrics = Metrics(max_streams=1)
    registry = metrics.registry

    def lag(stream: str) -> float | None:
        return _sample(registry, "pitchside_consumer_group_lag", stream=stream, group="workers")

    # when three streams are measured with a cap of one
    metrics.set_groups([GroupState("a", "workers", 1, 5), GroupState("b", "workers", 2, 7),
                        GroupState("c", "workers", 3, 1)])  # fmt: skip
    # then the first has its own series, the others add up
    assert lag("a") == 5.0 and lag(m.OTHER) == 8.0
    pending = _sample(registry, "pitchside_consumer_group_pending", stream="other", group="workers")
    assert pending == 5.0
    # and when a stream is gone, and another's lag cannot be told, their series go
    metrics.set_groups([GroupState("a", "workers", 1, None)])
    assert lag("a") is None and lag(m.OTHER) is None
    assert _sample(registry, "pitchside_consumer_group_pending", stream="a", group="workers") == 1


def test_gateway_job_progress_folds_past_the_cap_and_vanishes_when_the_job_ends() -> None:
    metrics = Metrics(max_streams=1)

    def job(name: str, stream: str) -> float | None:
        return _sample(metrics.registry, f"pitchside_job_{name}", stream=stream)

    # when three jobs run with a cap of one, the third's frame count not known yet
    metrics.set_running_jobs({
        "job-a": JobProgress(10, 100, 1000.0), "job-b": JobProgress(5, 50, 1200.0),
        "job-c": JobProgress(1, None, 1100.0),
    })  # fmt: skip
    # then the first has its own series; the others add up, with their newest progress time
    assert (job("frames_done", "job-a"), job("frames_expected", "job-a")) == (10.0, 100.0)
    assert job("progress_timestamp_seconds", "job-a") == 1000.0
    assert (job("frames_done", m.OTHER), job("frames_expected", m.OTHER)) == (6.0, 50.0)
    assert job("progress_timestamp_seconds", m.OTHER) == 1200.0
    # and when only job-a still runs, the folded series go
    metrics.set_running_jobs({"job-a": JobProgress(20, 100, 1300.0)})
    assert job("frames_done", "job-a") == 20.0 and job("frames_done", m.OTHER) is None
    assert job("progress_timestamp_seconds", m.OTHER) is None
    # and when none runs, nothing is left
    metrics.set_running_jobs({})
    assert job("frames_done", "job-a") is None and job("frames_expected", "job-a") is None


def test_gateway_counts_uploads_by_result_and_jobs_by_state() -> None:
    metrics = Metrics()
    metrics.upload("accepted", 1000)
    metrics.upload("bad_video")
    metrics.upload("accepted", 500)
    metrics.set_job_states({"queued": 2, "done": 1})
    metrics.set_job_states({"queued": 0, "done": 3})
    metrics.job_ended("done")
    registry = metrics.registry
    assert _sample(registry, "pitchside_uploads_total", result="accepted") == 2.0
    assert _sample(registry, "pitchside_uploads_total", result="bad_video") == 1.0
    assert _sample(registry, "pitchside_upload_bytes_total") == 1500.0
    assert _sample(registry, "pitchside_jobs", state="queued") == 0.0
    assert _sample(registry, "pitchside_jobs", state="done") == 3.0
    assert _sample(registry, "pitchside_jobs_ended_total", state="done") == 1.0


def test_gateway_frame_stages_observe_each_span_and_skip_negative_ones() -> None:
    metrics = Metrics()
    timings = {"capture": 1_000_000_000, "publish": 1_002_000_000, "dequeue": 1_001_000_000}
    metrics.handed("s", _dets(timings), 1_010_000_000)
    count = "pitchside_frame_stage_seconds_count"
    assert _sample(metrics.registry, count, stage="ingest") == 1.0
    assert _sample(metrics.registry, count, stage="queue") is None, "a clock went backwards"
    assert _sample(metrics.registry, "pitchside_gateway_frames_total", stream="s") == 1.0


@pytest.mark.parametrize(
    ("model_id", "labels"),
    [
        ("football-detector/3", {"name": "football-detector", "version": "3"}),
        ("yolov8n_int8.onnx", {"name": "yolov8n_int8.onnx", "version": ""}),
    ],
)
def test_worker_model_info_names_the_model_and_its_version(
    model_id: str, labels: dict[str, str]
) -> None:
    worker_metrics.serving(model_id)
    assert worker_metrics.REGISTRY.get_sample_value("pitchside_worker_model_info", labels) == 1.0


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 9464, "127.0.0.1:9464"),
        ("::1", 80, "[::1]:80"),
        ("metrics.local", 1, "metrics.local:1"),
        ("0.0.0.0", 9464, f"{socket.gethostname()}:9464"),
        ("::", 9464, f"{socket.gethostname()}:9464"),
    ],
)
def test_a_server_announces_an_address_others_can_reach(
    host: str, port: int, expected: str
) -> None:
    assert advertised(host, port) == expected
