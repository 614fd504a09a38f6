"""monitoring/ proven against a real Prometheus (Debian's ``prometheus``) scraping a real stack
(ingest, a worker, a tracker and the gateway).

The stack (`pitchside up`) plays the clip as a live stream to a WebSocket viewer and analyses
it once as a job; Prometheus runs on loopback with the shipped ``monitoring/prometheus.yml``
(its HTTP service discovery pointed at this stack's gateway, its intervals shortened) and
the shipped alert rules. Then every rule and every dashboard panel's PromQL goes through
Prometheus's HTTP API, and each metric family is looked for on the services that should
export it. Without the ``prometheus`` binary the tests are skipped, unless
PITCHSIDE_REQUIRE_PROMETHEUS=1 (CI) makes that a failure.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from pitchside.metrics import FAMILIES, FRAME_STAGES, SERVICES, Family
from tests.conftest import CLIP, require_asset
from tests.integration.conftest import Stack, free_port, run_stack
from tests.promql import (
    ALERTS,
    MONITORING,
    dashboard_files,
    dashboard_queries,
    metric_names,
    require_prometheus_binary,
    rule_queries,
    substitute,
)
from tests.unit.test_monitoring import SUFFIXES

pytestmark = pytest.mark.slow

STREAM = "prom-clip"
INTERVAL = "1s"  # Prometheus's scrape, rule and discovery interval here (5 s and 15 s shipped)
WAIT_S = 180.0  # bound on each wait: the stack, a job of the clip, scrapes, on 2 busy cores
QUERY_TIMEOUT_S = 30.0
MIN_SCRAPES = 5  # of each target before the queries run


def _wait(check: Any, what: str, timeout_s: float = WAIT_S) -> Any:
    """Poll ``check()`` every 0.2 s until it returns something truthy; fail after timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout_s:.0f} s")
        time.sleep(0.2)


@contextlib.contextmanager
def run_prometheus(tmp: Path, gateway: str) -> Iterator[str]:
    """Prometheus on a loopback port with the shipped configuration, discovering the services
    through ``gateway``'s /api/sd/prometheus; yields its base URL."""
    binary = require_prometheus_binary("prometheus")
    config: dict[str, Any] = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"].update(scrape_interval=INTERVAL, evaluation_interval=INTERVAL)
    config["rule_files"] = [str(ALERTS)]
    (job,) = config["scrape_configs"]
    (sd,) = job["http_sd_configs"]
    sd.update(url=f"{gateway}/api/sd/prometheus", refresh_interval=INTERVAL)
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary, f"--config.file={path}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
            ],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:

        def ready() -> bool:
            assert proc.poll() is None, f"prometheus exited: {log.read_text()[-2000:]}"
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{base}/-/ready", timeout=5).status_code == 200
            return False

        _wait(ready, "prometheus ready")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Viewer(threading.Thread):
    """A WebSocket viewer of one stream that reads every message until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.frames = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(OSError, ConnectionClosed), connect(self.url) as ws:
                while not self.stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        if isinstance(ws.recv(timeout=1), bytes):
                            self.frames += 1


@dataclass(frozen=True)
class Observed:
    """A stack that has been watched and scraped: where to ask, and since when."""

    prometheus: str
    start: float  # Unix time before the stream and the job started
    job_stream: str  # the analysis job's stream: the drill-down shows a job's progress too

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant query's result; the test fails when Prometheus refuses the query."""
        return self._get("query", expr)

    def query_range(self, expr: str) -> list[dict[str, Any]]:
        """The range query over the whole observation, at the scrape interval, as Grafana
        asks a panel's query."""
        return self._get("query_range", expr, start=self.start, end=time.time(), step=1)

    def _get(self, api: str, expr: str, **params: float) -> list[dict[str, Any]]:
        resp = httpx.get(
            f"{self.prometheus}/api/v1/{api}", params={"query": expr, **params},
            timeout=QUERY_TIMEOUT_S,
        )  # fmt: skip
        body = resp.json()
        assert resp.status_code == 200 and body["status"] == "success", f"{expr}\n{body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with run_stack(tmp_path_factory.mktemp("prometheus-stack")) as running:
        yield running


