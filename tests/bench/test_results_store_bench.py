"""``python -m bench.results_store`` on a tiny configuration: both backends run and report.

No rate is asserted (it depends on the machine's disk and cores); the run must write every
figure, positive, for SQLite and for the private PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.postgres import require_postgres

REPO = Path(__file__).resolve().parents[2]


def test_results_store_bench_reports_sqlite_and_postgresql_side_by_side(tmp_path: Path) -> None:
    require_postgres()  # skips, or fails with PITCHSIDE_REQUIRE_POSTGRES=1, without a server
    out = tmp_path / "store.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.results_store", "--records", "64", "--calls-of", "1,16",
         "--budget-s", "1", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "sqlite" in done.stdout and "postgresql" in done.stdout
    figures = json.loads(out.read_text())
    assert set(figures) == {"sqlite", "postgresql"}
    for backend, rates in figures.items():
        assert len(rates) == 4 and all(rate > 0 for rate in rates.values()), (backend, rates)
