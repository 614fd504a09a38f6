"""monitoring/grafana and the compose monitoring stack, checked statically (no Grafana, no Docker).

The dashboards are JSON that Grafana only judges when it loads them, and their queries fail
silently: a renamed metric, a panel on another data source or a stream panel that forgets
``$stream`` shows "No data" instead of an error. The tests read every expression through
tests/promql.py, parse them with promtool (Debian's ``prometheus`` package; skipped without it
unless PITCHSIDE_REQUIRE_PROMETHEUS=1), and follow compose.yaml's mounts to the files Grafana
and Prometheus will read. The static Prometheus configuration of compose
(monitoring/prometheus-compose.yml) is checked against the services compose runs and the
labels the gateway's HTTP service discovery gives.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from pitchside.metrics import FAMILIES, SERVICES
from tests.promql import (
    DASHBOARDS,
    MONITORING,
    dashboard,
    dashboard_files,
    dashboard_queries,
    metric_names,
    panels,
    require_prometheus_binary,
    substitute,
)
from tests.unit.test_compose import command, environment, pitchside_services, services
from tests.unit.test_monitoring import SUFFIXES

ROOT = MONITORING.parent
GRAFANA = MONITORING / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "pitchside.yml"
FALLBACK = MONITORING / "prometheus-compose.yml"
HTTP_SD = MONITORING / "prometheus.yml"
PROMTOOL_S = 60
GRID_COLUMNS = 24
#: uid -> title of every dashboard shipped.
BOARDS = {"pitchside-overview": "pitchside overview", "pitchside-stream": "pitchside stream"}
STREAM_MATCHER = re.compile(r"stream=~?\"\$\{?stream\}?\"")
#: The range of every rate(), irate() and increase(): Grafana's, never a fixed one.
RANGE_FUNCTION = re.compile(r"\b(?:rate|irate|increase)\s*\(")
ALLOWED_RANGES = {"$__rate_interval", "$__range"}
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"  # the prom/prometheus image's default


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_prometheus_binary("promtool")


def boards() -> dict[str, dict[str, Any]]:
    """uid -> dashboard, every file of monitoring/grafana/dashboards."""
    return {doc["uid"]: doc for doc in map(dashboard, dashboard_files())}


def board_file(uid: str) -> Path:
    return next(path for path in dashboard_files() if dashboard(path)["uid"] == uid)


def queried(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The panels that query a data source (every one but the rows)."""
    return [panel for panel in panels(doc) if panel.get("type") != "row"]


def datasource_uid() -> str:
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    uid: str = source["uid"]
    return uid


def exported_names() -> set[str]:
    return {family.name + suffix for family in FAMILIES for suffix in SUFFIXES[family.kind]}


def bind_mounts(service: str) -> dict[str, tuple[Path, bool]]:
    """Container path -> (repository path, read-only) of a compose service's ``./`` mounts."""
    mounts: dict[str, tuple[Path, bool]] = {}
    for volume in services()[service].get("volumes") or []:
        source, target, *mode = str(volume).split(":")
        if source.startswith("./"):
            mounts[target.rstrip("/")] = (ROOT / source, "ro" in mode)
    return mounts


def in_container(service: str, path: str) -> Path | None:
    """The repository file a service sees at ``path``, through its bind mounts; None if none."""
    wanted = PurePosixPath(path)
    for target, (source, _) in bind_mounts(service).items():
        if wanted == PurePosixPath(target) or PurePosixPath(target) in wanted.parents:
            return source / wanted.relative_to(target)
    return None


# -- Prometheus's relabelling (action "replace", the only one the fallback uses) -------------


def _expand(template: str, match: re.Match[str]) -> str:
    """Go's ``Regexp.Expand`` of a replacement: ``$1``, ``${1}`` and ``${name}``."""

    def group(ref: re.Match[str]) -> str:
        name = ref.group(1) or ref.group(2)
        try:
            return match.group(int(name) if name.isdigit() else name) or ""
        except IndexError:  # no such group: Go expands it to nothing
            return ""

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", group, template)


