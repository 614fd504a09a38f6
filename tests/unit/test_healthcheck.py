"""``pitchside healthcheck`` (the image's HEALTHCHECK) against a real HTTP server on loopback."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from pitchside.cli import main
from pitchside.healthcheck import health_url
from pitchside.settings import Settings


class _Handler(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        self.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(200 if self.path in ("/healthz", "/metrics") else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.seen.clear()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_the_url_follows_the_service_the_container_runs():
    gateway = Settings.from_env({"PITCHSIDE_PORT": "8080"})
    worker = Settings.from_env({"PITCHSIDE_METRICS_PORT": "9102"})
    given = Settings.from_env(
        {"PITCHSIDE_METRICS_PORT": "9102", "PITCHSIDE_HEALTH_URL": "http://127.0.0.1:1/x"}
    )
    assert health_url(gateway) == "http://127.0.0.1:8080/healthz"
    assert health_url(worker) == "http://127.0.0.1:9102/metrics"
    assert health_url(given) == "http://127.0.0.1:1/x"


def test_healthy_is_0_unhealthy_is_1(server: int, monkeypatch, capsys):
    monkeypatch.setenv("PITCHSIDE_PORT", str(server))
    assert main(["healthcheck"]) == 0
    assert _Handler.seen[-1][0] == "/healthz"
    assert main(["healthcheck", "--url", f"http://127.0.0.1:{server}/readyz"]) == 1
    assert "answered 503" in capsys.readouterr().err


def test_nobody_listening_is_unhealthy(unused_tcp_port: int, capsys):
    assert main(["healthcheck", "--url", f"http://127.0.0.1:{unused_tcp_port}/healthz"]) == 1
    assert "unhealthy" in capsys.readouterr().err


def test_the_token_is_sent_and_never_printed(server: int, monkeypatch, capsys):
    token = "s3cret-operator-token-0123456789"
    monkeypatch.setenv("PITCHSIDE_TOKEN", token)
    monkeypatch.setenv("PITCHSIDE_METRICS_PORT", str(server))
    assert main(["healthcheck"]) == 0
    assert _Handler.seen[-1] == ("/metrics", f"Bearer {token}")
    assert main(["healthcheck", "--url", f"http://127.0.0.1:{server}/nope"]) == 1
    captured = capsys.readouterr()
    assert token not in captured.err + captured.out
