"""Every log line goes through the redactor: configured secrets and credential patterns go."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from pitchside.logs import Redactor, setup_logging
from pitchside.settings import Settings

TOKEN = "op-token-0123456789abcdef"
VIEWER = "view-token-0123456789abcdef"


@pytest.mark.parametrize(
    ("line", "expected"),
    [("< authorization: Bearer abc.def", "< authorization: ***"),
     ("headers [('authorization', 'Bearer abc')]", "headers [('authorization', '***')]"),
     ("[(b'authorization', b'Bearer abc')]", "[(b'authorization', b'***')]"),
     ("< cookie: pitchside_session=v1.viewer.1.sig; x=1", "< cookie: ***"),
     ("set pitchside_session=v1.operator.9.sig; Path=/", "set pitchside_session=***; Path=/"),
     ("< sec-websocket-protocol: pitchside, pitchside.token.b3AtdG9rZW4",
      "< sec-websocket-protocol: pitchside, pitchside.token.***"),
     ("open rtsp://cam:pa%20ss@10.0.0.5/live failed", "open rtsp://***:***@10.0.0.5/live failed"),
     ("postgresql+psycopg://u:pw@db/x", "postgresql+psycopg://***:***@db/x"),
     ("the session cookie, renewed", "the session cookie, renewed"),
     ("GET /api/streams 200", "GET /api/streams 200")],
)  # fmt: skip
def test_redactor_hides_credential_patterns_and_keeps_the_rest(line: str, expected: str) -> None:
    assert Redactor()(line) == expected


def test_redactor_hides_the_configured_secrets_and_their_url_encoded_forms() -> None:
    redact = Redactor([TOKEN, "pass word/1", None, ""])
    assert redact(f"token={TOKEN}!") == "token=***!"
    assert redact("p=pass%20word%2F1 and pass word/1") == "p=*** and ***"


@pytest.fixture
def root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:], root.level = handlers, level


@pytest.mark.parametrize("json_lines", [False, True])
def test_setup_logging_redacts_tokens_in_messages_extras_and_tracebacks(
    monkeypatch: pytest.MonkeyPatch, root_logger: None, json_lines: bool
) -> None:
    # given a service logging with both tokens configured
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    settings = Settings.from_env(
        {"PITCHSIDE_TOKEN": TOKEN, "PITCHSIDE_VIEWER_TOKEN": VIEWER}
    ).replace(log_json=json_lines)
    setup_logging(settings, "gateway")
    log = logging.getLogger("test.redaction")
    # when something logs them, in a message, an extra field and a traceback
    log.warning("got %s", TOKEN, extra={"sid": VIEWER})
    try:
        raise ValueError(f"bad {TOKEN}")
    except ValueError:
        log.exception("failed")
    # then neither reaches the output, which still says what happened
    text = stream.getvalue()
    assert TOKEN not in text and VIEWER not in text
    assert "got ***" in text and "ValueError: bad ***" in text.replace("\\n", "\n")
    if json_lines:
        assert json.loads(text.splitlines()[0])["sid"] == "***"
