"""Property-based fuzzing of the gateway's HTTP API from its own OpenAPI document.

Schemathesis takes the document of the real app (``create_app(...).openapi()``, the same one
``/openapi.json`` serves) and sends every operation generated requests, valid ones and invalid
ones (its positive and negative modes, its coverage phase's edge cases), to that app served by
a real uvicorn on a loopback port with the session's real redis-server behind it. Every answer
must be: never a 500, another 5xx only where documented (503: no ingest answers), a status the
operation documents, a body matching the documented schema and content type, and no Python
traceback or exception repr.

No ingest runs, so stream commands time out at once (503, documented) and no source is ever
opened; uploads and images of random bytes must be refused with a 4xx. The run is bounded and
reproducible: MAX_EXAMPLES per operation and mode, derandomized, no example database. It
takes about 35 s on 2 cores.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import create_app
from pitchside.embedded_redis import EmbeddedRedis
from pitchside.settings import Settings
from tests.conftest import COCO_ONNX

MAX_EXAMPLES = 30  # per operation, and per generation mode
START_S = 20.0

#: What a leaked traceback or exception looks like in a body.
TRACEBACK = re.compile(
    r"Traceback \(most recent call last\)"
    r'|File "/'
    r"|\b[A-Z]\w*(?:Error|Exception)\("  # ValueError('...'), the repr of an exception
    r"|<\w+(?:\.\w+)* object at 0x[0-9a-f]+>"
)


@schemathesis.check
def no_traceback_in_body(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """No answer may show a Python traceback or an exception's repr."""
    text = response.content.decode("utf-8", errors="replace")
    if found := TRACEBACK.search(text):
        raise AssertionError(
            f"the body shows Python internals: {found.group(0)!r} in {text[:300]!r}"
        )
    return None


@schemathesis.check
def no_undocumented_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Never a 500; another 5xx only where the operation documents it (503: no ingest)."""
    documented = case.operation.definition.raw.get("responses", {})
    if response.status_code == 500 or (
        response.status_code >= 500 and str(response.status_code) not in documented
    ):
        raise AssertionError(f"server error {response.status_code}: {response.text[:300]!r}")
    return None


CHECKS = [
    no_undocumented_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    no_traceback_in_body,
]


@contextlib.contextmanager
def served(app_settings: Settings) -> Iterator[str]:
    """The gateway app under uvicorn in a thread of its own, on a free loopback port."""
    config = uvicorn.Config(
        create_app(app_settings), host="127.0.0.1", port=0, log_level="critical",
        lifespan="on", timeout_graceful_shutdown=5,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fuzzed-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail(f"the gateway did not start in {START_S} s")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(START_S)


@pytest.fixture(scope="module")
def gateway_url(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    app_settings = Settings.from_env({}).replace(
        redis_url=redis_server.url, data_dir=tmp / "data", model=str(COCO_ONNX), port=0,
        media_dir=tmp / "media", control_timeout_s=0.1, predict_max_mb=1, upload_max_mb=1,
    )  # fmt: skip
    with served(app_settings) as url:
        yield url


def _api_schema() -> schemathesis.BaseSchema:
    """The app's own OpenAPI document; building the app connects to nothing."""
    app = create_app(Settings.from_env({}).replace(redis_url="redis://127.0.0.1:1"))
    loaded = schemathesis.openapi.from_dict(app.openapi())
    loaded.config.generation.update(
        modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES, deterministic=True, database="none",
    )  # fmt: skip
    return loaded


schema = _api_schema()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
    suppress_health_check=list(HealthCheck),
)  # fmt: skip
def test_api_answers_every_generated_request_as_its_schema_says(
    case: schemathesis.Case[Any], gateway_url: str
) -> None:
    # given a generated request for one operation, when it is sent to the real gateway,
    # then the answer is one the OpenAPI document allows, and no traceback
    case.call_and_validate(base_url=gateway_url, checks=CHECKS, timeout=30)
