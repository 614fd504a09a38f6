"""A real RTSP server (GStreamer, run by Debian's /usr/bin/python3) for camera-source tests.

``RtspServer`` runs ``rtsp_server.py`` beside this module on a free loopback port; see that
script for what each mount serves (``/clip`` loops the test clip, ``/pattern`` is a live test
pattern, ``/secure`` the pattern behind basic auth, anything else 404). Tests import the
``rtsp_server`` fixture from here (its function has another name, so that a test's
``rtsp_server`` argument does not shadow the import)::

    from tests.integration.rtsp import RtspServer, rtsp_server_fixture  # noqa: F401

``stop()`` then ``start()`` brings the server back on the same port, as a camera that reboots.
"""

from __future__ import annotations

import functools
import os
import selectors
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import pytest

from tests.conftest import CLIP, require_asset

SYSTEM_PYTHON = Path("/usr/bin/python3")  # Debian's interpreter: the gi bindings live there
SCRIPT = Path(__file__).with_name("rtsp_server.py")
APT_PACKAGES = (
    "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good"
    " gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly"
)
#: Bound on the server listening: GStreamer's registry, demuxing the clip, on 2 busy cores.
START_S = 20.0
#: Bound on a SIGTERM'd server exiting before it is killed.
STOP_S = 5.0
USER = "camera"
PASSWORD = "pitch side:s3cret@1"  # characters that must be percent-encoded in a URL
EXIT_MISSING = 3  # rtsp_server.py: gi or a GStreamer element missing
EXIT_PORT_TAKEN = 4  # rtsp_server.py: cannot listen on the port


class RtspServerError(Exception):
    """The RTSP server did not start."""


@functools.cache
def _check_system_gstreamer() -> str | None:
    """None if /usr/bin/python3 can run the server, else why not."""
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} is missing"
    done = subprocess.run(
        [str(SYSTEM_PYTHON), str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        return done.stderr.strip() or f"{SCRIPT.name} --check exited {done.returncode}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """A GStreamer RTSP server on ``127.0.0.1:port``, started and stopped by the test.

    Args:
        clip: the H.264 MP4 that ``/clip`` loops.
        user: the one user ``/secure`` admits.
        password: that user's password.

    The server process gets SIGTERM when the thread that started it exits (PR_SET_PDEATHSIG):
    start it from the test's own thread, not from a worker thread that ends first.
    """

    def __init__(self, clip: Path = CLIP, user: str = USER, password: str = PASSWORD) -> None:
        self.clip = clip
        self.user = user
        self.password = password
        self.port = _free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = Path(tempfile.mkstemp(prefix="pitchside-rtsp-", suffix=".log")[1])
        self._served = False  # once it has listened, the port is kept across restarts

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def url(self, path: str, user: str | None = None, password: str | None = None) -> str:
        """``rtsp://[user[:password]@]127.0.0.1:port/path``, credentials percent-encoded."""
        auth = ""
        if user is not None:
            auth = quote(user, safe="")
            if password is not None:
                auth += ":" + quote(password, safe="")
            auth += "@"
        return f"rtsp://{auth}127.0.0.1:{self.port}/{path.lstrip('/')}"

    def start(self) -> RtspServer:
        """Start the server (on the same port as before, if it ran before); wait until it listens.

        Fails the test, naming the apt packages, when /usr/bin/python3 lacks GStreamer.
        """
        if self.running:
            raise RtspServerError(f"the RTSP server already runs on port {self.port}")
        why = _check_system_gstreamer()
        if why is not None:
            pytest.fail(
                f"the RTSP server for tests needs GStreamer for {SYSTEM_PYTHON}: {why}\n"
                f"install the Debian packages: apt-get install {APT_PACKAGES}"
            )
        require_asset(self.clip)
        for _ in range(3):  # a free port can be taken before the server binds it
            rc = self._spawn()
            if rc is None:
                self._served = True
                return self
            if rc != EXIT_PORT_TAKEN or self._served:
                break
            self.port = _free_port()
        raise RtspServerError(
            f"RTSP server on 127.0.0.1:{self.port} exited {rc} before listening:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM, wait up to ``STOP_S``, then SIGKILL. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_S)
        if proc.stdout is not None:
            proc.stdout.close()

    def close(self) -> None:
        self.stop()
        self._log.unlink(missing_ok=True)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's stderr (GStreamer warnings, tracebacks)."""
        try:
            return self._log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()

    def _spawn(self) -> int | None:
        """Run the script; None once it printed READY, else its exit status."""
        argv = [str(SYSTEM_PYTHON), str(SCRIPT), str(self.port), str(self.clip)]
        with self._log.open("ab") as log:
            proc = subprocess.Popen(
                [*argv, self.user, self.password], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=log,
            )  # fmt: skip
        self._proc = proc
        assert proc.stdout is not None  # stdout=PIPE
        fd = proc.stdout.fileno()
        line = b""
        deadline = time.monotonic() + START_S
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in line:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.stop()
                    raise RtspServerError(
                        f"RTSP server not listening on 127.0.0.1:{self.port} after {START_S} s:\n"
                        f"{self.log_tail()}"
                    )
                if sel.select(remaining):
                    chunk = os.read(fd, 256)
                    if not chunk:  # it exited
                        break
                    line += chunk
        if line.split() == [b"READY", str(self.port).encode()]:
            return None
        self.stop()
        return proc.returncode


@pytest.fixture(name="rtsp_server")
def rtsp_server_fixture() -> Iterator[RtspServer]:
    """A running ``RtspServer`` for one test, stopped afterwards (it may stop and restart it)."""
    with RtspServer() as server:
        yield server