def relabel(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str]:
    """``labels`` after ``rules``, as Prometheus relabels a discovered target."""
    labels = dict(labels)
    for rule in rules:
        action = rule.get("action", "replace")
        assert action == "replace", f"relabel() knows only replace, not {action}: extend it"
        value = rule.get("separator", ";").join(labels.get(n, "") for n in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if match is None:
            continue
        result = _expand(rule.get("replacement", "$1"), match)
        if result:
            labels[rule["target_label"]] = result
        else:
            labels.pop(rule["target_label"], None)
    return labels


def scraped_targets(config: dict[str, Any]) -> list[dict[str, str]]:
    """Every target of ``config``, with its labels after relabelling (``__`` ones dropped) and
    ``__address__`` kept; a DNS name stands for one replica, at a made-up address."""
    found: list[dict[str, str]] = []
    for job in config["scrape_configs"]:
        discovered: list[dict[str, str]] = []
        for group in job.get("static_configs", []):
            for address in group["targets"]:
                discovered.append({"__address__": address, **group.get("labels", {})})
        for dns in job.get("dns_sd_configs", []):
            assert dns.get("type", "SRV") == "A", "compose's DNS answers A records, not SRV"
            for name in dns["names"]:
                discovered.append({"__address__": f"172.18.0.9:{dns['port']}", "dns": name})
        for target in discovered:
            labels = {"job": job["job_name"], **target}
            if "dns" in labels:
                labels["__meta_dns_name"] = labels.pop("dns")
            after = relabel(labels, job.get("relabel_configs", []))
            address = after["__address__"]
            kept = {k: v for k, v in after.items() if not k.startswith("__")}
            kept.setdefault("instance", address)
            found.append({**kept, "__address__": address, "dns": target.get("dns", "")})
    return found


@cache
def fallback() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(FALLBACK.read_text())
    return config


def metrics_services() -> dict[str, dict[str, Any]]:
    """Compose services that run a pitchside service with a /metrics (gateway, ingest, worker)."""
    return {
        name: svc
        for name, svc in pitchside_services().items()
        if command(svc)[:1] and command(svc)[0] in SERVICES
    }


def metrics_port(svc: dict[str, Any]) -> int:
    env = environment(svc)
    if command(svc)[0] == "gateway":  # /metrics on its own port
        return int(env.get("PITCHSIDE_PORT", "8000"))
    # ingest and workers: their own endpoint, which must be reachable from another container
    assert env.get("PITCHSIDE_METRICS_HOST") == "0.0.0.0", "metrics on the container's loopback"
    port = int(env.get("PITCHSIDE_METRICS_PORT", "0"))
    assert port > 0, "PITCHSIDE_METRICS_PORT=0 picks a port a static config cannot name"
    return port


# -- the relabel helper itself -------------------------------------------------------------------


def test_relabel_follows_prometheus_replace_semantics() -> None:
    rules = [
        {"source_labels": ["a", "b"], "regex": r"(\w+);(\d+)", "target_label": "c",
         "replacement": "${1}-${2}"},
        {"source_labels": ["missing"], "regex": "(.+)", "target_label": "a"},  # no match: kept
        {"source_labels": ["missing"], "target_label": "b"},  # matches "", empty result: dropped
    ]  # fmt: skip
    assert relabel({"a": "worker", "b": "42"}, rules) == {"a": "worker", "c": "worker-42"}
    # the regex is anchored at both ends
    assert relabel({"a": "xworker;1y"}, rules[:1]) == {"a": "xworker;1y"}


# -- the dashboards ----------------------------------------------------------------------------


def test_the_dashboards_are_the_overview_and_the_stream_drill_down() -> None:
    found = boards()
    assert {uid: doc["title"] for uid, doc in found.items()} == BOARDS
    assert len(dashboard_files()) == len(BOARDS), "two files with one uid"
    for doc in found.values():
        assert doc["schemaVersion"] == 39
        assert doc.get("id") is None, "a provisioned dashboard must not carry a database id"


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_dashboard_panels_have_unique_ids_and_do_not_overlap(uid: str) -> None:
    everything = list(panels(boards()[uid]))
    ids = [panel["id"] for panel in everything]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {uid}"
    cells: dict[tuple[int, int], str] = {}
    for panel in everything:
        pos = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(pos), f"{panel['title']}: gridPos {pos}"
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] + pos["w"] <= GRID_COLUMNS, pos
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                other = cells.setdefault((x, y), panel["title"])
                assert other == panel["title"], f"{panel['title']} overlaps {other} in {uid}"


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_every_panel_queries_the_provisioned_prometheus(uid: str) -> None:
    doc = boards()[uid]
    expected = {"type": "prometheus", "uid": datasource_uid()}
    assert queried(doc), f"{uid} has no panels"
    for panel in panels(doc):
        if panel.get("type") == "row":
            assert not panel.get("targets"), f"row {panel['title']} has queries"
            continue
        assert panel["type"] in {"timeseries", "stat", "table", "bargauge"}, panel["type"]
        assert panel.get("datasource") == expected, f"{uid}: {panel['title']}"
        targets = panel.get("targets") or []
        assert targets, f"{uid}: {panel['title']} has no query"
        refs = [target.get("refId") for target in targets]
        assert all(refs) and len(refs) == len(set(refs)), f"{panel['title']}: refIds {refs}"
        for target in targets:
            assert str(target.get("expr", "")).strip(), f"{panel['title']}: a target lacks expr"
            assert target.get("datasource", expected) == expected, panel["title"]
    for variable in doc.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            assert variable.get("datasource") == expected, f"{uid}: ${variable['name']}"


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda path: path.name)
def test_dashboard_queries_read_only_metrics_pitchside_exports(path: Path) -> None:
    # a renamed family must not leave a panel that silently shows "No data"
    allowed = exported_names() | {"up"}
    used = {name for query in dashboard_queries(path) for name in metric_names(query.expr)}
    unknown = sorted(
        name for name in used if name not in allowed and not name.startswith("process_")
    )
    assert used and unknown == [], f"{path.name} reads metrics nobody exports: {unknown}"


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda path: path.name)
def test_dashboard_rates_use_grafanas_ranges(path: Path) -> None:
    # a fixed [1m] is empty when zoomed in on a 5 s scrape and jagged when zoomed out
    for query in dashboard_queries(path):
        for call in RANGE_FUNCTION.finditer(query.expr):
            ranged = re.search(r"\[([^\]]*)\]", query.expr[call.end() :])
            assert ranged and ranged.group(1) in ALLOWED_RANGES, f"{query.where}: {query.expr}"


