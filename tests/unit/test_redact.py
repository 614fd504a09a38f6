"""Credentials never leave a source URL; plain paths pass through unchanged."""

from __future__ import annotations

import pytest

from pitchside.redact import redact_url


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("rtsp://user:pass@host/x", "rtsp://***:***@host/x"),
        (
            "rtsp://admin:s3cr%40t@10.0.0.5:554/stream1?ch=1",
            "rtsp://***:***@10.0.0.5:554/stream1?ch=1",
        ),
        ("rtsp://onlyuser@cam.local/live", "rtsp://***:***@cam.local/live"),
        ("http://u:p@example.test:8080/a.mp4", "http://***:***@example.test:8080/a.mp4"),
        ("rtsp://cam.local/live", "rtsp://cam.local/live"),
        ("/data/videos/match.mp4", "/data/videos/match.mp4"),
        ("relative/clip.mp4", "relative/clip.mp4"),
        ("file:///data/clip.mp4", "file:///data/clip.mp4"),
        ("/odd/na@me.mp4", "/odd/na@me.mp4"),
        ("", ""),
    ],
)
def test_redact_url_hides_credentials_and_keeps_paths(source: str, expected: str) -> None:
    assert redact_url(source) == expected


@pytest.mark.parametrize("secret", ["pass", "s3cr3t", "admin"])
def test_redact_url_output_never_contains_the_secret(secret: str) -> None:
    redacted = redact_url(f"rtsp://{secret}:{secret}@host:554/path")
    assert secret not in redacted, f"{secret!r} leaked in {redacted!r}"
