"""The gateway's Prometheus metrics, one registry per app (``GET /metrics`` exposes it).

A registry per :func:`gateway.app.create_app` call, rather than the process-wide default one,
keeps apps (and tests) independent and lets other services' metrics of the same name live in
the same process. Label values are bounded: stage, reason, command and result only.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from pitchside.metrics import frames_dropped

STAGE = "gateway"

# Drop reasons (frames_dropped_total{stage="gateway", reason=...})
SLOW_CLIENT = "slow_client"  # a viewer's queue was full: its oldest message went
FRAME_TRIMMED = "frame_trimmed"  # the JPEG had left the bounded frames stream before we read it
BAD_MESSAGE = "bad_message"  # a dets entry of another schema version or malformed


class Metrics:
    """Every metric the gateway exports, registered in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.frames_dropped = frames_dropped(self.registry)
        self.messages = Counter(
            "gateway_messages",
            "Frame messages built by the gateway (once per stream, shared by its viewers)",
            registry=self.registry,
        )
        self.sent = Counter(
            "gateway_sent_messages",
            "WebSocket frame messages sent to viewers",
            registry=self.registry,
        )
        self.viewers = Gauge("gateway_viewers", "Open viewer WebSockets", registry=self.registry)
        self.feeds = Gauge(
            "gateway_feeds",
            "Streams with a reader task (at least one viewer)",
            registry=self.registry,
        )
        self.control = Counter(
            "gateway_control_requests",
            "Control commands sent to ingest, by command and result",
            ["cmd", "result"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "end_to_end_seconds",
            "From frame capture to the gateway handing the message to its viewers",
            ["stage"],
            buckets=(0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0),
            registry=self.registry,
        )

    def dropped(self, reason: str, n: int = 1) -> None:
        self.frames_dropped.labels(stage=STAGE, reason=reason).inc(n)

    def exposition(self) -> bytes:
        """The text exposition format of every metric in this registry."""
        return generate_latest(self.registry)
