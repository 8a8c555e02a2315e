"""``kafka-bridge --config-file F [--config-dir D]``: the daemon's entry point.

``kafka-bridge replay|tail|check ...`` runs an operator tool instead.

The daemon and the tools run on threads. oslo.service settles its backend
the first time oslo.messaging is imported (eventlet unless told otherwise),
and futurist imports eventlet merely to learn whether it is installed;
either prints eventlet's deprecation warning. So this module imports
neither: ``main`` chooses the threading backend and keeps eventlet out of
the process first, then imports the rest.
"""

from __future__ import annotations

import faulthandler
import logging
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


def run_on_threads() -> None:
    """Select oslo.service's threading backend and make ``import eventlet`` fail.

    Call before anything imports oslo.messaging or oslo_service.service.
    """
    # A None entry makes `import eventlet` raise ImportError: futurist and
    # oslo.utils then take their eventlet-free paths.
    sys.modules.setdefault("eventlet", None)  # type: ignore[arg-type]
    from oslo_service import backend
    backend.init_backend(backend.BackendType.THREADING)


def main(argv: list[str] | None = None) -> int:
    """Run the bridge until SIGTERM; exit 2 with the reason on bad configuration.

    ``kafka-bridge replay|tail|check ...`` runs that operator tool instead.
    Once the bridge ran, the process ends here (os._exit) rather than returning.

    This process is the parent: oslo.service's launcher forks [kafka_bridge]
    workers worker processes from it and restarts any that exits. It serves
    the daemon's metrics and health endpoint and sends systemd READY=1 once
    every worker is running (the launcher would send it at once: it is kept
    from seeing NOTIFY_SOCKET).
    """
    run_on_threads()
    argv = sys.argv[1:] if argv is None else argv
    from kafka_bridge.operator import COMMANDS
    if argv and argv[0] in COMMANDS:
        from kafka_bridge.operator.cli import main as operator_main
        return operator_main(argv)

    from oslo_config import cfg
    from oslo_log import log as oslo_logging

    # Before the modules that use a library internal are imported: a name
    # missing at their import would otherwise end in a traceback.
    from kafka_bridge.compat.verify import LibraryMismatch, verify
    try:
        verify()
    except LibraryMismatch as exc:
        print(f"kafka-bridge: {exc}", file=sys.stderr)
        return 2

    from kafka_bridge.daemon.config import (BridgeConfigError, bound_exit, check_values,
                                            make_conf, unread_options, validate,
                                            worker_count)
    try:
        conf = make_conf(argv)
        check_values(conf)
    except (cfg.Error, BridgeConfigError) as exc:
        print(f"kafka-bridge: configuration error: {exc}", file=sys.stderr)
        return 2
    bound_exit(conf)
    oslo_logging.setup(conf, "kafka-bridge")
    from kafka_bridge.kafka.library_logs import limit_repeats
    limit_repeats(logging.getLogger())
    log = oslo_logging.getLogger("kafka_bridge.daemon.config")
    for warning in unread_options(conf):
        log.warning("%s", warning)
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
    try:
        status = launcher.wait() or 0
    except SystemExit as done:  # cotyledon's master ends so once its workers are gone
        status = done.code if isinstance(done.code, int) else 1
    # The workers are gone and nothing is left to finalise, but Python's own
    # teardown of the libraries loaded (oslo, kafka-python) took up to 1.2 s
    # on a loaded machine: beyond the stop's bound (shutdown_timeout + 2 s).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
