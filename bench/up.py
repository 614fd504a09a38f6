"""``pitchside up`` as the benchmarks that need the whole stack start it: a subprocess on a
free loopback port, its own embedded Redis and data folder, its log in a file.

The one benchmark module that builds an environment for a child: the stack's settings can
only reach it as ``PITCHSIDE_*`` variables (tests/unit/test_layout.py allows this module).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from pitchside.errors import BenchError
from pitchside.settings import ACCESS_VARIABLES

START_S = 180.0  # `pitchside up` answers /readyz by then, on 2 busy cores


@contextlib.contextmanager
def pitchside_up(
    data_dir: Path, log_path: Path, **variables: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``pitchside up`` with ``variables`` (``PITCHSIDE_*``) over this process's environment,
    without ``REDIS_URL`` and ``DATABASE_URL`` (the stack's own Redis and SQLite) and without
    the access-control variables (``ACCESS_VARIABLES``: no token on a private stack); yields its
    URL and its process once ``/readyz`` answers, and stops it (SIGINT) on the way out.

    Raises:
        BenchError: it exited, or was not ready within ``START_S``.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Its own stack on loopback: no access control, whatever this environment asks of a gateway.
    dropped = ("REDIS_URL", "DATABASE_URL", *ACCESS_VARIABLES)
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        PITCHSIDE_PORT=str(port), PITCHSIDE_DATA_DIR=str(data_dir), PITCHSIDE_LOG_LEVEL="WARNING",
    )  # fmt: skip
    env.update(variables)
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pitchside", "up"], env=env, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + START_S
            while True:
                if proc.poll() is not None:
                    raise BenchError(f"pitchside up exited {proc.returncode}: {tail(log_path)}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise BenchError(f"pitchside up was not ready in {START_S:.0f} s")
                time.sleep(0.25)
            yield base, proc
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` of a log, on one line."""
    return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])


def children_of(parent: int) -> list[int]:
    """The pids of the processes whose parent is ``parent``, from every /proc/<pid>/stat
    (/proc/<pid>/task/<tid>/children is not filled on every kernel)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # the fields after the command name, which is in brackets and may hold spaces
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(stat.parent.name))
    return found
