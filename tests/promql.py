"""Every PromQL expression pitchside ships: the alert rules' and the Grafana dashboards' panels.

The static tests (tests/unit/test_monitoring.py, tests/unit/test_grafana.py) and the test
against a real Prometheus (tests/integration/test_prometheus_real.py) read them from here, so
that a panel or rule added to ``monitoring/`` is checked everywhere without listing it twice.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

MONITORING = Path(__file__).resolve().parents[1] / "monitoring"
ALERTS = MONITORING / "alerts.yml"
DASHBOARDS = MONITORING / "grafana" / "dashboards"

#: Grafana's built-in interval variables, as a query with a 5 s scrape would get them.
GRAFANA_INTERVALS = {
    "$__rate_interval": "30s",
    "${__rate_interval}": "30s",
    "$__interval": "15s",
    "${__interval}": "15s",
    "$__range": "5m",
    "${__range}": "5m",
}

# A metric name in PromQL: a name not followed by "(" (a function) nor preceded by a label
# matcher's quote, and not a keyword. Good enough for the expressions we write ourselves.
_NAME = re.compile(r"(?<![\w\"'{=~.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_KEYWORDS = frozenset(
    "by without on ignoring group_left group_right and or unless bool offset inf nan "
    "sum avg min max count group stddev stdvar topk bottomk quantile count_values".split()
)
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_LABELS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_DURATION = re.compile(r"^\d+[smhdwy]$")


def require_prometheus_binary(name: str) -> str:
    """The path of ``promtool`` or ``prometheus`` (Debian's ``prometheus`` package); skips the
    test without it, unless PITCHSIDE_REQUIRE_PROMETHEUS=1 (CI) makes that a failure."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} is missing: apt-get install prometheus"
        if os.environ.get("PITCHSIDE_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


@dataclass(frozen=True, slots=True)
class Query:
    """One shipped expression: where it comes from (``file: title``) and its PromQL."""

    where: str
    expr: str


def rule_queries() -> list[Query]:
    """Every alert and recording rule's expression in ``monitoring/alerts.yml``."""
    doc = yaml.safe_load(ALERTS.read_text())
    return [
        Query(f"alerts.yml: {rule.get('alert') or rule.get('record')}", rule["expr"].strip())
        for group in doc["groups"]
        for rule in group["rules"]
    ]


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def dashboard(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard, those inside collapsed rows included."""
    for panel in doc.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(path: Path) -> list[Query]:
    """Every panel target's expression of one dashboard, and its variables' queries."""
    doc = dashboard(path)
    found = [
        Query(f"{path.name}: {panel.get('title', '?')}", target["expr"].strip())
        for panel in panels(doc)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    for variable in doc.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        if variable.get("type") == "query" and text:
            found.append(Query(f"{path.name}: ${variable['name']}", _variable_expr(text)))
    return found


def all_queries() -> list[Query]:
    return rule_queries() + [q for path in dashboard_files() for q in dashboard_queries(path)]


def substitute(expr: str, variables: dict[str, str]) -> str:
    """``expr`` with Grafana's interval variables and the dashboard's own (``$stream``,
    ``${stream}``) replaced, as Grafana would before sending it to Prometheus."""
    for name, value in GRAFANA_INTERVALS.items():
        expr = expr.replace(name, value)
    for name, value in variables.items():
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (label matchers and ranges left out)."""
    bare = _GROUPING.sub("", _RANGES.sub("", _LABELS.sub("", expr)))
    bare = re.sub(r"\"[^\"]*\"|'[^']*'", "", bare)  # string arguments
    return {
        name
        for name in _NAME.findall(bare)
        if name not in _KEYWORDS and not _DURATION.match(name) and not name.isdigit()
    }


def _variable_expr(text: str) -> str:
    """A Grafana variable query as plain PromQL: ``label_values(m, l)`` -> ``m``,
    ``query_result(q)`` -> ``q``."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", text, re.S)
    if match:
        return match.group(1).strip()
    match = re.fullmatch(r"\s*query_result\((.*)\)\s*", text, re.S)
    return match.group(1).strip() if match else text.strip()
