"""Logging set-up shared by every service: plain lines or JSON lines, never credentials.

Sources are redacted where they enter (pitchside/redact.py) and the gateway never reads a
token from a URL; as a last line of defence every formatted line, traceback included, also
goes through :class:`Redactor`: the configured secrets (tokens, the TURN credential, the
database password), a URL's ``user:password@``, an ``Authorization`` or ``Cookie`` header
(a library logging a handshake at DEBUG), the session cookie and the token subprotocol become
``***``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

from pitchside.settings import Settings

_STANDARD = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with any ``extra={...}`` fields (``sid``, ``worker``) kept."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


_PATTERNS = (
    # scheme://user:password@ -> scheme://***:***@ (what redact_url does, anywhere in a line)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@:'\"]*:[^\s/@'\"]*@"), r"\1***:***@"),
    # "Authorization: Bearer x", ('authorization', 'Bearer x'), (b'authorization', b'...')
    (re.compile(r"(?i)(\bauthorization(?:['\"]\s*,\s*b?['\"]|\s*[:=]\s*))"
                r"(?:bearer\s+|basic\s+)?[^\s'\",)]+"), r"\1***"),
    (re.compile(r"(?i)(\bcookie(?:['\"]\s*,\s*b?['\"]|\s*:\s*))[^\r\n'\"]+"), r"\1***"),
    (re.compile(r"(pitchside_session=)[^\s;,'\"]+"), r"\1***"),
    (re.compile(r"(pitchside\.token\.)[A-Za-z0-9_-]+"), r"\1***"),
)  # fmt: skip


class Redactor:
    """Takes secrets out of a log line: the ``secrets`` given (and their URL-encoded forms)
    and the credential patterns above."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        found = {s for s in secrets if s and len(s) >= 4}
        found |= {quote(s, safe="") for s in found}
        self._secrets = sorted(found, key=len, reverse=True)  # longest first: no partial leftovers

    def __call__(self, line: str) -> str:
        for secret in self._secrets:
            if secret in line:
                line = line.replace(secret, "***")
        for pattern, replacement in _PATTERNS:
            line = pattern.sub(replacement, line)
        return line


class RedactingFormatter(logging.Formatter):
    """Formats with ``inner``, then redacts the whole line (message, extras, traceback)."""

    def __init__(self, inner: logging.Formatter, redactor: Redactor) -> None:
        super().__init__()
        self._inner, self._redact = inner, redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(self._inner.format(record))


def secrets_of(settings: Settings) -> list[str | None]:
    """What no log line may hold: the tokens, the TURN credential, the database password."""
    password = None
    if settings.database_url:
        try:
            password = urlsplit(settings.database_url).password
        except ValueError:
            password = None
    return [settings.token, settings.viewer_token, settings.ice_credential, password]


def setup_logging(settings: Settings, service: str) -> None:
    """Configure the root logger once per process."""
    handler = logging.StreamHandler(sys.stderr)
    inner: logging.Formatter
    if settings.log_json:
        inner = JsonFormatter()
    else:
        inner = logging.Formatter(f"%(asctime)s %(levelname)-7s {service} %(name)s: %(message)s")
    handler.setFormatter(RedactingFormatter(inner, Redactor(secrets_of(settings))))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for noisy in ("uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
