"""The bridge as an oslo.service service: wires sources, pumps and sinks per mode.

One instance runs in each worker process; it reports to the parent process
(``workers.WorkerReporter``), which serves the daemon's metrics endpoint and
tells systemd.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from typing import Any

import oslo_messaging
from oslo_config import cfg
from oslo_service import service
from prometheus_client import generate_latest

from kafka_bridge.daemon.config import kafka_settings, parse_start_from, topic_template
from kafka_bridge.daemon.metrics import BridgeMetrics, HealthServer
from kafka_bridge.daemon.shutdown import finish_within
from kafka_bridge.daemon.workers import RUNNING, STARTING, STOPPED, WorkerReporter
from kafka_bridge.deadline import Deadline
from kafka_bridge.kafka.connectivity import check_connection
from kafka_bridge.kafka.consumer import Subscription
from kafka_bridge.kafka.errors import KafkaBridgeError
from kafka_bridge.kafka.settings import KafkaSettings
from kafka_bridge.pump import Pump, Route, Sink, Source
from kafka_bridge.pump.protocols import Message, Record
from kafka_bridge.pump.routes.event_filter import EventFilter
from kafka_bridge.pump.routes.forward import ForwardRoute
from kafka_bridge.pump.routes.reverse import ReverseRoute
from kafka_bridge.pump.sinks.kafka import KafkaSink
from kafka_bridge.pump.sinks.rabbit import RabbitSink
from kafka_bridge.pump.sources.kafka import KafkaSource
from kafka_bridge.pump.sources.rabbit import RabbitNotificationSource
from kafka_bridge.retry import backoff

LOG = logging.getLogger(__name__)

#: seconds between connection checks while Kafka refuses our credentials
AUTH_RETRY_INTERVAL = 30.0

#: seconds a source gets after shutdown_timeout to hand back what it held
STOP_GRACE = 0.25

#: seconds for committing offsets and closing connections once the sources stopped
RELEASE_TIMEOUT = 1.0

#: stop() returns at most this long after shutdown_timeout. The process exit
#: that follows (the worker's, then the master's interpreter teardown) took
#: up to 1 s on a loaded machine: within shutdown_timeout + 2 s in all.
STOP_LIMIT = 0.5

#: the queue argument of [forward] single_active_consumer
SINGLE_ACTIVE_CONSUMER = {"x-single-active-consumer": True}


class BridgeService(service.Service):
    """Runs the configured directions; ready once both sides are connected."""

    def __init__(self, conf: cfg.ConfigOpts, reporter: WorkerReporter | None = None) -> None:
        """reporter: how this worker tells the parent process its state (None: nobody)."""
        super().__init__()
        self.conf = conf
        self._reporter = reporter
        self.pumps: dict[str, Pump[Any, Any]] = {}
        self._sources: list[tuple[str, Source[Any]]] = []
        self._closers: list[tuple[str, Callable[[], None]]] = []
        self._local: oslo_messaging.Transport | None = None
        self._stopping = threading.Event()
        self._ready = False
        self._metrics: BridgeMetrics | None = None
        self._health: HealthServer | None = None

    def start(self) -> None:
        """Connect both sides and start pumping; called again after a SIGHUP restart."""
        super().start()
        conf = self.conf
        settings = kafka_settings(conf)
        self._stopping.clear()
        self._serve_health()
        if not self._wait_for_kafka(settings):
            return
        self._local = oslo_messaging.get_notification_transport(conf)
        mode = conf.kafka_bridge.mode
        batch = (conf.kafka_bridge.batch_size, conf.kafka_bridge.batch_timeout)
        if mode in ("reverse", "both"):
            subscription = Subscription(settings, conf.reverse.kafka_topics, conf.reverse.group,
                                        parse_start_from(conf.reverse.start_from))
            rabbit_sink = RabbitSink(self._local)
            self._closers.append(("closing the RabbitMQ publisher", rabbit_sink.close))
            self._run("reverse", KafkaSource(subscription, *batch),
                      ReverseRoute(conf.reverse.exchange), rabbit_sink)
        if mode in ("forward", "both"):
            kafka_sink = KafkaSink(settings)
            self._closers.append(("closing the Kafka producer", kafka_sink.close))
            kafka_sink.connect()
            route = ForwardRoute(
                settings, topic_template(conf),
                EventFilter(conf.forward.include_event_types, conf.forward.exclude_event_types),
                conf.forward.output_format, conf.forward.dead_letter_topic)
            self._run("forward", RabbitNotificationSource(
                self._local, conf.forward.exchanges, conf.forward.topics,
                conf.forward.priorities, conf.forward.pool, *batch,
                queue_arguments=SINGLE_ACTIVE_CONSUMER
                if conf.forward.single_active_consumer else None), route, kafka_sink)
        if self._stopping.is_set():  # stopped while a source was still connecting
            return
        settle_heap()  # start-up's last work: ready means pumping, nothing else
        self._ready = True
        LOG.info("kafka-bridge running: mode %s, Kafka %s", mode,
                 ",".join(settings.bootstrap_servers))
        self._report(RUNNING)

    def _serve_health(self) -> None:
        # Once per worker process: a SIGHUP restart keeps the endpoint. It is
        # private (an ephemeral port on the loopback): the parent process reads
        # it and serves the daemon's [metrics] endpoint.
        if self._health is None and self.conf.metrics.enabled:
            self._metrics = BridgeMetrics(lambda: dict(self.pumps), self._lag)
            self._health = HealthServer("127.0.0.1", 0, self._metrics, self.ready)
            self._health.start()
        self._report(STARTING)

    def _report(self, state: str) -> None:
        if self._reporter is None:
            return
        final = None
        if state == STOPPED and self._metrics is not None:
            final = generate_latest(self._metrics.registry).decode()
        self._reporter.report(state, self._health.port if self._health else None, final)

    def ready(self) -> bool:
        """Both sides connected and no direction in backpressure (for /readyz)."""
        return self._ready and not any(p.stats.backpressure for p in self.pumps.values())

    def _lag(self) -> dict[tuple[str, int], int]:
        lag: dict[tuple[str, int], int] = {}
        for _, source in self._sources:
            if isinstance(source, KafkaSource):
                lag.update(source.lag())
        return lag

    def _wait_for_kafka(self, settings: KafkaSettings) -> bool:
        """Block until Kafka accepts a connection or stop() is called; False if stopped.

        Failing instead would make the service manager respawn the worker in
        a tight loop; waiting keeps one clear log line per change of cause.
        """
        reported = None
        attempt = 0
        while not self._stopping.is_set():
            try:
                check_connection(settings)
            except KafkaBridgeError as exc:
                attempt += 1
                if str(exc) != reported:
                    reported = str(exc)
                    LOG.error("waiting for Kafka: %s", exc)
                self._stopping.wait(backoff(attempt) if exc.retriable else AUTH_RETRY_INTERVAL)
                continue
            if reported is not None:
                LOG.info("Kafka reachable")
            return True
        return False

    def _run(self, name: str, source: Source[Message], route: Route[Message, Record],
             sink: Sink[Record]) -> None:
        latency = self._metrics.observer(name) if self._metrics is not None else None
        pump: Pump[Message, Record] = Pump(name, route, sink, latency)
        self.pumps[name] = pump
        # Registered first: stop() must reach a source still connecting.
        self._sources.append((name, source))
        source.start(pump.handle)

    def stop(self, graceful: bool = False) -> None:
        """Stop taking messages, settle those in flight, release; bounded in time.

        In-flight messages get shutdown_timeout seconds to be confirmed;
        then they go back to their sources. Returns within shutdown_timeout
        + STOP_LIMIT seconds whatever is down: a source or connection that
        does not finish in time is left behind (see kafka_bridge.daemon.shutdown).
        Safe to call twice; start() may follow (SIGHUP restarts the service
        with the reloaded configuration).
        """
        self._stopping.set()
        self._ready = False
        sources, closers, local = self._sources, self._closers, self._local
        self._sources, self._closers, self._local = [], [], None
        if sources or local is not None:
            shutdown_timeout = self.conf.kafka_bridge.shutdown_timeout
            limit = Deadline(shutdown_timeout + STOP_LIMIT)
            give_up = threading.Timer(shutdown_timeout, self._give_up)
            give_up.daemon = True
            give_up.start()
            finish_within([(f"stopping the {name} source", source.stop)
                           for name, source in sources],
                          shutdown_timeout + STOP_GRACE)
            give_up.cancel()
            releases = [(f"releasing the {name} source", source.cleanup)
                        for name, source in sources]
            releases += closers
            if local is not None:
                releases.append(("closing the local transport", local.cleanup))
            finish_within(releases, limit.slice(RELEASE_TIMEOUT))
            LOG.info("kafka-bridge stopped: %s",
                     {n: vars(p.stats) for n, p in self.pumps.items()})
        self._report(STOPPED)
        super().stop(graceful)

    def _give_up(self) -> None:
        LOG.warning("shutdown_timeout passed: unconfirmed messages go back to their sources")
        for pump in self.pumps.values():
            pump.stop()


def settle_heap() -> None:
    """Take what start-up built out of the cyclic garbage collector's sight.

    The libraries' modules, the configuration and the connections live as
    long as the worker; left in the collector's oldest generation, every full
    collection walks them again (measured: about 5 µs of CPU per forwarded
    notification). Start-up's garbage is collected first, so none is kept.
    """
    gc.collect()
    gc.freeze()
