"""Run one async service until SIGTERM or SIGINT: the shared body of every service command.

``pitchside ingest``, ``pitchside worker`` and ``pitchside gateway`` (and their ``python -m``
forms) all end here: :func:`run_service` runs ``serve(settings, stop)`` on uvloop, both
signals set ``stop`` and the service drains, and every way out maps to one exit status
(:class:`~pitchside.errors.ExitCode`). ``pitchside up`` uses :func:`run_until_signalled`,
the same loop and signal handling with the signals a terminal sends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from pitchside.errors import ExitCode, PitchsideError
from pitchside.settings import Settings

log = logging.getLogger(__name__)

Serve = Callable[[Settings, asyncio.Event], Awaitable[None]]
T = TypeVar("T")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def instance_name(service: str) -> str:
    """A name unique on this host for one process of ``service``: ``worker-<host>-<pid>``.

    It names the process's consumer in its group, its health key and its Redis client.
    """
    return f"{service}-{socket.gethostname()}-{os.getpid()}"


def run_async(main: Coroutine[Any, Any, T], fast: bool = True) -> T:
    """``asyncio.run`` on uvloop (a dependency through ``uvicorn[standard]``) where it is
    installed and ``fast`` is asked for: its event loop costs a fraction of the default one's
    CPU per Redis round trip and socket write, CPU the workers' inference needs on a small
    machine. ``fast=False`` is the standard loop (uvloop's ``subprocess_exec`` lacks
    ``process_group``, which the supervisor of ``pitchside up`` needs)."""
    try:
        import uvloop
    except ImportError:  # e.g. Windows, where uvicorn[standard] leaves it out
        fast = False
    if not fast:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def run_until_signalled(
    main: Callable[[asyncio.Event], Awaitable[T]],
    signals: Sequence[int] = STOP_SIGNALS,
    fast: bool = True,
) -> T:
    """Run ``main(stop)`` on a fresh event loop (uvloop unless not ``fast``, see
    :func:`run_async`); each of ``signals`` sets ``stop``."""

    async def body() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        try:
            return await main(stop)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    return run_async(body(), fast)


def run_service(name: str, serve: Serve, settings: Settings) -> int:
    """Run ``serve(settings, stop)`` until a signal; the process exit status.

    0 after a clean stop; a :class:`~pitchside.errors.PitchsideError`'s own exit code (2 for
    a bad setting or model, which the supervisor does not restart), logged as one line; 1
    for anything else, logged with its traceback.
    """

    async def main(stop: asyncio.Event) -> None:
        await serve(settings, stop)

    try:
        run_until_signalled(main)
    except PitchsideError as exc:
        log.error("%s cannot run: %s", name, exc)
        return exc.exit_code
    except Exception:
        log.exception("%s crashed", name)
        return ExitCode.FAILED
    return ExitCode.OK
