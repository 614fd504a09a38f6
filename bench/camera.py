"""A real RTSP camera: ``rtsp_server.py`` (GStreamer, run by Debian's /usr/bin/python3).

:class:`RtspServer` runs ``rtsp_server.py`` beside this module on a free loopback port; see
that script for what each mount serves (``/clip`` loops a clip without re-encoding,
``/pattern`` is a live test pattern, ``/secure`` the pattern behind basic auth, anything else
404). ``stop()`` then ``start()`` brings the server back on the same port, as a camera that
reboots. The benchmark's section (e) and the RTSP tests (``tests/integration/rtsp.py``) use it.
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
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

from pitchside.errors import BenchError

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
#: Bound on ``rtsp_server.py --check`` (loading GStreamer's registry the first time).
CHECK_S = 60.0
EXIT_PORT_TAKEN = 4  # rtsp_server.py: cannot listen on the port


class RtspServerError(BenchError):
    """The RTSP server did not start."""


class GStreamerMissingError(RtspServerError):
    """/usr/bin/python3 cannot run the server: the message names the apt packages."""


@functools.cache
def _check_system_gstreamer() -> str | None:
    """None if /usr/bin/python3 can run the server, else why not."""
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} is missing"
    try:
        done = subprocess.run(
            [str(SYSTEM_PYTHON), str(SCRIPT), "--check"], capture_output=True, text=True,
            timeout=CHECK_S,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"{SCRIPT.name} --check did not answer in {CHECK_S:g} s"
    if done.returncode != 0:
        return done.stderr.strip() or f"{SCRIPT.name} --check exited {done.returncode}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """A GStreamer RTSP server on ``127.0.0.1:port``, started and stopped by its owner.

    Args:
        clip: the H.264 MP4 that ``/clip`` loops.
        user: the one user ``/secure`` admits.
        password: that user's password.

    The server process gets SIGTERM when the thread that started it exits (PR_SET_PDEATHSIG):
    start it from a thread that outlives it (the test's own, or an executor's kept until
    :meth:`close`), not from a worker thread that ends first.
    """

    def __init__(self, clip: Path, user: str, password: str) -> None:
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

    def start(self) -> Self:
        """Start the server (on the same port as before, if it ran before); wait until it listens.

        Raises:
            GStreamerMissingError: /usr/bin/python3 lacks GStreamer (names the apt packages).
            RtspServerError: the clip is missing, or the server exited or did not listen
                within ``START_S``.
        """
        if self.running:
            raise RtspServerError(f"the RTSP server already runs on port {self.port}")
        why = _check_system_gstreamer()
        if why is not None:
            raise GStreamerMissingError(
                f"the RTSP server needs GStreamer for {SYSTEM_PYTHON}: {why}\n"
                f"install the Debian packages: apt-get install {APT_PACKAGES}"
            )
        if not self.clip.is_file():
            raise RtspServerError(f"the RTSP server's clip is missing: {self.clip}")
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

    def __enter__(self) -> Self:
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