def test_every_dashboard_expression_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    # given every panel's and variable's query, as Grafana would send it for stream "cam-1"
    queries = [q for path in dashboard_files() for q in dashboard_queries(path)]
    assert queries
    rules = [
        {"record": f"dashboard:query_{i}", "expr": substitute(q.expr, {"stream": "cam-1"})}
        for i, q in enumerate(queries)
    ]
    leftover = [rule["expr"] for rule in rules if "$" in rule["expr"]]
    assert leftover == [], f"variables Grafana would not replace: {leftover}"
    path = tmp_path / "dashboards.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    # then each parses as PromQL
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=PROMTOOL_S
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout, done.stdout


def test_the_stream_dashboard_shows_one_stream_of_the_variable() -> None:
    doc = boards()["pitchside-stream"]
    (variable,) = [v for v in doc["templating"]["list"] if v["name"] == "stream"]
    assert variable["type"] == "query"
    query = variable["query"]
    text = query["query"] if isinstance(query, dict) else query
    assert re.sub(r"\s", "", text) == "label_values(pitchside_ingest_frames_published_total,stream)"
    # every metric every panel reads is filtered on the chosen stream, wherever it appears
    path = board_file("pitchside-stream")
    targets = [q for q in dashboard_queries(path) if not q.where.endswith(": $stream")]
    assert len(targets) == sum(len(p["targets"]) for p in queried(doc))
    for query in targets:
        names = metric_names(query.expr)
        assert names, query
        for name in names:
            for use in re.finditer(rf"\b{name}\b(\{{[^}}]*\}})?", query.expr):
                selector = use.group(1) or ""
                assert STREAM_MATCHER.search(selector), f"{query.where}: {name} {selector}"


def test_the_dashboards_link_to_each_other() -> None:
    found = boards()
    for uid, other in (
        ("pitchside-overview", "pitchside-stream"),
        ("pitchside-stream", "pitchside-overview"),
    ):
        urls = [link.get("url", "") for link in found[uid].get("links", [])]
        assert any(f"/d/{other}/" in url or url.endswith(f"/d/{other}") for url in urls), urls
    # and the overview's per-stream panels drill down into the chosen stream
    drills = [
        link["url"]
        for panel in queried(found["pitchside-overview"])
        for link in panel.get("fieldConfig", {}).get("defaults", {}).get("links", [])
    ]
    assert drills and all("/d/pitchside-stream/" in url for url in drills), drills
    assert all("var-stream=${__field.labels.stream}" in url for url in drills), drills


# -- Grafana's provisioning and its compose service --------------------------------------------


def test_the_data_source_is_the_compose_prometheus_by_a_fixed_uid() -> None:
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert source["uid"] == "pitchside-prometheus"
    # the url names the prometheus service and the port its container listens on
    url = re.fullmatch(r"http://([\w-]+):(\d+)", source["url"])
    assert url, source["url"]
    host, port = url.groups()
    assert host in services(), f"{host} is not a compose service"
    published = [str(p).rsplit(":", 1)[-1] for p in services()[host].get("ports", [])]
    assert port in published, f"{host} listens on {published}, not {port}"


