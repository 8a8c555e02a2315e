"""``kafka-bridge --config-file F [--config-dir D]``: the daemon's entry point."""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from oslo_config import cfg

    from kafka_bridge.daemon.metrics import HealthServer
    from kafka_bridge.daemon.workers import WorkerRegistry


def serve_daemon_endpoint(conf: cfg.ConfigOpts, workers: WorkerRegistry) -> HealthServer:
    """The parent's [metrics] endpoint: every worker's metrics summed, ready when all are.

    Raises OSError if the port cannot be bound. Forked workers close their
    inherited copy of the listening socket.
    """
    from oslo_log import log as logging

    from kafka_bridge.daemon.metrics import DaemonMetrics, HealthServer
    metrics = DaemonMetrics(workers.expositions, workers.running, workers.expected)
    server = HealthServer(conf.metrics.host, conf.metrics.port, metrics, workers.ready)
    os.register_at_fork(after_in_child=server.forget)
    server.start()
    logging.getLogger(__name__).info("metrics and health on http://%s:%d/metrics",
                                     conf.metrics.host, server.port)
    return server


def main(argv: list[str] | None = None) -> int:
    """Run the bridge until SIGTERM; exit 2 with the reason on bad configuration.

    ``kafka-bridge replay|tail|check ...`` runs that operator tool instead.

    This process is the parent: oslo.service's launcher forks [kafka_bridge]
    workers worker processes from it and restarts any that exits. It serves
    the daemon's metrics and health endpoint and sends systemd READY=1 once
    every worker is running (the launcher would send it at once: it is kept
    from seeing NOTIFY_SOCKET).
    """
    # oslo.service falls back to eventlet for good as soon as anything imports
    # oslo.messaging; the threading backend must be chosen first, so the
    # daemon's own modules are imported only after this.
    from oslo_service import backend
    backend.init_backend(backend.BackendType.THREADING)

    argv = sys.argv[1:] if argv is None else argv
    from kafka_bridge.operator import COMMANDS
    if argv and argv[0] in COMMANDS:
        from kafka_bridge.operator.cli import main as operator_main
        return operator_main(argv)

    from oslo_config import cfg
    from oslo_log import log as logging

    from kafka_bridge.daemon.config import BridgeConfigError, make_conf, validate, worker_count
    try:
        conf = make_conf(argv)
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

    from oslo_service import service

    from kafka_bridge.daemon.service import BridgeService
    from kafka_bridge.daemon.workers import WorkerRegistry
    workers = WorkerRegistry(worker_count(conf), os.environ.pop("NOTIFY_SOCKET", None))
    workers.start()
    if conf.metrics.enabled:
        try:
            serve_daemon_endpoint(conf, workers)
        except OSError as exc:
            print(f"kafka-bridge: cannot serve metrics on {conf.metrics.host}:"
                  f"{conf.metrics.port} ([metrics] host, port): {exc}", file=sys.stderr)
            return 2
    launcher = service.launch(conf, BridgeService(conf, workers.reporter()),
                              workers=workers.expected, restart_method="mutate")
    return launcher.wait() or 0


if __name__ == "__main__":
    sys.exit(main())
