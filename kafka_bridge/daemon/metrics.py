"""Prometheus metrics and the /healthz and /readyz probes of the daemon, on one HTTP port.

Each worker process keeps its own registry (``BridgeMetrics``): counters and
gauges are read from its pumps' ``PumpStats`` when scraped, so the hot path
only increments integers. The parent process serves the daemon's endpoint
(``DaemonMetrics``): on each scrape it reads every worker's private endpoint
and sums the samples, and keeps the final counts of workers that are gone,
so counters never go back. Labels stay bounded: direction, event, and for
consumer lag the configured topics' partitions.
"""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

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


#: gauges that add up across workers; the others (backpressure, lag) take the largest value
SUMMED_GAUGES = frozenset({"kafka_bridge_in_flight"})

#: families whose samples count events since a worker started, summed over every worker
CUMULATIVE_TYPES = frozenset({"counter", "histogram", "summary"})


def merge(expositions: Iterable[tuple[str, bool]]) -> list[Metric]:
    """The families of several workers' expositions (text, is_retired) as one.

    Counters and histograms are summed over every exposition; gauges over the
    live ones only (SUMMED_GAUGES summed, the others their maximum). The
    ``_created`` samples of single workers are left out.
    """
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text, retired in expositions:
        for family in text_string_to_metric_families(text):
            cumulative = family.type in CUMULATIVE_TYPES
            if family.name.endswith("_created") or (retired and not cumulative):
                continue
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            summed = cumulative or family.name in SUMMED_GAUGES
            merged = values[family.name]
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in merged:
                    merged[key] = sample.value
                elif summed:
                    merged[key] += sample.value
                else:
                    merged[key] = max(merged[key], sample.value)
    for name, family in families.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    return list(families.values())


class _Families:
    """A collector yielding fixed families (to render merged ones)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def compact(expositions: Iterable[str]) -> str:
    """Gone workers' final expositions as one: their cumulative families summed."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(merge((text, True) for text in expositions)))
    return generate_latest(registry).decode()


class DaemonMetrics:
    """The parent's registry: every worker's metrics summed, and the number of workers."""

    def __init__(self, expositions: Callable[[], Iterable[tuple[str, bool]]],
                 running: Callable[[], int], configured: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._expositions = expositions
        self._running = running
        self._configured = configured
        self.registry.register(self)

    def collect(self) -> Iterator[Any]:
        """prometheus_client collector protocol: the workers' metrics right now."""
        yield from merge(self._expositions())
        workers = GaugeMetricFamily("kafka_bridge_workers",
                                    "Worker processes: configured, and running now.",
                                    labels=["state"])
        workers.add_metric(["configured"], self._configured)
        workers.add_metric(["running"], self._running())
        yield workers


class HealthServer:
    """Serves /metrics, /healthz and /readyz from a daemon thread."""

    def __init__(self, host: str, port: int, metrics: BridgeMetrics | DaemonMetrics,
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
        LOG.debug("metrics and health on http://%s:%d/metrics", *self._server.server_address)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def forget(self) -> None:
        """In a forked child: close the inherited listening socket (the thread serving
        it exists only in the parent)."""
        self._server.socket.close()


def _handler(metrics: BridgeMetrics | DaemonMetrics, ready: Callable[[], bool]) -> type:
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
