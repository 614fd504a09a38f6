"""Schema migrations: Alembic, configured in code, with its scripts inside this package.

:func:`upgrade` brings a database to the newest revision and is safe to call from every
process at start-up, all at once: the whole upgrade runs in one transaction that first takes
a lock (SQLite: ``BEGIN IMMEDIATE``, the database's write lock; PostgreSQL: a transaction-level
advisory lock), so one process migrates while the others wait, then find the schema at head
and do nothing. Both databases run DDL inside a transaction, so a failed upgrade leaves the
schema as it was.

To write a new revision (a developer's step, never at run time)::

    python -c "from pitchside.results.migrate import revision; revision('add x to y')"
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from pitchside.results.db import SQLITE_BEGIN, describe, unavailable_as_store_error

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: pg_advisory_xact_lock key of the upgrade: any constant unique among this database's users.
PG_LOCK_KEY = 0x7069746368  # "pitch"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration without an ``alembic.ini``: the scripts of this package and,
    when given, the connection ``env.py`` migrates on."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("file_template", "r%%(rev)s_%%(slug)s")  # an importable name
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision this build knows."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:
        raise RuntimeError(f"no migration scripts in {MIGRATIONS_DIR}")
    return revision


def current(engine: Engine) -> str | None:
    """The revision the database is at; None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Migrate the database to :func:`head`, holding a lock; a no-op when it is there.

    Returns:
        The revision the database is at now.

    Raises:
        ResultsStoreError: the database cannot be reached, or is locked for longer than the
            busy timeout.
    """
    with unavailable_as_store_error("migrating the schema", engine.url):
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                connection.execution_options(**{SQLITE_BEGIN: "BEGIN IMMEDIATE"})
            with connection.begin():
                if engine.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
                before = MigrationContext.configure(connection).get_current_revision()
                target = head()
                if before != target:
                    command.upgrade(alembic_config(connection), "head")
                    log.info(
                        "results store %s migrated from %s to %s",
                        describe(engine.url), before or "empty", target,
                    )  # fmt: skip
    return target


def revision(message: str) -> None:
    """Write a new, empty migration script (for developers; fill in its upgrade)."""
    command.revision(alembic_config(), message=message)
