"""Run one async service until SIGTERM or SIGINT: the shared body of every ``__main__``."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from pitchside.errors import ModelError, PitchsideError, SettingsError
from pitchside.logs import setup_logging
from pitchside.settings import Settings

log = logging.getLogger(__name__)

Serve = Callable[[Settings, asyncio.Event], Awaitable[None]]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2  # a bad setting or model: restarting will not help


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
        asyncio.run(main())
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
