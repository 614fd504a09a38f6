"""Alembic's environment: migrate the connection :func:`pitchside.results.migrate.upgrade`
hands over, inside the transaction (and lock) it holds. There is no offline (SQL script)
mode and no ``alembic.ini``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from pitchside.results.tables import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "the results store's migrations run through pitchside.results.migrate.upgrade, "
        "which passes them a connection"
    )
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite alters a table by copying it: let autogenerate write that
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
