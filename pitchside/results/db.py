"""Opening the results database: an engine set up for SQLite or PostgreSQL, and database
errors turned into :class:`~pitchside.errors.ResultsStoreError` without a password in them.

SQLite (the default, one file under the data folder) runs in WAL mode, so that readers never
wait for the writer, with foreign keys on and a busy timeout for writers of other processes.
SQLAlchemy emits ``BEGIN`` itself instead of the ``sqlite3`` module, whose legacy
transaction control would commit DDL on its own and never lock for a read: a transaction
here is a real one, and a migration can take the write lock up front (``BEGIN IMMEDIATE``,
see :mod:`pitchside.results.migrate`).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError

from pitchside.errors import ResultsStoreError
from pitchside.redact import redact_url

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_S = 30.0  # a writer of another process holds the lock at most this long
#: Execution option naming the statement that begins a SQLite transaction.
SQLITE_BEGIN = "pitchside_sqlite_begin"
POOL_SIZE = 5  # PostgreSQL connections kept per process; a few threads write at once
PG_CONNECT_TIMEOUT_S = 10  # unless the URL says (?connect_timeout=): never hang at start-up


def parse_url(url: str) -> URL:
    """``url`` as SQLAlchemy reads it.

    Raises:
        ResultsStoreError: it is no database URL (the message does not repeat it: it may
            hold a password).
    """
    try:
        return make_url(url)
    except ArgumentError:
        raise ResultsStoreError(
            "the results store URL is not a database URL; expected sqlite:///PATH or "
            "postgresql+psycopg://USER:PASSWORD@HOST/DB"
        ) from None


def create_db_engine(url: str) -> Engine:
    """An engine for the results store at ``url`` (nothing is connected yet).

    A SQLite file's folder is created. Raises ResultsStoreError for a URL SQLAlchemy cannot
    use (an unknown driver...).
    """
    parsed = parse_url(url)
    try:
        if parsed.get_backend_name() != "sqlite":
            timeout = (
                {}
                if "connect_timeout" in parsed.query
                else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
            )
            return create_engine(
                parsed, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_SIZE,
                connect_args=timeout,
            )  # fmt: skip
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    except (ArgumentError, ImportError) as exc:
        raise ResultsStoreError(
            f"cannot open the results store {redact_url(url)!r}: {scrub(str(exc), parsed)}"
        ) from None
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # BEGIN comes from _sqlite_begin
    cursor = dbapi_connection.cursor()
    try:
        _wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _wal(cursor: Any) -> None:
    """Switch the file to WAL (once for the file; a no-op read after). Switching needs the
    file to itself, and SQLite answers "locked" at once, without its busy timeout, while
    another process holds it: retry with a short backoff, up to that timeout."""
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline, delay_s = time.monotonic() + SQLITE_BUSY_TIMEOUT_S, 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay_s > deadline:
                raise
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.25)


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql(connection.get_execution_options().get(SQLITE_BEGIN, "BEGIN"))


def scrub(message: str, url: URL) -> str:
    """``message`` without ``url``'s password, plain or percent-encoded."""
    password = url.password
    if password:
        for secret in {str(password), quote(str(password), safe="")}:
            message = message.replace(secret, "***")
    return message


def describe(url: URL) -> str:
    """The URL for a log line or a message: no user, no password."""
    return redact_url(url.render_as_string(hide_password=True))


@contextmanager
def unavailable_as_store_error(what: str, url: URL) -> Iterator[None]:
    """Turn "the database cannot be reached or used now" into ResultsStoreError (503).

    ``what`` says what was being done ("recording a prediction"). Other database errors (a
    bug, a constraint) pass through unchanged.
    """
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        reason = scrub(str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc), url)
        log.warning("results store %s: %s failed: %s", describe(url), what, reason)
        raise ResultsStoreError(  # the reason is in the log; a client need not see hosts
            f"the results store is unavailable ({what} failed); try again shortly"
        ) from None
