"""``python -m gateway`` (or ``pitchside gateway``): serve the gateway with uvicorn.

uvicorn handles SIGTERM and SIGINT: it stops accepting, closes the viewers' WebSockets (1012),
waits for requests in flight, then runs the lifespan's shutdown (hub, then Redis).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import uvicorn

from gateway.app import create_app
from pitchside.embedded_redis import redis_url_or_embedded
from pitchside.errors import PitchsideError, SettingsError
from pitchside.logs import setup_logging
from pitchside.service import EXIT_CONFIG, EXIT_ERROR, EXIT_OK
from pitchside.settings import Settings

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_S = 10  # within a pod's default 30 s termination grace period


class _Server(uvicorn.Server):
    """uvicorn's server, stopping on SIGTERM/SIGINT without dying of the signal afterwards.

    uvicorn re-raises a captured stop signal once it has shut down gracefully, so the process
    would end with 143 (a failure to a supervisor) before the embedded Redis is stopped.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        log.info("received %s: shutting down", signal.Signals(sig).name)
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: do not wait for connections
        self.should_exit = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The gateway's command-line options (each overrides its environment variable)."""
    parser.add_argument("--host", help="address to listen on (PITCHSIDE_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (PITCHSIDE_PORT, default 8000)")


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT. Returns the process exit code (0, 1, or 2 for bad settings)."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        logging.basicConfig()
        log.error("gateway cannot run: %s", exc)
        return EXIT_CONFIG
    overrides = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    settings = settings.replace(**overrides)
    setup_logging(settings, "gateway")
    try:
        with redis_url_or_embedded(settings.redis_url) as url:
            config = uvicorn.Config(
                create_app(settings.replace(redis_url=url)),
                host=settings.host,
                port=settings.port,
                log_config=None,  # keep pitchside's logging set-up
                proxy_headers=False,
                ws_per_message_deflate=False,  # JPEG does not compress: save the CPU
                server_header=False,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            )
            server = _Server(config)
            server.run()
    except PitchsideError as exc:
        log.error("gateway cannot run: %s", exc)
        return EXIT_CONFIG if isinstance(exc, SettingsError) else EXIT_ERROR
    return EXIT_OK if server.started else EXIT_ERROR


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
