"""A service's ``/metrics`` on a small HTTP server of its own, and the address it announces.

Ingest and the workers have no web server: each runs prometheus_client's WSGI server on a
daemon thread, bound to ``PITCHSIDE_METRICS_HOST:PITCHSIDE_METRICS_PORT``. Port 0 (the default)
lets the OS pick a free port, so that any number of services share one host; the port taken is
what the service announces in its heartbeat (:class:`~pitchside.schema.Beat`), where the
gateway's ``/api/sd/prometheus`` finds it. A fixed port suits a container. The gateway serves
``/metrics`` on its own port and needs none of this.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
import time
from types import TracebackType
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from pitchside.errors import ServiceError

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0  # the server thread ends within its 0.5 s poll; this is a bound
STOP_POLL_S = 0.02
WILDCARDS = ("", "0.0.0.0", "::")  # hosts that bind every address


def advertised(host: str, port: int) -> str:
    """The ``host:port`` others reach a server bound to ``host:port`` at.

    A wildcard host (every address) is announced as this machine's host name; an IPv6
    address is bracketed.
    """
    if host in WILDCARDS:
        host = socket.gethostname()
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:  # a host name
        pass
    return f"{host}:{port}"


class MetricsServer:
    """Serves ``registry`` over HTTP while inside ``async with``.

    Args:
        registry: what ``GET /metrics`` (any path, in fact) exposes.
        host: the address to bind.
        port: the port to bind; 0 for one the OS picks.
    """

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """The announced ``host:port`` (see :func:`advertised`) of the running server."""
        if self._server is None:
            raise RuntimeError("the metrics server is not running")
        return advertised(self._host, self._server.server_port)

    async def __aenter__(self) -> MetricsServer:
        try:
            self._server, self._thread = start_http_server(
                self._port, addr=self._host, registry=self._registry
            )
        except OSError as exc:
            raise ServiceError(
                f"cannot serve metrics on {self._host}:{self._port} "
                f"(PITCHSIDE_METRICS_HOST, PITCHSIDE_METRICS_PORT): {exc}"
            ) from exc
        log.info("metrics on http://%s/metrics", self.address)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is None:
            return
        # shutdown() waits for the server's poll: on a thread of its own (not the loop's
        # executor, which would outlive this), waited for without blocking the loop.
        stopper = threading.Thread(target=self._stop, args=(self._server,), daemon=True)
        stopper.start()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while stopper.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(STOP_POLL_S)
        self._server = None

    def _stop(self, server: WSGIServer) -> None:
        server.shutdown()  # waits for serve_forever to return
        server.server_close()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