def test_grafana_provisions_the_dashboards_from_where_compose_mounts_them() -> None:
    # given the provisioning folder mounted where Grafana looks for it, read-only
    mounts = bind_mounts("grafana")
    assert mounts.get("/etc/grafana/provisioning") == (GRAFANA / "provisioning", True), mounts
    # then the file provider's folder is the dashboards' mount
    (provider,) = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert provider["type"] == "file" and provider["folder"] == "pitchside"
    assert in_container("grafana", provider["options"]["path"]) == DASHBOARDS, mounts
    assert all(read_only for _, read_only in mounts.values()), "Grafana may not write the repo"
    # and the home page is the overview
    env = environment(services()["grafana"])
    home = in_container("grafana", env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home is not None and home.is_file(), home
    assert dashboard(home)["uid"] == "pitchside-overview"


def test_grafana_lets_anyone_view_without_logging_in() -> None:
    grafana = services()["grafana"]
    env = environment(grafana)
    assert env.get("GF_AUTH_ANONYMOUS_ENABLED") == "true"
    assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer", "anonymous users must not edit"
    assert "prometheus" in (grafana.get("depends_on") or {})
    # and the gateway's link to it is the port compose publishes
    (port,) = grafana["ports"]
    host_ip, host_port, _ = str(port).split(":")
    gateway_env = environment(services()["gateway"])
    assert gateway_env.get("PITCHSIDE_GRAFANA_URL") == f"http://{host_ip}:{host_port}"


@pytest.mark.parametrize("service", ["prometheus", "grafana"])
def test_compose_monitoring_service_mounts_files_of_the_repository(service: str) -> None:
    svc = services()[service]
    image = str(svc["image"])
    assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{image} is not pinned"
    mounts = bind_mounts(service)
    assert mounts, f"{service} mounts nothing of the repository"
    for target, (source, _) in mounts.items():
        assert source.exists(), f"{service} mounts {source} at {target}, which does not exist"


def test_compose_prometheus_reads_the_fallback_and_its_rules() -> None:
    prometheus = services()["prometheus"]
    args = command(prometheus)
    config = next((a.split("=", 1)[1] for a in args if a.startswith("--config.file=")), None)
    config = config or PROMETHEUS_CONFIG
    assert in_container("prometheus", config) == FALLBACK
    # rule files are relative to the configuration's folder, in the container as here
    for rule_file in fallback()["rule_files"]:
        seen = in_container("prometheus", str(PurePosixPath(config).parent / rule_file))
        assert seen is not None and seen == FALLBACK.parent / rule_file, rule_file
        assert seen.is_file()


# -- the static fallback of compose ------------------------------------------------------------


def test_the_fallback_is_a_valid_prometheus_config(promtool: str) -> None:
    done = subprocess.run(
        [promtool, "check", "config", FALLBACK.name],
        cwd=MONITORING,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout, done.stdout


def test_the_fallback_evaluates_what_the_http_sd_config_does() -> None:
    # given the configuration of `pitchside up` (HTTP SD) and compose's
    http_sd = yaml.safe_load(HTTP_SD.read_text())
    # then the rules and their timing are the same, and so is the job label
    assert fallback()["rule_files"] == http_sd["rule_files"]
    assert fallback()["global"] == http_sd["global"]
    jobs = {target["job"] for target in scraped_targets(fallback())}
    assert jobs == {job["job_name"] for job in http_sd["scrape_configs"]}


def test_the_fallback_scrapes_every_compose_service_that_serves_metrics() -> None:
    # given compose's services with a /metrics, and what the fallback scrapes
    wanted = metrics_services()
    assert set(wanted) >= {"gateway", "ingest", "worker"}, sorted(wanted)
    targets = scraped_targets(fallback())
    # then each target names a compose service ...
    for target in targets:
        host = target["dns"] or target["__address__"].rsplit(":", 1)[0]
        assert host in services(), f"{target['__address__']}: no compose service {host}"
    for name, svc in wanted.items():
        port = metrics_port(svc)
        found = [
            t
            for t in targets
            if t["__address__"] == f"{name}:{port}"
            or (t["dns"] == name and t["__address__"].endswith(f":{port}"))
        ]
        # ... each such service is scraped on its port ...
        assert len(found) == 1, f"{name}:{port} is scraped {len(found)} times"
        (target,) = found
        # ... with the labels the gateway's HTTP SD gives it (its service, as in its heartbeat)
        assert target.get("service") == command(svc)[0], target
        assert target.get("instance_name"), target
        # ... and every replica of a replicated one is found through DNS
        if (svc.get("deploy") or {}).get("replicas", 1) > 1:
            assert target["dns"] == name, f"{name} has replicas: a static target finds one"
    assert {t.get("service") for t in targets} == set(SERVICES)
