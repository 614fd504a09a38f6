"""monitoring/: the Prometheus configuration and alert rules, checked and unit-tested by promtool.

promtool comes with Debian's ``prometheus`` package; without it the tests are skipped, unless
PITCHSIDE_REQUIRE_PROMETHEUS=1 (CI) makes that a failure.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from pitchside.metrics import FAMILIES, Kind
from tests.promql import require_prometheus_binary

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
PROMTOOL_S = 60  # bound on one promtool run
#: What prometheus_client adds to a family's name in the exposition.
SUFFIXES = {
    Kind.COUNTER: ("_total",),
    Kind.GAUGE: ("",),
    Kind.HISTOGRAM: ("_bucket", "_sum", "_count"),
    Kind.INFO: ("_info",),
}


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_prometheus_binary("promtool")


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=MONITORING, capture_output=True, text=True, timeout=PROMTOOL_S
    )


@pytest.mark.parametrize(
    "args",
    [("check", "config", "prometheus.yml"), ("check", "rules", "alerts.yml")],
    ids=["config", "rules"],
)
def test_the_prometheus_files_are_valid(promtool: str, args: tuple[str, ...]) -> None:
    done = _promtool(promtool, *args)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_fires_when_it_should_and_only_then(promtool: str) -> None:
    done = _promtool(promtool, "test", "rules", "tests/alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    # and every rule has a test
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"][0]["rules"]
    tested = (MONITORING / "tests" / "alerts_test.yml").read_text()
    untested = [r["alert"] for r in rules if f"alertname: {r['alert']}\n" not in tested]
    assert untested == []


def test_the_alerts_use_only_metrics_pitchside_exports() -> None:
    # a renamed family must not leave a rule that silently matches nothing
    exported = {f.name + s for f in FAMILIES for s in SUFFIXES[f.kind]} | {"up"}
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"][0]["rules"]
    used = {
        name
        for rule in rules
        for name in re.findall(r"\b(pitchside_\w+|up)\b(?=[{\[\s)])", rule["expr"])
    }
    assert used and used <= exported, used - exported
