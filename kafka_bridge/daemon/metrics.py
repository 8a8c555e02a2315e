"""Prometheus metrics and the /healthz and /readyz probes of the daemon, on one HTTP port.

Counters and gauges are read from the pumps' ``PumpStats`` when Prometheus
scrapes, so the hot path only increments integers. Labels stay bounded:
direction, event, and for consumer lag the configured topics' partitions.
"""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from kafka_bridge.pump import Pump

LOG = logging.getLogger(__name__)

EVENTS = ("received", "published", "confirmed", "failed", "requeued", "filtered",
          "dead_lettered", "loop_suppressed")

#: seconds from the notification's creation at its source to its confirmation
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                   60, 300)


class BridgeMetrics:
    """The daemon's registry: pump counters, latency, lag and readiness."""

    def __init__(self, pumps: Callable[[], Mapping[str, Pump[Any, Any]]],
                 lag: Callable[[], Mapping[tuple[str, int], int]]) -> None:
        self.registry = CollectorRegistry()
        self._pumps = pumps
        self._lag = lag
        self.latency = Histogram("kafka_bridge_latency_seconds",
                                 "Seconds from a notification's creation at its source to "
                                 "its confirmation by the destination.", ["direction"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(self)

    def observer(self, direction: str) -> Callable[[float], None]:
        """A callback recording one latency of direction."""
        return self.latency.labels(direction).observe

    def collect(self) -> Iterator[Any]:
        """prometheus_client collector protocol: the pumps' state right now."""
        total = CounterMetricFamily("kafka_bridge_notifications",
                                    "Notifications per direction and what happened to them.",
                                    labels=["direction", "event"])
        in_flight = GaugeMetricFamily("kafka_bridge_in_flight",
                                      "Notifications taken from the source and not yet settled.",
                                      labels=["direction"])
        backpressure = GaugeMetricFamily("kafka_bridge_backpressure",
                                         "1 while the destination is unavailable and the "
                                         "source is held.", labels=["direction"])
        for direction, pump in self._pumps().items():
            stats = pump.stats
            for event in EVENTS:
                total.add_metric([direction, event], getattr(stats, event))
            in_flight.add_metric([direction], stats.in_flight)
            backpressure.add_metric([direction], int(stats.backpressure))
        lag = GaugeMetricFamily("kafka_bridge_consumer_lag",
                                "Records of a partition not yet taken by reverse mode.",
                                labels=["topic", "partition"])
        for (topic, partition), value in sorted(self._lag().items()):
            lag.add_metric([topic, str(partition)], value)
        yield from (total, in_flight, backpressure, lag)


class HealthServer:
    """Serves /metrics, /healthz and /readyz from a daemon thread."""

    def __init__(self, host: str, port: int, metrics: BridgeMetrics,
                 ready: Callable[[], bool]) -> None:
        handler = _handler(metrics, ready)
        self._server = http.server.ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="kafka-bridge-metrics", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()
        LOG.info("metrics and health on http://%s:%d/metrics", *self._server.server_address)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(metrics: BridgeMetrics, ready: Callable[[], bool]) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/metrics":
                self._reply(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                self._reply(200, b"ok\n")
            elif self.path == "/readyz":
                is_ready = ready()
                self._reply(200 if is_ready else 503,
                            b"ready\n" if is_ready else b"not ready\n")
            else:
                self._reply(404, b"not found\n")

        def _reply(self, status: int, body: bytes,
                   content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            LOG.debug("metrics endpoint: " + format, *args)

    return Handler
