"""``kafka-bridge replay|tail|check``: argument parsing and dispatch of the operator tools.

Each tool reads the daemon's configuration (``--config-file``,
``--config-dir``, oslo.config's default locations otherwise) and checks it
as the daemon does. Exit codes: 0 done, 1 a broker failed, 2 bad arguments
or configuration, 130 interrupted (replay; tail ends with 0 on Ctrl-C);
check has its own (``kafka-bridge check --help``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import shlex
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TextIO

import oslo_messaging
from oslo_config import cfg

from kafka_bridge.daemon.config import BridgeConfigError, kafka_settings, make_conf, validate
from kafka_bridge.kafka.errors import KafkaBridgeError
from kafka_bridge.operator import check, formats
from kafka_bridge.operator.destinations import (CountingDestination, Destination,
                                                LocalDestination, StreamDestination)
from kafka_bridge.operator.progress import Progress
from kafka_bridge.operator.reader import GrouplessReader
from kafka_bridge.operator.replay import Positions, Replay, ReplayResult, write_summary
from kafka_bridge.operator.selection import Selection
from kafka_bridge.operator.tail import follow
from kafka_bridge.operator.window import (RELATIVE, TIME_FORMS, Window, format_ms,
                                          parse_time)

LOG = logging.getLogger("kafka_bridge.operator")

EXIT_OK, EXIT_BROKER, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: options whose value is a TIME, possibly relative (-2h)
TIME_OPTIONS = ("--from", "--until")

#: replay options that the printed resume command leaves out (the position file replaces them)
WINDOW_OPTIONS = ("--from", "--until", "--topic", "--resume")


class UsageError(Exception):
    """Arguments or configuration that cannot work; the message says what to change."""


def _config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-file", action="append", default=[], metavar="PATH",
                        help="configuration file of the daemon (repeatable; default: "
                             "oslo.config's locations, e.g. /etc/kafka-bridge/"
                             "kafka-bridge.conf)")
    parser.add_argument("--config-dir", metavar="DIR",
                        help="directory of further *.conf files, as for the daemon")
    parser.add_argument("--verbose", action="store_true",
                        help="log what the tool does (INFO) on stderr; default: warnings only")


def _selection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", action="append", default=[], metavar="TOPIC",
                        help="Kafka topic to read (repeatable; default: [reverse] "
                             "kafka_topics of the configuration)")
    parser.add_argument("--event-type", action="append", default=[], metavar="PATTERN",
                        help="only notifications whose event type matches this shell "
                             "pattern, e.g. 'compute.instance.*' (repeatable: any of them)")
    parser.add_argument("--publisher-id", action="append", default=[], metavar="PATTERN",
                        help="only notifications whose publisher id matches this shell "
                             "pattern, e.g. 'nova-compute.*' (repeatable: any of them)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``kafka-bridge replay|tail|check``."""
    parser = argparse.ArgumentParser(
        prog="kafka-bridge", allow_abbrev=False,
        description="Operator tools of kafka-bridge. The daemon itself runs as "
                    "'kafka-bridge --config-file F'.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    replay = commands.add_parser(
        "replay", allow_abbrev=False, help="put the notifications of a time window back",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Replay the Kafka records stamped within a time window, once: to the "
                    "local transport (republished exactly as reverse mode does) or as JSON "
                    "lines. Reads without a consumer group: a running daemon's offsets are "
                    "never touched. Stops when every partition reached the window's end "
                    "and prints a summary per topic.",
        epilog=f"TIME is {TIME_FORMS}.\n\n"
               "Ctrl-C stops after the batch in hand, saves the positions reached to a "
               "file and prints the command that resumes from it (exit 130). Exit 0: the "
               "whole window was replayed; 1: a broker failed (once reading had begun, "
               "positions are saved as for Ctrl-C); 2: bad arguments or configuration.\n\n"
               "example: kafka-bridge replay --config-file /etc/kafka-bridge/kafka-bridge.conf"
               " --from 2026-11-24T12:00Z --until 2026-11-24T12:30Z --event-type 'compute.*'")
    _config_options(replay)
    replay.add_argument("--from", dest="start", metavar="TIME",
                        help="start of the window (required unless --resume)")
    replay.add_argument("--until", metavar="TIME",
                        help="end of the window, excluded (default: now, as the replay "
                             "starts)")
    _selection_options(replay)
    replay.add_argument("--output", choices=("local", "jsonl"), default="local",
                        help="local: republish on the local transport ([DEFAULT] "
                             "transport_url) as reverse mode does (default); jsonl: one JSON "
                             "object per notification")
    replay.add_argument("--output-file", metavar="PATH",
                        help="with --output jsonl: write to PATH instead of stdout")
    replay.add_argument("--dry-run", action="store_true",
                        help="read and count what would be replayed; publish nothing")
    replay.add_argument("--max-rate", type=float, metavar="N",
                        help="deliver at most N notifications per second (default: as fast "
                             "as the destination confirms)")
    replay.add_argument("--resume", metavar="FILE",
                        help="continue an interrupted replay from its position file (the "
                             "window and topics come from the file)")
    replay.add_argument("--position-file", metavar="PATH",
                        help="where an interrupted replay saves its positions (default: "
                             "kafka-bridge-replay-<time>.positions.json in the current "
                             "directory, else the temporary directory)")
    replay.add_argument("--progress", choices=("auto", "bar", "lines", "none"),
                        default="auto",
                        help="progress on stderr: a bar on a terminal, a line every 10 s "
                             "otherwise (auto, default), or as chosen")

    tail = commands.add_parser(
        "tail", allow_abbrev=False, help="follow topics live, a line per notification",
        description="Print notifications as they arrive in Kafka (or from --from on) until "
                    "Ctrl-C or --count. Reads without a consumer group.",
        epilog=f"TIME is {TIME_FORMS}. Exit 0 after --count notifications or Ctrl-C.")
    _config_options(tail)
    _selection_options(tail)
    tail.add_argument("--from", dest="start", metavar="TIME",
                      help="start with the records stamped at TIME (default: only new ones)")
    tail.add_argument("--count", type=int, metavar="N",
                      help="stop after N notifications (default: until Ctrl-C)")
    tail.add_argument("--output", choices=formats.FORMATS, default="text",
                      help="text: time priority event_type publisher and key payload fields "
                           "(default); jsonl: one JSON object per notification")

    codes = "\n".join(f"  {code}  {text}" for code, text in check.EXIT_CODES.items())
    checker = commands.add_parser(
        "check", allow_abbrev=False, help="check a configuration and both brokers",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Validate the configuration as the daemon does (and report options "
                    "in the wrong section), connect to RabbitMQ and Kafka with the "
                    "configured credentials, look for the forward exchanges and queues and "
                    "the reverse topics, and print a table. Changes nothing unless "
                    "--create-topics is given.",
        epilog=f"exit codes (the first problem found):\n{codes}")
    _config_options(checker)
    checker.add_argument("--create-topics", action="store_true",
                         help="create missing reverse topics ([oslo_messaging_kafka_notify] "
                              "topic_partitions, topic_replication_factor)")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run one tool; argv starts with its name. Returns the exit code."""
    args = build_parser().parse_args(joined_relative_times(argv))
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if args.verbose else logging.WARNING,
                        format=f"kafka-bridge {args.command}: %(levelname)s %(message)s")
    if not args.verbose:
        logging.getLogger("kafka").setLevel(logging.ERROR)
    try:
        conf = _configuration(args)
        if args.command == "check":
            return _check(conf, args)
        _validated(conf)
        if args.command == "replay":
            return _replay(conf, args, list(argv))
        return _tail(conf, args)
    except UsageError as exc:
        print(f"kafka-bridge {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KafkaBridgeError as exc:
        print(f"kafka-bridge {args.command}: {exc}", file=sys.stderr)
        return EXIT_BROKER


def joined_relative_times(argv: Sequence[str]) -> list[str]:
    """argv with ``--from -2h`` written ``--from=-2h``: argparse takes a value that
    starts with '-' for an option."""
    joined: list[str] = []
    for arg in argv:
        if joined and joined[-1] in TIME_OPTIONS and RELATIVE.match(arg):
            joined[-1] = f"{joined[-1]}={arg}"
        else:
            joined.append(arg)
    return joined


def _configuration(args: argparse.Namespace) -> cfg.ConfigOpts:
    oslo_args = [a for path in args.config_file for a in ("--config-file", path)]
    if args.config_dir:
        oslo_args += ["--config-dir", args.config_dir]
    try:
        return make_conf(oslo_args)
    except cfg.Error as exc:
        raise UsageError(str(exc)) from None


def _validated(conf: cfg.ConfigOpts) -> None:
    """validate(conf) as the daemon does; UsageError naming the problem."""
    try:
        validate(conf)
    except BridgeConfigError as exc:
        raise UsageError(f"configuration error: {exc}") from None


def _time(text: str) -> int:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _topics(args: argparse.Namespace, conf: cfg.ConfigOpts) -> list[str]:
    topics = list(args.topic) or list(conf.reverse.kafka_topics)
    if not topics:
        raise UsageError("no topic: give --topic or set [reverse] kafka_topics")
    return topics


# replay ------------------------------------------------------------------------


def _replay(conf: cfg.ConfigOpts, args: argparse.Namespace, argv: list[str]) -> int:
    positions, window, topics = _replay_window(conf, args)
    if args.output_file and args.output != "jsonl":
        raise UsageError("--output-file needs --output jsonl")
    with contextlib.ExitStack() as stack:
        destination, data_stream = _destination(conf, args, stack)
        reader = GrouplessReader(kafka_settings(conf), topics)
        stack.callback(reader.close)
        if positions is None:
            positions = Positions(window, reader.window_offsets(window))
        selection = Selection(positions.window, args.event_type, args.publisher_id)
        progress = _progress(args.progress, positions.remaining())
        replay = Replay(reader, positions, selection, destination, progress,
                        batch_size=conf.kafka_bridge.batch_size, max_rate=args.max_rate)
        print(f"kafka-bridge replay: {positions.remaining():,} records in "
              f"{len(positions.ranges)} partitions of {', '.join(sorted(set(topics)))}, "
              f"window {positions.window.describe()}", file=sys.stderr)
        code = EXIT_INTERRUPTED
        with _interrupt_stops(replay):
            try:
                result = replay.run()
            except KeyboardInterrupt:  # a second Ctrl-C: the positions are still exact
                result = replay.result()
            except KafkaBridgeError as exc:  # Kafka failed for good: resumable all the same
                print(f"kafka-bridge replay: {exc}", file=sys.stderr)
                result, code = replay.result(), EXIT_BROKER
        summary = sys.stderr if data_stream is sys.stdout else sys.stdout
        write_summary(result, destination.verb, summary)
        if result.complete:
            return EXIT_OK
        _save_for_resume(result, args, argv)
        return code


def _replay_window(conf: cfg.ConfigOpts,
                   args: argparse.Namespace) -> tuple[Positions | None, Window, list[str]]:
    """Positions of a resumed replay (else None: resolved once connected), the window,
    and the topics."""
    if args.resume:
        if args.start or args.until or args.topic:
            raise UsageError("--resume takes the window and topics from the position file: "
                             "leave out --from, --until and --topic")
        try:
            positions = Positions.load(Path(args.resume))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return positions, positions.window, sorted({tp.topic for tp in positions.ranges})
    if not args.start:
        raise UsageError("--from TIME is required (or --resume FILE)")
    try:
        window = Window(_time(args.start), _time(args.until) if args.until else None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return None, window, _topics(args, conf)


def _destination(conf: cfg.ConfigOpts, args: argparse.Namespace,
                 stack: contextlib.ExitStack) -> tuple[Destination, TextIO | None]:
    if args.dry_run:
        return CountingDestination(), None
    if args.output == "jsonl":
        stream: TextIO = sys.stdout
        if args.output_file:
            try:
                stream = stack.enter_context(open(args.output_file, "w", encoding="utf-8"))
            except OSError as exc:
                raise UsageError(f"--output-file {args.output_file}: {exc.strerror}") from None
        return StreamDestination(formats.NotificationWriter(stream, "jsonl")), stream
    transport = oslo_messaging.get_notification_transport(conf)
    stack.callback(transport.cleanup)
    local = LocalDestination(transport, conf.reverse.exchange)
    stack.callback(local.close)
    return local, None


def _progress(mode: str, total: int) -> Progress | None:
    if mode == "none":
        return None
    tty = None if mode == "auto" else mode == "bar"
    return Progress("replay", total, sys.stderr, tty=tty)


@contextlib.contextmanager
def _interrupt_stops(replay: Replay) -> Iterator[None]:
    """The first SIGINT stops the replay after the batch in hand; the second at once."""
    def interrupted(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\nkafka-bridge replay: interrupted; finishing the batch in hand (Ctrl-C "
              "again to stop at once)", file=sys.stderr, flush=True)
        replay.stop()

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _save_for_resume(result: ReplayResult, args: argparse.Namespace, argv: list[str]) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = f"kafka-bridge-replay-{stamp}.positions.json"
    candidates = [Path(args.position_file)] if args.position_file else [
        Path.cwd() / name, Path(tempfile.gettempdir()) / name]
    for path in candidates:
        try:
            result.positions.save(path)
        except OSError as exc:
            print(f"kafka-bridge replay: cannot save the positions to {path}: "
                  f"{exc.strerror}", file=sys.stderr)
            continue
        command = shlex.join(["kafka-bridge", *_without_window(argv), "--resume", str(path)])
        print(f"positions saved to {path}\nresume with: {command}", file=sys.stderr)
        return


def _without_window(argv: list[str]) -> list[str]:
    """argv without the options the position file replaces (and their values)."""
    kept: list[str] = []
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
        elif arg in WINDOW_OPTIONS:
            skip_value = True
        elif not arg.startswith(tuple(option + "=" for option in WINDOW_OPTIONS)):
            kept.append(arg)
    return kept


# tail --------------------------------------------------------------------------


def _tail(conf: cfg.ConfigOpts, args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        raise UsageError("--count must be at least 1")
    start_ms = _time(args.start) if args.start else None
    reader = GrouplessReader(kafka_settings(conf), _topics(args, conf))
    try:
        if start_ms is None:
            start = reader.end_offsets()
            window = None
        else:
            window = Window(start_ms)
            start = {tp: r.start for tp, r in reader.window_offsets(window).items()}
        # Start offsets are fixed now: whatever is produced from here on is shown.
        print(f"kafka-bridge tail: following {len(start)} partitions of "
              f"{', '.join(sorted({tp.topic for tp in start}))} from "
              f"{'now' if window is None else format_ms(window.start_ms)}"
              f"{'' if args.count is None else f' for {args.count} notifications'}; "
              f"Ctrl-C stops", file=sys.stderr, flush=True)
        writer = formats.NotificationWriter(sys.stdout, args.output)
        follow(reader, start, Selection(window, args.event_type, args.publisher_id), writer,
               args.count)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `kafka-bridge tail | head`: the reader has had enough
        # Python flushes stdout again at exit: point it at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        reader.close()
    return EXIT_OK


# check -------------------------------------------------------------------------


def _check(conf: cfg.ConfigOpts, args: argparse.Namespace) -> int:
    findings = check.run_checks(conf, create_topics=args.create_topics)
    print(check.render(findings))
    return check.exit_code(findings)
