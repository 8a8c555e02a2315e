"""``kafka-bridge --config-file F [--config-dir D]``: the daemon's entry point."""

from __future__ import annotations

import sys

# oslo.service still defaults to eventlet; the threading backend must be
# chosen before anything imports oslo_service.service.
from oslo_service import backend

backend.init_backend(backend.BackendType.THREADING)

from oslo_config import cfg  # noqa: E402
from oslo_log import log as logging  # noqa: E402
from oslo_messaging._drivers import impl_rabbit  # noqa: E402
from oslo_service import service  # noqa: E402

from kafka_bridge.daemon import options  # noqa: E402
from kafka_bridge.daemon.service import BridgeConfigError, BridgeService, validate  # noqa: E402
from kafka_bridge.kafka import options as kafka_options  # noqa: E402

LOG = logging.getLogger(__name__)


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
    conf.register_opts(impl_rabbit.rabbit_opts, group="oslo_messaging_rabbit")
    conf.set_default("rabbit_qos_prefetch_count", 1000, group="oslo_messaging_rabbit")
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
    try:
        validate(conf)
    except BridgeConfigError as exc:
        LOG.error("configuration error: %s", exc)
        print(f"kafka-bridge: configuration error: {exc}", file=sys.stderr)
        return 2
    launcher = service.launch(conf, BridgeService(conf), restart_method="mutate")
    return launcher.wait() or 0


if __name__ == "__main__":
    sys.exit(main())
