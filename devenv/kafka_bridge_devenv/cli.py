"""The ``kafka-bridge-devenv`` command."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from kafka_bridge_devenv import environment
from kafka_bridge_devenv.processes import DevenvError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kafka-bridge-devenv",
        description="Start real local Apache Kafka and RabbitMQ brokers for development "
                    "and tests. Use: eval \"$(kafka-bridge-devenv start --dir DIR)\"")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start the brokers and print export lines")
    start.add_argument("--dir", required=True, type=Path,
                       help="directory for data, logs, state and the env file")
    start.add_argument("--kafka-nodes", type=int, choices=(1, 3), default=1)
    start.add_argument("--kafka-security", choices=environment.SECURITY_MODES,
                       default="plaintext")
    start.add_argument("--no-rabbit", action="store_true", help="do not start RabbitMQ")
    start.add_argument("--no-kafka", action="store_true", help="do not start Kafka")
    for name, text in (("stop", "stop the processes that start launched"),
                       ("status", "show the processes that start launched")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--dir", required=True, type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; exit status 1 with a one-paragraph reason on failure."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "start":
            began = time.monotonic()
            options = environment.StartOptions(
                kafka_nodes=args.kafka_nodes, kafka_security=args.kafka_security,
                rabbit=not args.no_rabbit, kafka=not args.no_kafka)
            exports = environment.start(args.dir, options)
            print(f"# devenv started in {time.monotonic() - began:.1f}s; "
                  f"stop with: kafka-bridge-devenv stop --dir {args.dir}")
            print(environment.format_exports(exports), end="")
        elif args.command == "stop":
            stopped = environment.stop(args.dir)
            print(f"stopped {len(stopped)} process(es)" if stopped else "nothing to stop")
        else:
            rows = environment.status(args.dir)
            for record, running in rows:
                print(f"{record.name:10} pid {record.pid:<8} "
                      f"{'running' if running else 'stopped'}  log {record.log}")
            if not rows:
                print("nothing started in", args.dir)
            return 0 if rows and all(running for _, running in rows) else 3
    except DevenvError as exc:
        print(f"kafka-bridge-devenv {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
