"""A real PostgreSQL for tests: :class:`bench.postgres.PrivatePostgres`, one per session.

Its own cluster in a temporary folder (initdb, pg_ctl; as the ``postgres`` user when the
tests run as root), on a private unix socket only, stopped at the end of the session. Each
test gets an empty database of its own. Where Debian's ``postgresql`` is not installed the
tests are skipped, unless ``PITCHSIDE_REQUIRE_POSTGRES=1`` (CI) makes that a failure naming
the apt command. Tests import the fixtures from here (the functions have other names, so
that a test's ``postgres_url`` argument does not shadow the import)::

    from tests.integration.postgres import (  # noqa: F401
        postgres_server_fixture,
        postgres_url_fixture,
    )
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from bench.postgres import PostgresUnavailable, PrivatePostgres


def require_postgres() -> PrivatePostgres:
    """A server not yet started; skips or fails (PITCHSIDE_REQUIRE_POSTGRES=1) without one."""
    try:
        return PrivatePostgres()
    except PostgresUnavailable as exc:
        if os.environ.get("PITCHSIDE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{exc} (PITCHSIDE_REQUIRE_POSTGRES=1 needs it)")
        pytest.skip(str(exc))


class _Shared:
    """One server for the whole session, however many test modules import the fixture (each
    import is a fixture of its own to pytest): the first starts it, the last stops it."""

    server: PrivatePostgres | None = None
    users = 0


@pytest.fixture(scope="session", name="postgres_server")
def postgres_server_fixture() -> Iterator[PrivatePostgres]:
    if _Shared.server is None:
        started = require_postgres()
        started.start()
        _Shared.server = started
    server = _Shared.server
    _Shared.users += 1
    try:
        yield server
    finally:
        _Shared.users -= 1
        if _Shared.users == 0:
            server.stop()
            _Shared.server = None


@pytest.fixture(name="postgres_url")
def postgres_url_fixture(postgres_server: PrivatePostgres) -> Iterator[str]:
    """The URL of an empty database of this test's own, dropped afterwards."""
    name = f"test_{secrets.token_hex(6)}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)
