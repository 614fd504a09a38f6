"""Run one async service until SIGTERM or SIGINT: the shared body of every ``__main__``."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from pitchside.errors import ModelError, PitchsideError, SettingsError
from pitchside.logs import setup_logging
from pitchside.settings import Settings

log = logging.getLogger(__name__)

Serve = Callable[[Settings, asyncio.Event], Awaitable[None]]
T = TypeVar("T")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2  # a bad setting or model: restarting will not help


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop (a dependency through ``uvicorn[standard]``) where it is
    installed: its event loop costs a fraction of the default one's CPU per Redis round trip
    and socket write, CPU the workers' inference needs on a small machine."""
    try:
        import uvloop
    except ImportError:  # e.g. Windows, where uvicorn[standard] leaves it out
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def run_service(name: str, serve: Serve, settings: Settings) -> int:
    """Run ``serve(settings, stop)``; both signals set ``stop`` and the service drains.

    Returns the process exit code: 0 after a clean stop, 2 for a configuration error a
    restart cannot fix (the supervisor does not restart those), 1 for anything else.
    """
    setup_logging(settings, name)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    try:
        run_async(main())
    except (SettingsError, ModelError) as exc:
        log.error("%s cannot run: %s", name, exc)
        return EXIT_CONFIG
    except PitchsideError as exc:
        log.error("%s stopped: %s", name, exc)
        return EXIT_ERROR
    except Exception:
        log.exception("%s crashed", name)
        return EXIT_ERROR
    return EXIT_OK
