"""The service runner: the event loop, the signals, the exit statuses."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from pitchside.errors import EmbeddedRedisError, ExitCode, ModelError, SettingsError
from pitchside.service import run_async, run_service, run_until_signalled
from pitchside.settings import Settings


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_run_async_runs_on_uvloop_where_installed() -> None:
    # given uvloop installed (uvicorn[standard] brings it)
    pytest.importorskip("uvloop")
    # when a coroutine runs through run_async
    module = run_async(_loop_module())
    # then it ran on uvloop's event loop and its result came back
    assert module.startswith("uvloop")


def test_run_async_propagates_the_coroutines_exception() -> None:
    async def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_async(fail())


def test_run_async_uses_the_standard_loop_when_not_fast() -> None:
    assert run_async(_loop_module(), fast=False).startswith("asyncio")


def test_run_until_signalled_sets_stop_on_the_signal_and_returns_mains_result() -> None:
    # given a main that signals its own process once it runs, then waits for stop
    async def main(stop: asyncio.Event) -> str:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), 10)
        return "drained"

    # when it runs under the service runner, then SIGTERM sets stop instead of killing us
    assert run_until_signalled(main) == "drained"


@pytest.mark.parametrize(
    ("raised", "code", "logged"),
    [
        (None, ExitCode.OK, None),
        (SettingsError("PITCHSIDE_X must be an integer, got 'y'"), ExitCode.USAGE, "cannot run"),
        (ModelError("model file '/x.onnx' does not exist"), ExitCode.USAGE, "cannot run"),
        (EmbeddedRedisError("redis-server exited"), ExitCode.FAILED, "cannot run"),
        (RuntimeError("bug"), ExitCode.FAILED, "crashed"),
    ],
)
def test_run_service_maps_every_way_out_to_one_exit_status(
    raised: Exception | None, code: ExitCode, logged: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    # given a service that ends by returning or by raising
    async def serve(settings: Settings, stop: asyncio.Event) -> None:
        if raised is not None:
            raise raised

    # when it runs, then the exit status says whether a restart can help, and the log why
    assert run_service("probe", serve, Settings()) == code
    if logged is not None:
        assert f"probe {logged}" in caplog.text
