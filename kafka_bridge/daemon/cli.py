"""``kafka-bridge --config-file F [--config-dir D]``: the daemon's entry point."""

from __future__ import annotations

import faulthandler
import signal
import sys

from oslo_config import cfg
from oslo_log import log as logging

from kafka_bridge.compat import oslo_messaging as oslo_compat
from kafka_bridge.daemon import options
from kafka_bridge.daemon.config import BridgeConfigError, validate
from kafka_bridge.kafka import options as kafka_options

LOG = logging.getLogger(__name__)

DAEMON_DELIVERY_TIMEOUT = 10.0


def make_conf(argv: list[str]) -> cfg.ConfigOpts:
    """Parse argv (oslo.config command line) into a fully registered ConfigOpts."""
    conf = cfg.ConfigOpts()
    logging.register_options(conf)
    # kafka-python logs every connection and rebalance at INFO
    logging.set_defaults(default_log_levels=logging.get_default_log_levels() + ["kafka=WARN"])
    options.register(conf)
    kafka_options.register(conf)
    # A bounded prefetch is what bounds memory while Kafka is down: RabbitMQ
    # keeps the rest. oslo's default, 0, means unlimited.
    oslo_compat.register_rabbit_opts(conf)
    conf.set_default("rabbit_qos_prefetch_count", 1000, group="oslo_messaging_rabbit")
    # One delivery attempt gives up after this long, so a Kafka outage shows
    # (backpressure log, readiness) within 10 s instead of the driver's 30 s.
    conf.set_default("delivery_timeout", DAEMON_DELIVERY_TIMEOUT, group=kafka_options.GROUP)
    conf(argv, project="kafka-bridge", prog="kafka-bridge")
    return conf


def main(argv: list[str] | None = None) -> int:
    """Run the bridge until SIGTERM; exit 2 with the reason on bad configuration."""
    try:
        conf = make_conf(sys.argv[1:] if argv is None else argv)
    except cfg.Error as exc:
        print(f"kafka-bridge: {exc}", file=sys.stderr)
        return 2
    logging.setup(conf, "kafka-bridge")
    # `kill -USR2 <pid>` prints every thread's stack to stderr, for diagnosing a stuck bridge.
    faulthandler.register(signal.SIGUSR2, all_threads=True)
    try:
        validate(conf)
    except BridgeConfigError as exc:
        print(f"kafka-bridge: configuration error: {exc}", file=sys.stderr)
        return 2
    # oslo.service still defaults to eventlet; the threading backend must be
    # chosen before anything imports oslo_service.service.
    from oslo_service import backend
    backend.init_backend(backend.BackendType.THREADING)
    from oslo_service import service

    from kafka_bridge.daemon.service import BridgeService
    launcher = service.launch(conf, BridgeService(conf), restart_method="mutate")
    return launcher.wait() or 0


if __name__ == "__main__":
    sys.exit(main())
