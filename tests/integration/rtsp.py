"""A real RTSP server for camera-source tests: :class:`bench.camera.RtspServer` on the test clip.

See ``bench/rtsp_server.py`` for what each mount serves (``/clip`` loops the test clip,
``/pattern`` is a live test pattern, ``/secure`` the pattern behind basic auth, anything else
404). Here it serves the shared test clip to ``USER``:``PASSWORD``, and a missing asset or
GStreamer fails the test (never skips it). Tests import the ``rtsp_server`` fixture from here
(its function has another name, so that a test's ``rtsp_server`` argument does not shadow the
import)::

    from tests.integration.rtsp import RtspServer, rtsp_server_fixture  # noqa: F401

``stop()`` then ``start()`` brings the server back on the same port, as a camera that reboots.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest

from bench import camera
from tests.conftest import CLIP, require_asset

USER = "camera"
PASSWORD = "pitch side:s3cret@1"  # characters that must be percent-encoded in a URL


class RtspServer(camera.RtspServer):
    """The benchmark's RTSP camera with the tests' clip and credentials, failing the test."""

    def __init__(self, clip: Path = CLIP, user: str = USER, password: str = PASSWORD) -> None:
        super().__init__(clip, user, password)

    def start(self) -> Self:
        """Start it; fails the test, naming the apt packages, when GStreamer is missing."""
        require_asset(self.clip)
        try:
            return super().start()
        except camera.GStreamerMissingError as exc:
            pytest.fail(str(exc))


@pytest.fixture(name="rtsp_server")
def rtsp_server_fixture() -> Iterator[RtspServer]:
    """A running ``RtspServer`` for one test, stopped afterwards (it may stop and restart it)."""
    with RtspServer() as server:
        yield server
