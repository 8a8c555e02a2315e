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
                                            make_conf, unread_options, validate)
    try:
        conf = make_conf(argv)
        check_values(conf)
    except (cfg.Error, BridgeConfigError) as exc:
        print(f"kafka-bridge: configuration error: {exc}", file=sys.stderr)
        return 2
    bound_exit(conf)
    oslo_logging.setup(conf, "kafka-bridge")
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
    launcher = service.launch(conf, BridgeService(conf), restart_method="mutate")
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
