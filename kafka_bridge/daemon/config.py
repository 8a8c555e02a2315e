"""Checking the daemon's configuration before anything connects.

Free of service imports, so the command line, the service and the tests can
all validate a configuration the same way.
"""

from __future__ import annotations

import datetime
import os

import oslo_messaging
from oslo_config import cfg
from oslo_log import log as logging

from kafka_bridge.daemon import options
from kafka_bridge.kafka import options as kafka_options
from kafka_bridge.kafka.errors import ConfigurationError
from kafka_bridge.kafka.settings import KafkaSettings
from kafka_bridge.notification import PRIORITIES, parse_time
from kafka_bridge.pump.routes.topic_template import check_template
from kafka_bridge.rabbit import settings as rabbit_settings

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

#: the daemon's default for [oslo_messaging_kafka_notify] delivery_timeout (seconds)
DAEMON_DELIVERY_TIMEOUT = 10.0

#: the daemon's defaults for [oslo_messaging_kafka_notify] linger_ms and batch_size
DAEMON_LINGER_MS = 5
DAEMON_BATCH_SIZE = 1048576


class BridgeConfigError(ValueError):
    """The configuration cannot work; the message names the option and the fix."""


def make_conf(argv: list[str]) -> cfg.ConfigOpts:
    """Parse argv (oslo.config command line) into a fully registered ConfigOpts.

    Raises cfg.Error for a bad command line or unreadable file.
    """
    conf = cfg.ConfigOpts()
    logging.register_options(conf)
    # kafka-python logs every connection and rebalance at INFO
    logging.set_defaults(default_log_levels=logging.get_default_log_levels() + ["kafka=WARN"])
    options.register(conf)
    kafka_options.register(conf)
    # A bounded prefetch is what bounds memory while Kafka is down: RabbitMQ
    # keeps the rest. oslo's default, 0, means unlimited.
    rabbit_settings.register_options(conf)
    conf.set_default("rabbit_qos_prefetch_count", 1000, group="oslo_messaging_rabbit")
    # One delivery attempt gives up after this long, so a Kafka outage shows
    # (backpressure log, readiness) within 10 s instead of the driver's 30 s.
    conf.set_default("delivery_timeout", DAEMON_DELIVERY_TIMEOUT, group=kafka_options.GROUP)
    # A forwarded batch arrives in a burst: lingering lets it share few record batches,
    # so kafka-python wakes its sender and the brokers handle produce requests per
    # batch, not per record (measured: tools/profile_bridge.py).
    conf.set_default("linger_ms", DAEMON_LINGER_MS, group=kafka_options.GROUP)
    conf.set_default("batch_size", DAEMON_BATCH_SIZE, group=kafka_options.GROUP)
    conf(argv, project="kafka-bridge", prog="kafka-bridge")
    return conf


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


def parse_start_from(value: str) -> str | int:
    """``[reverse] start_from``: committed / earliest / latest, or a time as epoch milliseconds.

    Raises ValueError naming the accepted forms.
    """
    if value in ("committed", "earliest", "latest"):
        return value
    try:
        moment = parse_time(value)
    except ValueError:
        raise ValueError(f"[reverse] start_from={value!r} is not committed, earliest, latest "
                         f"or an ISO 8601 time such as 2026-11-24T12:00:00Z") from None
    return (moment - EPOCH) // datetime.timedelta(milliseconds=1)


def worker_count(conf: cfg.ConfigOpts) -> int:
    """``[kafka_bridge] workers`` as a number: auto is the CPUs this process may run on.

    Raises BridgeConfigError naming the accepted values.
    """
    value = conf.kafka_bridge.workers.strip().lower()
    if value == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise BridgeConfigError(f"[kafka_bridge] workers={conf.kafka_bridge.workers!r} is "
                                f"neither a number of processes (1 or more) nor auto")
    return count


def validate(conf: cfg.ConfigOpts) -> None:
    """Check what can be checked without a broker; raises BridgeConfigError."""
    kafka_settings(conf)
    worker_count(conf)
    local = oslo_messaging.get_notification_transport(conf)
    try:
        rabbit_settings.RabbitSettings.from_transport(local)
    except ValueError as exc:
        raise BridgeConfigError(str(exc)) from None
    finally:
        local.cleanup()
    mode = conf.kafka_bridge.mode
    if mode in ("forward", "both"):
        try:
            check_template(conf.forward.topic_template)
        except ValueError as exc:
            raise BridgeConfigError(str(exc)) from None
        unknown = set(conf.forward.priorities) - set(PRIORITIES)
        if unknown:
            raise BridgeConfigError(f"[forward] priorities: unknown {sorted(unknown)}; "
                                    f"choose from {', '.join(PRIORITIES)}")
    if mode in ("reverse", "both"):
        if not conf.reverse.kafka_topics:
            raise BridgeConfigError(f"mode={mode} needs [reverse] kafka_topics, the Kafka "
                                    f"topics to feed to local listeners")
        try:
            parse_start_from(conf.reverse.start_from)
        except ValueError as exc:
            raise BridgeConfigError(str(exc)) from None
