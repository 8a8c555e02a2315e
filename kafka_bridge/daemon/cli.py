"""``kafka-bridge --config-file F [--config-dir D]``: the daemon's entry point."""

from __future__ import annotations

import faulthandler
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the bridge until SIGTERM; exit 2 with the reason on bad configuration.

    ``kafka-bridge replay|tail|check ...`` runs that operator tool instead.
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

    # Before the modules that use a library internal are imported: a name
    # missing at their import would otherwise end in a traceback.
    from kafka_bridge.compat.verify import LibraryMismatch, verify
    try:
        verify()
    except LibraryMismatch as exc:
        print(f"kafka-bridge: {exc}", file=sys.stderr)
        return 2

    from kafka_bridge.daemon.config import BridgeConfigError, make_conf, validate
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
    launcher = service.launch(conf, BridgeService(conf), restart_method="mutate")
    return launcher.wait() or 0


if __name__ == "__main__":
    sys.exit(main())
