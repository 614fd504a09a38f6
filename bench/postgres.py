"""A private PostgreSQL server for the tests and the results-store benchmark.

Debian's ``postgresql`` package (``apt-get install -y postgresql``) brings the server; this
runs its own cluster in a temporary folder with ``initdb`` and ``pg_ctl``, listening on a unix
socket in that folder only (``listen_addresses=''``): no port is opened and the system's
cluster, if any, is left alone. PostgreSQL refuses to run as root, so as root (CI) every
server command runs as the ``postgres`` user (``runuser -u postgres --``) on a folder it owns.

    with PrivatePostgres() as pg:
        url = pg.create_database("t1")   # postgresql+psycopg://postgres@/t1?host=...
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Self

INSTALL_HINT = "apt-get install -y postgresql"
PG_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
START_TIMEOUT_S = 60
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresUnavailable(RuntimeError):
    """The server binaries, or the ``postgres`` user root needs, are missing."""


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/N/bin`` holding ``initdb`` and ``pg_ctl``.

    Raises:
        PostgresUnavailable: naming the apt command that installs them.
    """
    candidates = sorted(
        (p.parent for p in PG_ROOT.glob("*/bin/initdb") if (p.parent / "pg_ctl").is_file()),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise PostgresUnavailable(
            f"PostgreSQL's server (initdb, pg_ctl under {PG_ROOT}/N/bin) is not installed: "
            f"{INSTALL_HINT}"
        )
    return candidates[-1]


class PrivatePostgres:
    """A PostgreSQL cluster of its own, in a temporary folder, on a private unix socket.

    Args:
        durable: keep fsync on (a benchmark measures what a deployment would see); tests
            turn it off to start and write faster.
    """

    def __init__(self, durable: bool = False) -> None:
        self.bin_dir = find_bin_dir()
        self._as_root = os.geteuid() == 0
        if self._as_root and shutil.which("runuser") is None:
            raise PostgresUnavailable(
                "running as root needs runuser (util-linux) to start PostgreSQL"
            )
        self.durable = durable
        self.folder: Path | None = None

    @property
    def socket_dir(self) -> Path:
        if self.folder is None:
            raise RuntimeError("the server is not started")
        return self.folder / "socket"

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this server (no password: trust auth)."""
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def start(self) -> None:
        """initdb and start; returns once the server accepts connections.

        Raises:
            subprocess.CalledProcessError: initdb or pg_ctl failed (the log is in the message).
        """
        # In /tmp itself: pytest's own temporary folders are root's, 0700, and postgres
        # could not reach a folder inside them.
        self.folder = Path(tempfile.mkdtemp(prefix="pitchside-pg-"))
        data, log = self.folder / "data", self.folder / "server.log"
        self.socket_dir.mkdir()
        if self._as_root:
            shutil.chown(self.folder, SUPERUSER)
            shutil.chown(self.socket_dir, SUPERUSER)
        self._run(
            "initdb", "-D", str(data), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8",
            "--locale=C", *([] if self.durable else ["--no-sync"]),
        )  # fmt: skip
        options = f"-c listen_addresses='' -k {self.socket_dir}"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        try:
            self._run(
                "pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", str(START_TIMEOUT_S),
                "-o", options, "start",
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise subprocess.CalledProcessError(
                exc.returncode, exc.cmd, exc.output, f"{exc.stderr}\n{tail}"
            ) from None

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        if self.folder is None:
            return
        data = self.folder / "data"
        try:
            if (data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        self._sql(f'CREATE DATABASE "{self._checked(name)}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing what is still connected to it."""
        self._sql(f'DROP DATABASE IF EXISTS "{self._checked(name)}" WITH (FORCE)')

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _checked(self, name: str) -> str:
        if not _DB_NAME.match(name):
            raise ValueError(f"database name must match {_DB_NAME.pattern}, got {name!r}")
        return name

    def _sql(self, statement: str) -> None:
        import psycopg

        conninfo = f"host={self.socket_dir} user={SUPERUSER} dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(statement.encode())

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self._as_root:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
