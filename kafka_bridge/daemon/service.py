"""The bridge as an oslo.service service: wires sources, pumps and sinks per mode."""

from __future__ import annotations

import logging
import threading
from typing import Any

import oslo_messaging
from oslo_config import cfg
from oslo_service import service, systemd

from kafka_bridge.daemon import mapping, rabbit
from kafka_bridge.daemon.forward import ForwardRoute
from kafka_bridge.daemon.rabbit import RabbitNotificationSource, RabbitSink
from kafka_bridge.daemon.metrics import BridgeMetrics, HealthServer
from kafka_bridge.daemon.reverse import KafkaSource, ReverseRoute
from kafka_bridge.kafka.connectivity import check_connection
from kafka_bridge.kafka.consumer import Subscription
from kafka_bridge.kafka.errors import ConfigurationError, KafkaBridgeError
from kafka_bridge.kafka.producer import Publisher
from kafka_bridge.kafka.settings import KafkaSettings
from kafka_bridge.pump import Pump
from kafka_bridge.retry import backoff

LOG = logging.getLogger(__name__)

#: seconds between connection checks while Kafka refuses our credentials
AUTH_RETRY_INTERVAL = 30.0


class BridgeConfigError(ValueError):
    """The configuration cannot work; the message names the option and the fix."""


def kafka_settings(conf: cfg.ConfigOpts) -> KafkaSettings:
    """Kafka settings from [kafka_bridge] kafka_url; raises BridgeConfigError."""
    url = conf.kafka_bridge.kafka_url
    if not url:
        raise BridgeConfigError("[kafka_bridge] kafka_url is not set; set it to the "
                                "kafka-notify://host:port/ URL of your Kafka cluster")
    try:
        return KafkaSettings.from_transport_url(conf, oslo_messaging.TransportURL.parse(conf, url))
    except (ConfigurationError, ValueError, oslo_messaging.InvalidTransportURL) as exc:
        raise BridgeConfigError(f"[kafka_bridge] kafka_url: {exc}") from None


def validate(conf: cfg.ConfigOpts) -> None:
    """Check what can be checked without a broker; raises BridgeConfigError."""
    kafka_settings(conf)
    local = oslo_messaging.get_notification_transport(conf)
    try:
        rabbit.rabbit_driver(local)
    except ValueError as exc:
        raise BridgeConfigError(str(exc)) from None
    finally:
        local.cleanup()
    mode = conf.kafka_bridge.mode
    if mode in ("forward", "both"):
        try:
            mapping.check_template(conf.forward.topic_template)
        except ValueError as exc:
            raise BridgeConfigError(str(exc)) from None
        unknown = set(conf.forward.priorities) - set(mapping.PRIORITIES)
        if unknown:
            raise BridgeConfigError(f"[forward] priorities: unknown {sorted(unknown)}; "
                                    f"choose from {', '.join(mapping.PRIORITIES)}")
    if mode in ("reverse", "both"):
        if not conf.reverse.kafka_topics:
            raise BridgeConfigError(f"mode={mode} needs [reverse] kafka_topics, the Kafka "
                                    f"topics to feed to local listeners")
        try:
            mapping.parse_start_from(conf.reverse.start_from)
        except ValueError as exc:
            raise BridgeConfigError(str(exc)) from None


class BridgeService(service.Service):
    """Runs the configured directions; ready once both sides are connected."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__()
        self.conf = conf
        self.pumps: dict[str, Pump[Any]] = {}
        self._sources: list[Any] = []
        self._closers: list[Any] = []
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
                                        mapping.parse_start_from(conf.reverse.start_from))
            sink = RabbitSink(self._local)
            self._closers.append(sink.close)
            self._run("reverse", ReverseRoute(conf.reverse.exchange), sink,
                      KafkaSource(subscription, *batch))
        if mode in ("forward", "both"):
            publisher = Publisher(settings)
            self._closers.append(publisher.close)
            try:
                publisher.connect()
            except KafkaBridgeError as exc:  # the first batch will try again
                LOG.warning("forward: Kafka producer not connected yet: %s", exc)
            route = ForwardRoute(
                settings, conf.forward.topic_template,
                mapping.EventFilter(conf.forward.include_event_types,
                                    conf.forward.exclude_event_types),
                conf.forward.output_format, conf.forward.dead_letter_topic)
            self._run("forward", route, publisher, RabbitNotificationSource(
                self._local, conf.forward.exchanges, conf.forward.topics,
                conf.forward.priorities, conf.forward.pool, *batch))
        self._ready = True
        LOG.info("kafka-bridge running: mode %s, Kafka %s", mode,
                 ",".join(settings.bootstrap_servers))
        systemd.notify_once()

    def _serve_health(self) -> None:
        # Once per worker process: a SIGHUP restart keeps the endpoint.
        if self._health is not None or not self.conf.metrics.enabled:
            return
        self._metrics = BridgeMetrics(lambda: dict(self.pumps), self._lag)
        self._health = HealthServer(self.conf.metrics.host, self.conf.metrics.port,
                                    self._metrics, self.ready)
        self._health.start()

    def ready(self) -> bool:
        """Both sides connected and no direction in backpressure (for /readyz)."""
        return self._ready and not any(p.stats.backpressure for p in self.pumps.values())

    def _lag(self) -> dict[tuple[str, int], int]:
        lag: dict[tuple[str, int], int] = {}
        for source in self._sources:
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

    def _run(self, name: str, route: Any, sink: Any, source: Any) -> None:
        latency = self._metrics.observer(name) if self._metrics is not None else None
        pump: Pump[Any] = Pump(name, route, sink, latency)
        self.pumps[name] = pump
        source.start(pump.handle)
        self._sources.append(source)

    def stop(self, graceful: bool = False) -> None:
        """Stop taking messages, settle those in flight, release; bounded in time.

        In-flight messages get shutdown_timeout seconds to be confirmed;
        then they go back to their sources. Safe to call twice; start() may
        follow (SIGHUP restarts the service with the reloaded configuration).
        """
        self._stopping.set()
        self._ready = False
        if not self._sources and self._local is None:
            return
        give_up = threading.Timer(self.conf.kafka_bridge.shutdown_timeout, self._give_up)
        give_up.daemon = True
        give_up.start()
        for source in self._sources:
            source.stop()
        give_up.cancel()
        for source in self._sources:
            source.cleanup()
        for close in self._closers:
            close()
        if self._local is not None:
            self._local.cleanup()
        self._sources, self._closers, self._local = [], [], None
        LOG.info("kafka-bridge stopped: %s", {n: vars(p.stats) for n, p in self.pumps.items()})
        super().stop(graceful)

    def _give_up(self) -> None:
        LOG.warning("shutdown_timeout passed: unconfirmed messages go back to their sources")
        for pump in self.pumps.values():
            pump.stop()
