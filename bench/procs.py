"""The processes of a running ``pitchside up``, from /proc: their names, memory and environment.

``pitchside up`` starts each service as a child: ``python -m gateway``, ``python -m ingest``,
``python -m workers --name worker-1``, ``python -m tracker --name tracker-1``, and the
embedded ``redis-server`` (its title is rewritten, so it is known by its ``comm``). A child
the supervisor restarted has a new pid under the same name.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from bench.up import children_of

PROC = Path("/proc")
REDIS = "redis"  # the name given to the embedded redis-server
UP = "up"  # the name given to `pitchside up` itself


def parse_rss_kib(status: str) -> int | None:
    """The ``VmRSS`` of a /proc/<pid>/status text, in KiB; None without one (a zombie)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1])
    return None


def rss_kib(pid: int, proc: Path = PROC) -> int | None:
    """Resident memory of ``pid`` in KiB; None when it is gone or has none."""
    try:
        return parse_rss_kib((proc / str(pid) / "status").read_text())
    except OSError:
        return None


def name_of(argv: list[str], comm: str) -> str | None:
    """What ``pitchside up`` calls a child run as ``argv`` (its ``--name``, else its ``-m``
    module), :data:`REDIS` for the embedded redis-server, else None."""
    if "--name" in argv and argv.index("--name") + 1 < len(argv):
        return argv[argv.index("--name") + 1]
    if "-m" in argv and argv.index("-m") + 1 < len(argv):
        return argv[argv.index("-m") + 1]
    if comm == "redis-server":
        return REDIS
    return None


def process_name(pid: int, proc: Path = PROC) -> str | None:
    """:func:`name_of` the running process ``pid``; None when it is gone or unknown."""
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
        comm = (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return None
    return name_of([a.decode(errors="replace") for a in raw.split(b"\0") if a], comm)


def stack_processes(parent: int) -> dict[str, int]:
    """``pitchside up`` (as :data:`UP`) and its named children: name -> pid."""
    found = {UP: parent}
    for pid in children_of(parent):
        name = process_name(pid)
        if name is not None:
            found[name] = pid
    return found


def parse_environ(raw: bytes) -> dict[str, str]:
    """A /proc/<pid>/environ (NUL-separated ``NAME=value``) as a dict."""
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def environ_of(pid: int, proc: Path = PROC) -> dict[str, str]:
    """The environment ``pid`` was started with (empty when it cannot be read)."""
    with contextlib.suppress(OSError):
        return parse_environ((proc / str(pid) / "environ").read_bytes())
    return {}


def parse_cpu_ticks(stat: str) -> int | None:
    """User plus system clock ticks of a /proc/<pid>/stat text (fields 14 and 15)."""
    try:
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        return int(fields[11]) + int(fields[12])
    except (IndexError, ValueError):
        return None


def cpu_s(pid: int, proc: Path = PROC) -> float | None:
    """CPU seconds ``pid`` has used so far (user and system); None when it is gone."""
    try:
        ticks = parse_cpu_ticks((proc / str(pid) / "stat").read_text())
    except OSError:
        return None
    return None if ticks is None else ticks / os.sysconf("SC_CLK_TCK")
