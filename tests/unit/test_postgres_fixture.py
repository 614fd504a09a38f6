"""The PostgreSQL test fixture without a server installed: skip, or fail naming apt's command."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import postgres
from tests.integration.postgres import require_postgres


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(postgres, "PG_ROOT", tmp_path / "no-postgresql")


def test_missing_postgres_fails_with_the_apt_command_when_required(
    no_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PITCHSIDE_REQUIRE_POSTGRES", "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y postgresql"):
        require_postgres()


def test_missing_postgres_skips_when_not_required(
    no_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PITCHSIDE_REQUIRE_POSTGRES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y postgresql"):
        require_postgres()


def test_the_newest_installed_server_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version in ("13", "15", "9"):
        bin_dir = tmp_path / version / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "initdb").touch()
        (bin_dir / "pg_ctl").touch()
    monkeypatch.setattr(postgres, "PG_ROOT", tmp_path)
    assert postgres.find_bin_dir() == tmp_path / "15" / "bin"
