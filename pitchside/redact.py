"""Remove credentials from source URLs before they reach a log, the registry or a client."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(source: str) -> str:
    """``rtsp://user:secret@cam/x`` -> ``rtsp://***:***@cam/x``; paths come back unchanged."""
    try:
        parts = urlsplit(source)
    except ValueError:
        return source
    if not parts.scheme or "@" not in parts.netloc:
        return source
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***:***@{host}"))
