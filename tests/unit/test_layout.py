"""The shape of the tree: settings come from the environment in one place only.

``Settings.from_env`` is built once, by the entry point, and passed down; nothing below it
reads or writes ``os.environ``. Only two entry points touch the environment: the CLI (it reads
the settings and prepares what libraries read at import time) and ``pitchside up`` (it hands
the environment on to the processes it starts).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("pitchside", "ingest", "workers", "tracker", "gateway", "training", "bench")
# The entry points, the benchmarks' start of `pitchside up` (its environment is the stack's
# settings), and bench.tracking, which reads its settings as `pitchside bench` does.
ALLOWED = {"pitchside/cli.py", "pitchside/up.py", "bench/up.py", "bench/tracking.py"}
ENV_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def _env_uses(path: Path) -> list[str]:
    """Every ``os.environ``-like access in one module, as ``line: source``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ENV_NAMES:
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                found.append(f"{node.lineno}: os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            names = {alias.name for alias in node.names} & ENV_NAMES
            found.extend(f"{node.lineno}: from os import {n}" for n in sorted(names))
    return found


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def test_the_source_tree_is_where_the_scan_expects_it() -> None:
    # the scan below must not pass vacuously on a moved tree
    assert len(_modules()) > 40
    assert {"pitchside/cli.py", "pitchside/up.py"} <= {str(p.relative_to(REPO)) for p in _modules()}


@pytest.mark.parametrize("module", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_below_the_entry_points_touches_the_environment(module: Path) -> None:
    # given one module of the product
    relative = str(module.relative_to(REPO))
    # when it is scanned for reads and writes of the process environment
    uses = _env_uses(module)
    # then only the entry points have any
    if relative in ALLOWED:
        return
    assert not uses, f"{relative} touches os.environ (pass Settings down instead): {uses}"


def test_the_scan_finds_an_environment_read(tmp_path: Path) -> None:
    # the detector itself: a module that reads the environment is caught
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom os import getenv\nx = os.environ.get('A')\n")
    assert _env_uses(module) == ["2: from os import getenv", "3: os.environ"]


def test_the_benchmark_finds_the_repository_and_the_shared_assets_beside_it() -> None:
    # the benchmark is a top-level package: its idea of the repository root must follow it
    import bench

    assert bench.REPO == REPO and (bench.REPO / "pyproject.toml").is_file()
    assert bench.DEFAULT_ASSETS == REPO.parent / "shared" / "assets"