@pytest.fixture(scope="module")
def observed(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    """The clip live to a viewer and analysed as a job, scraped by a real Prometheus."""
    clip = require_asset(CLIP)
    start = time.time()
    with run_prometheus(tmp_path_factory.mktemp("prometheus"), stack.base_url) as prometheus:
        resp = stack.start_stream(STREAM, clip, loop=True)
        assert resp.status_code == 201, resp.text
        viewer = Viewer(f"{stack.ws_url}/ws/streams/{STREAM}")
        viewer.start()
        try:
            with httpx.Client(base_url=stack.base_url, timeout=60) as client:
                with clip.open("rb") as file:
                    upload = client.post("/api/uploads", files={"file": (clip.name, file)})
                assert upload.status_code == 201, upload.text
                job = client.post("/api/jobs", json={"upload": upload.json()["id"]})
                assert job.status_code == 201, job.text
                seen = Observed(prometheus, start, f"job-{job.json()['id']}")
                url = f"/api/jobs/{job.json()['id']}"
                _wait(lambda: client.get(url).json()["state"] == "done", "the job done")
            # every service scraped a few times since, the job's end among the samples
            _wait(lambda: seen.query('pitchside_jobs{state="done"} == 1'), "the job seen done")
            services = set(SERVICES)
            scraped = f"count_over_time(up[1m]) >= {MIN_SCRAPES} and up == 1"

            def every_service_scraped() -> bool:
                return {r["metric"]["service"] for r in seen.query(scraped)} == services

            _wait(every_service_scraped, f"{MIN_SCRAPES} good scrapes of {sorted(services)}")
            assert viewer.frames > 0, "the viewer got no frame"
            yield seen
        finally:
            viewer.stop.set()
            viewer.join(10)


def test_every_alert_rule_loads_and_evaluates_cleanly(observed: Observed) -> None:
    # given the rules Prometheus loaded from monitoring/alerts.yml, evaluated every second
    resp = httpx.get(f"{observed.prometheus}/api/v1/rules", timeout=QUERY_TIMEOUT_S)
    loaded = {
        rule["name"]: rule for group in resp.json()["data"]["groups"] for rule in group["rules"]
    }
    shipped = rule_queries()
    # then each is there, healthy, and evaluated with no error
    for query in shipped:
        name = query.where.split(": ", 1)[1]
        assert name in loaded, f"{name} not loaded: {sorted(loaded)}"
        rule = loaded[name]
        assert rule["health"] == "ok" and not rule.get("lastError"), rule
        assert rule["lastEvaluation"] != "0001-01-01T00:00:00Z", f"{name} never evaluated"
    # and every series a rule selects has data, so that each can fire at all
    missing = [
        f"{query.where}: {name}"
        for query in shipped
        for name in sorted(metric_names(query.expr))
        if not observed.query_range(f"count({name})")
    ]
    assert not missing, "rules select series that no service exposes:\n" + "\n".join(missing)


def test_every_dashboard_panel_query_parses_and_returns_data(observed: Observed) -> None:
    # given every panel and variable query of every dashboard, $stream being the live clip
    # or the job's stream (a job's progress shows for a job only)
    queries = [q for path in dashboard_files() for q in dashboard_queries(path)]
    assert len(queries) >= 20, "the dashboards lost their panels"
    # when Prometheus runs each as Grafana would, over the whole observation
    empty = [
        f"{query.where}: {query.expr}"
        for query in queries
        if not any(
            observed.query_range(substitute(query.expr, {"stream": stream}))
            for stream in (STREAM, observed.job_stream)
        )
    ]
    # then each parses (else query_range fails) and returns data for one of the streams
    assert not empty, "panels without data:\n" + "\n".join(empty)


def _exposed_names(family: Family) -> str:
    return "|".join(family.name + suffix for suffix in SUFFIXES[family.kind])


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_each_family_is_exposed_by_the_services_that_should(
    observed: Observed, family: Family
) -> None:
    # given every series of the family Prometheus scraped during the observation
    expr = f'count by (service) (last_over_time({{__name__=~"{_exposed_names(family)}"}}[1h]))'
    services = {result["metric"]["service"] for result in observed.query(expr)}
    # then exactly the services that should export it did
    assert services == set(family.services), f"{family.name}: {sorted(services)}"


def test_the_scraped_values_are_sane(observed: Observed) -> None:
    stream = f'stream="{STREAM}"'

    def value(expr: str) -> float:
        result = observed.query(expr)
        assert len(result) == 1, f"{expr}: {result}"
        return float(result[0]["value"][1])

    # frames ingested, inferred and delivered grew, inferred at most ingested
    published = value(f"sum(increase(pitchside_ingest_frames_published_total{{{stream}}}[1h]))")
    inferred = value(f"sum(increase(pitchside_worker_frames_inferred_total{{{stream}}}[1h]))")
    delivered = value(f"sum(increase(pitchside_gateway_frames_total{{{stream}}}[1h]))")
    tracked = value(f"sum(increase(pitchside_tracker_frames_total{{{stream}}}[1h]))")
    # increase() extrapolates each series to the window's edges on its own, and the tracker
    # and the worker are scraped at different moments: on ~90 frames that is several percent
    assert 0 < tracked <= inferred * 1.1, (tracked, inferred)
    assert value(f"max(max_over_time(pitchside_tracker_active_tracks{{{stream}}}[1h]))") > 0
    assert published > 0 and 0 < inferred <= published * 1.05 and 0 < delivered, (
        published, inferred, delivered,
    )  # fmt: skip
    # latency observations exist, every stage's too, and the p95 is under the alert's 1 s
    assert value(f"sum(pitchside_end_to_end_seconds_count{{{stream}}})") > 0
    for stage in dict.fromkeys(stage for stage, _, _ in FRAME_STAGES):
        assert value(f'sum(pitchside_frame_stage_seconds_count{{stage="{stage}"}})') > 0, stage
    p95 = value(
        "histogram_quantile(0.95, sum by (le) "
        f"(increase(pitchside_end_to_end_seconds_bucket{{{stream}}}[1h])))"
    )
    assert 0 < p95 < 5, p95
    # the job was seen running, its progress up to every frame, and counted when it ended
    assert value("max(max_over_time(pitchside_job_frames_done[1h]))") > 0
    assert value('max(pitchside_jobs_ended_total{state="done"})') == 1
    # every service reports its memory, and the worker names its model
    memory = observed.query("process_resident_memory_bytes > 0")
    assert {r["metric"]["service"] for r in memory} == set(SERVICES)
    (model,) = observed.query("pitchside_worker_model_info")
    assert model["metric"]["name"] == "yolov8n_int8.onnx", model
