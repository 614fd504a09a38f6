"""``pitchside healthcheck``: exit 0 when this container's service answers its health URL.

The image's ``HEALTHCHECK`` (``deploy/Dockerfile``) runs it; Kubernetes ignores
``HEALTHCHECK`` and probes the same URLs itself (``deploy/kubernetes``). One image runs every
service, so the URL depends on the service the container runs:

- ``--url`` or ``PITCHSIDE_HEALTH_URL`` when given;
- ``http://127.0.0.1:<PITCHSIDE_METRICS_PORT>/metrics`` when a metrics port is set: ingest,
  workers and the tracker serve their metrics there, and answer once they run;
- else the gateway's ``http://127.0.0.1:<PITCHSIDE_PORT>/healthz``.

The operator's token goes along when one is set (``PITCHSIDE_HEALTH_AUTH``, ``/metrics``
behind ``PITCHSIDE_METRICS_AUTH``); it is never printed. Standard library only: it must
stay quick, every few seconds in every container.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

from pitchside.redact import redact_url
from pitchside.settings import Settings, auth_headers

TIMEOUT_S = 3.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="the URL to ask (default: see the docs)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds to wait")


def health_url(settings: Settings) -> str:
    """The URL this container's service answers on, by the rules of the module docs."""
    if settings.health_url:
        return settings.health_url
    if settings.metrics_port:
        return f"http://127.0.0.1:{settings.metrics_port}/metrics"
    return f"http://127.0.0.1:{settings.port}/healthz"


def run(args: argparse.Namespace, settings: Settings) -> int:
    url = args.url or health_url(settings)
    request = urllib.request.Request(url, headers=auth_headers(settings))
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {redact_url(url)}: {exc}", file=sys.stderr)
        return 1
    if 200 <= status < 300:
        return 0
    print(f"unhealthy: {redact_url(url)} answered {status}", file=sys.stderr)
    return 1
