"""``pitchside up``: the whole stack on one machine, supervised.

Steps: read the settings, check the port and the model, start the embedded Redis (unless
``REDIS_URL`` is set), ``gateway``, ``ingest``, N ``workers`` and M trackers under one
:class:`~pitchside.supervisor.Supervisor` (so a Redis that dies is restarted like any child,
on the same socket, while the services wait for it), wait for the gateway's ``/readyz``,
optionally start one stream, then run until SIGINT or SIGTERM. Everything started is stopped
on the way out, in reverse order and Redis last, whatever the reason: a signal, a child that
cannot run (exit status 2) or was given up on (it kept crashing), or an error during start-up.

Exit status: 0 after a clean stop, 2 for a bad setting, model, port or source (nothing is left
running), 1 for anything else (a child given up on included).

Like the CLI, this is an entry point: it may import the services (the model pre-check loads
the model with the workers' own engine) and it reads the process environment, once, to hand
it on to the services it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path

import httpx

from pitchside.embedded_redis import EmbeddedRedis
from pitchside.errors import EmbeddedRedisError, ExitCode, ModelError, SettingsError
from pitchside.redact import redact_url
from pitchside.service import run_until_signalled
from pitchside.settings import Settings, auth_headers
from pitchside.supervisor import ChildSpec, ChildState, RestartPolicy, Supervisor

log = logging.getLogger(__name__)

#: SIGHUP too: the terminal that ran `pitchside up` was closed.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
READY_TIMEOUT_S = 120.0
_PROBE_INTERVAL_S = 0.25
_HTTP_TIMEOUT_S = 30.0  # POST /api/streams waits for ingest (PITCHSIDE_CONTROL_TIMEOUT_S)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``pitchside up``; the rest comes from ``PITCHSIDE_*`` variables."""
    parser.add_argument("--source", help="a video file or camera URL to start as a stream")
    parser.add_argument("--loop", action="store_true", help="replay --source forever")
    parser.add_argument(
        "--workers", type=_count, help="worker processes (default: PITCHSIDE_WORKERS, 1)"
    )
    parser.add_argument(
        "--trackers",
        type=_count,
        help="tracker processes, 0 for none (default: PITCHSIDE_TRACKERS, 1)",
    )
    parser.add_argument("--host", help="gateway address (default: PITCHSIDE_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=_port, help="gateway port (default: PITCHSIDE_PORT, 8000)")
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=READY_TIMEOUT_S,
        metavar="SECONDS",
        help=f"give up when the gateway is not ready by then (default: {READY_TIMEOUT_S:.0f})",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the stack until a signal; see the module docstring for the exit status."""
    if args.loop and not args.source:
        return _fail("--loop needs --source")
    changes = {
        "workers": args.workers, "trackers": args.trackers, "host": args.host, "port": args.port,
    }  # fmt: skip
    settings = settings.replace(**{k: v for k, v in changes.items() if v is not None})
    if problem := check_port(settings.host, settings.port) or check_model(settings):
        return _fail(problem)
    environ = dict(os.environ)  # read once, here: every service started inherits it
    # The standard event loop: it only supervises, and uvloop cannot start a process group.
    return run_until_signalled(
        lambda stop: _up(settings, args, environ, stop), STOP_SIGNALS, fast=False
    )


def check_model(settings: Settings) -> str | None:
    """None when the workers can serve ``settings.model_uri`` with these settings (the
    registry of ``MLFLOW_TRACKING_URI``, the providers of ``PITCHSIDE_PROVIDERS``), else a
    one-line reason."""
    model_uri = settings.model_uri
    try:
        from workers.engines import inspect_model  # onnxruntime: only `up` and workers need it
    except ImportError as exc:
        return f"cannot check the model {model_uri}: the workers package is unusable ({exc})"
    try:
        info = inspect_model(model_uri, settings)
    except SettingsError as exc:
        return str(exc)
    except ModelError as exc:
        message = str(exc)
        return message if model_uri in message else f"model {model_uri}: {message}"
    log.info("model %s is usable", model_uri)
    log.debug("model %s: %r", model_uri, info)
    return None


def check_port(host: str, port: int) -> str | None:
    """None when the gateway will be able to listen on ``host:port``, else the reason."""
    if port == 0:
        return "pitchside up needs a fixed port: set PITCHSIDE_PORT or --port to 1-65535, not 0"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return f"cannot listen on {host}:{port}: {reason} (choose another with --port)"
    return None


def child_specs(
    settings: Settings,
    redis_url: str,
    base_env: Mapping[str, str],
    operator_files: Sequence[str] = (),
) -> list[ChildSpec]:
    """The gateway, ingest, ``settings.workers`` workers and ``settings.trackers`` trackers,
    in start order.

    ``operator_files`` are local videos named on the command line (``--source``): ingest may
    open them wherever they are, besides the media folder (``PITCHSIDE_MEDIA_ALLOW``).
    """
    allow = [*settings.media_allow, *operator_files]
    env = {
        **base_env,
        "REDIS_URL": redis_url,
        "PITCHSIDE_HOST": settings.host,
        "PITCHSIDE_PORT": str(settings.port),
        "PITCHSIDE_MODEL": settings.model_uri,  # the one check_model accepted
        "PITCHSIDE_WORKERS": str(settings.workers),
        "PYTHONUNBUFFERED": "1",  # log lines reach the terminal as they are written
        "PITCHSIDE_MEDIA_ALLOW": os.pathsep.join(allow),
    }
    python = sys.executable
    specs = [
        ChildSpec("gateway", (python, "-m", "gateway"), env),
        ChildSpec("ingest", (python, "-m", "ingest"), env),
    ]
    for i in range(1, settings.workers + 1):
        name = f"worker-{i}"
        specs.append(ChildSpec(name, (python, "-m", "workers", "--name", name), env))
    for i in range(1, settings.trackers + 1):
        name = f"tracker-{i}"
        specs.append(ChildSpec(name, (python, "-m", "tracker", "--name", name), env))
    return specs


def public_url(host: str, port: int) -> str:
    """The URL a browser on this machine opens (a wildcard address becomes loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def run_stack(
    specs: Sequence[ChildSpec],
    base_url: str,
    stop: asyncio.Event,
    source: str | None = None,
    loop_source: bool = False,
    ready_timeout_s: float = READY_TIMEOUT_S,
    policy: RestartPolicy | None = None,
    gateway: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> int:
    """Supervise ``specs`` until ``stop`` is set or a required child cannot run or is given up.

    The spec named ``gateway`` (default: the first) must answer ``base_url``/readyz with 200
    within ``ready_timeout_s``. With ``source``, one stream is started through the REST API.
    ``headers`` go with both requests (the token, when access control is on).
    Every child is stopped before this returns, whatever happened.

    Returns:
        The exit status of ``pitchside up``.
    """
    supervisor = Supervisor(specs, policy)
    try:
        await supervisor.start()
        gateway = gateway or specs[0].name
        code = await _until_ready(supervisor, gateway, base_url, stop, ready_timeout_s, headers)
        if code is not None:
            return code
        if source is not None:
            code = await _start_stream(base_url, source, loop_source, headers)
            if code is not None:
                return code
        print(f"pitchside is up: {base_url}", flush=True)
        return await _until_stopped(supervisor, stop)
    except OSError as exc:
        return _fail(f"cannot start a service: {exc}", ExitCode.FAILED)
    finally:
        log.info("stopping every service")
        await supervisor.stop()


async def _up(
    settings: Settings, args: argparse.Namespace, base_env: Mapping[str, str], stop: asyncio.Event
) -> int:
    redis = None if settings.redis_url else EmbeddedRedis()
    try:
        source = _absolute_source(args.source) if args.source else None
        local = [source] if source is not None and "://" not in source else []
        redis_url = settings.redis_url or redis.prepare()  # type: ignore[union-attr]
        specs = child_specs(settings, redis_url, base_env, local)
        return await run_stack(
            [redis.child_spec(), *specs] if redis is not None else specs,
            public_url(settings.host, settings.port),
            stop,
            source=source,
            loop_source=args.loop,
            ready_timeout_s=args.ready_timeout,
            gateway=specs[0].name,
            headers=auth_headers(settings),
        )
    except EmbeddedRedisError as exc:
        return _fail(f"cannot start the embedded Redis: {exc}", ExitCode.FAILED)
    finally:
        if redis is not None:
            redis.stop()  # stopped by the supervisor already: this removes its folder
        log.info("pitchside stopped")


async def _until_ready(
    supervisor: Supervisor,
    gateway: str,
    base_url: str,
    stop: asyncio.Event,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
) -> int | None:
    """None once the gateway is ready, else the exit status to stop with."""
    first = await _first(
        ready=asyncio.wait_for(_probe_ready(base_url, headers), timeout_s),
        stop=stop.wait(),
        failed=supervisor.failed.wait(),
        gateway_gone=supervisor.wait_finished(gateway),
    )
    if first == "ready":
        return None
    if first == "stop":
        return ExitCode.OK
    if first == "failed":
        return _child_failed(supervisor)
    if first == "gateway_gone":
        state = supervisor.child(gateway)
        return _fail(f"the {gateway} ended ({state.state}) before it was ready; see its log above")
    return _fail(f"{base_url}/readyz did not answer 200 within {timeout_s:.0f} s", ExitCode.FAILED)


async def _until_stopped(supervisor: Supervisor, stop: asyncio.Event) -> int:
    first = await _first(
        stop=stop.wait(), failed=supervisor.failed.wait(), done=supervisor.done.wait()
    )
    if first == "stop":
        return ExitCode.OK
    if first == "failed":
        return _child_failed(supervisor)
    if all(s.state == ChildState.EXITED for s in supervisor.status()):
        return ExitCode.OK
    return _fail("every service has ended; see the log above", ExitCode.FAILED)


async def _probe_ready(base_url: str, headers: Mapping[str, str] | None = None) -> None:
    """Return once GET /readyz answers 200. Unbounded: the caller bounds it."""
    async with httpx.AsyncClient(timeout=2.0, trust_env=False, headers=headers) as client:
        while True:
            try:
                response = await client.get(f"{base_url}/readyz")
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            await asyncio.sleep(_PROBE_INTERVAL_S)


async def _start_stream(
    base_url: str, source: str, loop_source: bool, headers: Mapping[str, str] | None = None
) -> int | None:
    """POST /api/streams; None when the stream started, else the exit status."""
    shown = redact_url(source)
    try:
        async with httpx.AsyncClient(
            timeout=_HTTP_TIMEOUT_S, trust_env=False, headers=headers
        ) as client:
            response = await client.post(
                f"{base_url}/api/streams", json={"source": source, "loop": loop_source}
            )
    except httpx.HTTPError as exc:
        return _fail(f"could not start a stream from {shown}: {exc!r}", ExitCode.FAILED)
    body = _json_or_none(response)
    if response.is_success:
        sid = (body.get("sid") or body.get("id")) if isinstance(body, dict) else None
        print(f"started stream {sid or '?'} from {shown}", flush=True)
        return None
    detail = _detail(body) or response.text.strip() or response.reason_phrase
    status = ExitCode.USAGE if 400 <= response.status_code < 500 else ExitCode.FAILED
    code = response.status_code
    return _fail(f"the stream from {shown} was refused (HTTP {code}): {detail}", status)


def _child_failed(supervisor: Supervisor) -> int:
    failure = supervisor.failure
    if failure is None:  # not reachable: failed is set together with failure
        return _fail("a service cannot run; see the log above")
    status = ExitCode.FAILED if failure.state is ChildState.GAVE_UP else ExitCode.USAGE
    return _fail(f"{failure.describe()}; stopping every service", status)


async def _first(**awaitables: Awaitable[object]) -> str:
    """Run the awaitables until one finishes; cancel the rest and return its name.

    A timeout counts as finishing: the name is returned with ``"timeout"`` appended.
    """
    tasks = {asyncio.ensure_future(aw): name for name, aw in awaitables.items()}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    task = next(iter(done))
    if not task.cancelled() and isinstance(task.exception(), TimeoutError):
        return tasks[task] + "_timeout"
    if not task.cancelled() and (exc := task.exception()) is not None:
        raise exc
    return tasks[task]


def _absolute_source(source: str) -> str:
    """A local path made absolute (the gateway may run elsewhere); URLs unchanged."""
    if "://" in source:
        return source
    return str(Path(source).expanduser().resolve())


def _json_or_none(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _detail(body: object) -> str:
    """The API's ``detail``: a string, or FastAPI's list of validation errors."""
    if not isinstance(body, dict):
        return ""
    detail = body.get("detail")
    if isinstance(detail, list):
        return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail) if detail else ""


def _fail(message: str, status: int = ExitCode.USAGE) -> int:
    print(f"pitchside up: {message}", file=sys.stderr, flush=True)
    return status


def _count(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 256:  # as PITCHSIDE_WORKERS
        raise argparse.ArgumentTypeError(f"must be between 0 and 256, got {raw}")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {raw}")
    return value
