"""No token and no source credential appears in any log line of a full run.

`pitchside up` runs with PITCHSIDE_TOKEN, a viewer token from PITCHSIDE_VIEWER_TOKEN_FILE and
every service at DEBUG (where libraries log handshakes and headers); a real RTSP camera behind
a password streams through it. The test uses the API with good and bad tokens, the session
cookie, every WebSocket credential, a camera with a wrong password, and `pitchside analyse`
(which sends the token by itself); then it reads the captured stdout and stderr of every
process of the run, `pitchside analyse` included, and looks for each secret in every form
it could leak in.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from gateway import protocol
from gateway.auth import SESSION_COOKIE, WS_TOKEN_PREFIX
from tests.conftest import CLIP
from tests.integration.conftest import Stack, run_stack
from tests.integration.rtsp import PASSWORD, USER, RtspServer, rtsp_server_fixture  # noqa: F401
from tests.integration.test_access import OPERATOR, VIEWER

pytestmark = pytest.mark.slow

WRONG_PASSWORD = "guess-w9k2-camera"  # a camera password that is refused: logged nowhere either
WAIT_S = 60.0  # bound of each wait for a frame through the real pipeline on 2 busy cores
ANALYSE_S = 240.0  # bound of `pitchside analyse` of the clip


def _b64(token: str) -> str:
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def _first_frame(stack: Stack, sid: str, **kw: Any) -> bytes:
    """The first binary frame message of a viewer WebSocket opened with ``kw``."""
    url = f"{stack.ws_url}/ws/streams/{sid}"
    with connect(url, compression=None, max_size=None, open_timeout=10, **kw) as ws:
        while True:
            message = ws.recv(timeout=WAIT_S)
            if isinstance(message, bytes):
                return message


def _close_code(stack: Stack, sid: str, **kw: Any) -> int:
    url = f"{stack.ws_url}/ws/streams/{sid}"
    with connect(url, compression=None, open_timeout=10, **kw) as ws:
        try:
            while True:
                ws.recv(timeout=WAIT_S)
        except ConnectionClosed as exc:
            assert exc.rcvd is not None
            return exc.rcvd.code
    raise AssertionError("unreachable")


def test_no_token_or_source_password_appears_in_any_log_line_of_a_full_run(
    tmp_path: Path, rtsp_server: RtspServer
) -> None:
    viewer_file = tmp_path / "viewer-token"
    viewer_file.write_text(VIEWER + "\n")
    op = {"Authorization": f"Bearer {OPERATOR}"}
    camera = rtsp_server.url("/secure", USER, PASSWORD)
    refused_camera = rtsp_server.url("/secure", USER, WRONG_PASSWORD)
    secrets = {
        OPERATOR, VIEWER, _b64(OPERATOR), _b64(VIEWER), PASSWORD, quote(PASSWORD, safe=""),
        "s3cret", WRONG_PASSWORD,
    }  # fmt: skip
    analyse_out = tmp_path / "analyse.log"
    env = {
        "PITCHSIDE_TOKEN": OPERATOR, "PITCHSIDE_VIEWER_TOKEN_FILE": str(viewer_file),
        "PITCHSIDE_LOG_LEVEL": "DEBUG",
    }  # fmt: skip
    with run_stack(tmp_path, **env) as stack, httpx.Client(base_url=stack.base_url) as http:
        # given a stack asking for tokens: without one, or with a wrong one, nothing opens
        assert http.get("/api/streams").status_code == 401
        assert http.get("/api/streams", headers={"Authorization": "Bearer nope"}).status_code == 401
        wrong = {"Authorization": f"Bearer {OPERATOR[:-1]}"}
        assert http.post("/api/streams", json={"source": camera}, headers=wrong).status_code == 401
        # the viewer token reads, and may not start a camera
        viewer = {"Authorization": f"Bearer {VIEWER}"}
        assert http.get("/api/streams", headers=viewer).status_code == 200
        refused = http.post("/api/streams", json={"source": camera, "id": "x"}, headers=viewer)
        assert refused.status_code == 403
        # a browser signs in (and once with a wrong token)
        assert http.post("/api/session", json={"token": "wrong-token-123456"}).status_code == 401
        signed = http.post("/api/session", json={"token": OPERATOR})
        assert signed.status_code == 200
        cookie = signed.cookies[SESSION_COOKIE]
        secrets.add(cookie)
        # when the operator starts the camera behind its password, and one with a wrong one
        started = http.post(
            "/api/streams", json={"source": camera, "id": "cam", "loop": True}, headers=op
        )
        assert started.status_code == 201, started.text
        assert started.json()["source"].startswith("rtsp://***:***@")
        bad = http.post("/api/streams", json={"source": refused_camera, "id": "bad"}, headers=op)
        assert bad.status_code == 422, bad.text
        # then its frames reach viewers holding each kind of credential
        for kw in (
            {"additional_headers": viewer},
            {"additional_headers": {"Cookie": f"{SESSION_COOKIE}={cookie}"}},
            {"subprotocols": ["pitchside", WS_TOKEN_PREFIX + _b64(VIEWER)]},
        ):
            assert len(_first_frame(stack, "cam", **kw)) > 4, kw
        # and viewers with a wrong or no credential are closed with 4401
        wrong_ws = {"subprotocols": [WS_TOKEN_PREFIX + _b64(OPERATOR + "x")]}
        assert _close_code(stack, "cam", **wrong_ws) == protocol.CLOSE_UNAUTHORIZED
        assert _close_code(stack, "cam") == protocol.CLOSE_UNAUTHORIZED
        # and `pitchside analyse` sends the token it is given by itself
        analysed = subprocess.run(
            [sys.executable, "-m", "pitchside", "analyse", str(CLIP), "--url", stack.base_url,
             "--no-video", "--out", str(tmp_path / "results")],
            env={**os.environ, "PITCHSIDE_TOKEN": OPERATOR, "PITCHSIDE_LOG_LEVEL": "DEBUG"},
            capture_output=True, text=True, timeout=ANALYSE_S,
        )  # fmt: skip
        analyse_out.write_text(analysed.stdout + analysed.stderr)
        assert analysed.returncode == 0, analysed.stdout + analysed.stderr
        assert (tmp_path / "results" / "results.jsonl").stat().st_size > 0
        # and the cookie stops the stream from the gateway's own page
        stopped = http.delete(
            "/api/streams/cam",
            headers={"Cookie": f"{SESSION_COOKIE}={cookie}", "Origin": stack.base_url},
        )
        assert stopped.status_code == 204, stopped.text
    # then, the stack stopped, no line any process wrote holds any secret
    log = stack.log.read_text(errors="replace") + analyse_out.read_text()
    assert "viewer joined cam" in log and " DEBUG " in log, "the run's log was not captured"
    assert f"rtsp://***:***@127.0.0.1:{rtsp_server.port}/secure" in log  # logged, redacted
    leaks = [
        (secret, line[:200]) for line in log.splitlines() for secret in secrets if secret in line
    ]
    assert leaks == [], f"secrets in the log: {leaks[:5]}"
