"""``pitchside gateway`` / ``python -m gateway``: serve the gateway with uvicorn.

It runs like every service, under :func:`pitchside.service.run_service`: SIGTERM or SIGINT
sets ``stop``, and uvicorn then stops accepting, closes the viewers' WebSockets (1012),
waits up to ``GRACEFUL_SHUTDOWN_S`` for requests in flight and runs the lifespan's shutdown
(hub, then Redis). Without ``REDIS_URL`` it starts an embedded Redis for itself. Once it
listens it beats ``pitchside:health:gateway:{name}`` with the address of its ``/metrics``
(its own host and port), so that ``/api/sd/prometheus`` lists the gateways too; a gateway
without Redis still starts (and answers ``/readyz`` 503).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Iterator

import uvicorn

from gateway.app import create_app
from pitchside.embedded_redis import redis_url_or_embedded
from pitchside.errors import ServiceError
from pitchside.exporter import advertised
from pitchside.heartbeat import Heartbeat
from pitchside.metrics import GATEWAY
from pitchside.redis_client import connect
from pitchside.service import instance_name, run_service
from pitchside.settings import Settings

GRACEFUL_SHUTDOWN_S = 10  # within a pod's default 30 s termination grace period
STARTED_POLL_S = 0.05  # how often the heartbeat looks whether uvicorn listens yet


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling: the service runner owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build_server(settings: Settings) -> uvicorn.Server:
    """The gateway app in a uvicorn server that leaves signals to its caller.

    ``settings.redis_url`` must be set. The benchmark serves the gateway with this too.
    """
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep pitchside's logging set-up
        proxy_headers=False,
        ws_per_message_deflate=False,  # JPEG does not compress: save the CPU
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    return _Server(config)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The gateway's command-line options (each overrides its environment variable)."""
    parser.add_argument("--host", help="address to listen on (PITCHSIDE_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (PITCHSIDE_PORT, default 8000)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT. Returns the process exit code (0, 1, or 2 for bad settings)."""
    overrides = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    return run_service("gateway", serve, settings.replace(**overrides))


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run uvicorn until ``stop`` is set.

    Raises:
        ServiceError: uvicorn could not start (the port is taken, the lifespan failed); it
            has logged why.
    """
    with redis_url_or_embedded(settings.redis_url) as url:
        server = build_server(settings.replace(redis_url=url))
        on_stop = asyncio.create_task(_exit_on(stop, server))
        beating = asyncio.create_task(_announce(server, settings.host, url))
        try:
            await server.serve()
        except SystemExit:  # uvicorn's way of saying it could not start
            raise ServiceError(
                f"the gateway could not start on {settings.host}:{settings.port}; see the log above"
            ) from None
        finally:
            on_stop.cancel()
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating


async def _announce(server: uvicorn.Server, host: str, redis_url: str) -> None:
    """Once ``server`` listens, beat the gateway's health key (with the port it took) until
    cancelled."""
    while not server.started:
        await asyncio.sleep(STARTED_POLL_S)
    port = server.servers[0].sockets[0].getsockname()[1]
    name = instance_name(GATEWAY)
    redis = connect(redis_url, name)
    try:
        address = advertised(host, port)
        async with Heartbeat(redis, GATEWAY, name, metrics=address, strict=False):
            await asyncio.Event().wait()
    finally:
        await redis.aclose()


async def _exit_on(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True


if __name__ == "__main__":
    from pitchside.cli import main

    raise SystemExit(main(["gateway", *sys.argv[1:]]))
