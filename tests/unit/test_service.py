"""run_async: the services' event loop."""

from __future__ import annotations

import asyncio

import pytest

from pitchside.service import run_async


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
