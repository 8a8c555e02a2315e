"""The daemon's configuration: parsing it, and checking it before anything connects.

Free of service imports, so the command line, the service and the tests can
all parse and validate a configuration the same way. Three kinds of check:

* ``check_values``: every option's value converts to its type and choices
  (oslo.config converts lazily, at first read; a bad value found then would
  crash a running service);
* ``validate``: settings that cannot work together (raises, the daemon exits 2);
* ``unread_options``: options set in kafka-bridge's own sections that nothing
  reads, such as ``record_key_field`` under ``[forward]`` (warnings).
"""

from __future__ import annotations

import datetime
import difflib
import math
import os
from collections.abc import Iterator, Sequence

import oslo_messaging
from cotyledon import oslo_config_glue as cotyledon_glue
from oslo_config import cfg, types
from oslo_log import log as logging
from oslo_service import service as oslo_service

from kafka_bridge.compat.verify import LibraryMismatch, verify
from kafka_bridge.daemon import options
from kafka_bridge.kafka import options as kafka_options
from kafka_bridge.kafka.errors import ConfigurationError
from kafka_bridge.kafka.settings import KafkaSettings
from kafka_bridge.notification import PRIORITIES, parse_time
from kafka_bridge.pump.routes.topic_template import TopicTemplate
from kafka_bridge.rabbit import settings as rabbit_settings

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

#: seconds one delivery attempt of the daemon may take (the driver's default is 30)
DAEMON_DELIVERY_TIMEOUT = 10.0

#: the daemon's defaults for [oslo_messaging_kafka_notify] linger_ms and batch_size
DAEMON_LINGER_MS = 5
DAEMON_BATCH_SIZE = 1048576

#: kafka-bridge's own sections, whose every option it knows
OWN_SECTIONS = tuple(group for group, _ in options.GROUPS) + (kafka_options.GROUP,)


class BridgeConfigError(ValueError):
    """The configuration cannot work; the message names the option and the fix."""


def make_conf(argv: Sequence[str]) -> cfg.ConfigOpts:
    """Parse argv (oslo.config command line) into a fully registered ConfigOpts.

    Raises cfg.Error for a command line or file oslo.config cannot read.
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
    taken = _register_launcher_opts(conf)
    for group, opts in oslo_service.list_opts():
        conf.register_opts([opt for opt in opts if opt.dest not in taken], group=group)
    conf(list(argv), project="kafka-bridge", prog="kafka-bridge")
    return conf


def _register_launcher_opts(conf: cfg.ConfigOpts) -> set[str]:
    """Register now the options oslo.service's threading launcher registers at launch
    (they are read and defaulted before it); their names.

    The launcher registers oslo.service's own definitions from 4.5 on
    (oslo_service.opts, 2026.1), cotyledon's before (4.3, 2025.2). The two
    differ (mutable), and a different definition registered first is a
    duplicate option at launch.
    """
    try:
        from oslo_service import opts as service_opts
    except ImportError:
        conf.register_opts(cotyledon_glue.service_opts)
        return {opt.dest for opt in cotyledon_glue.service_opts}
    service_opts.register_service_opts(conf)
    return set()


def bound_exit(conf: cfg.ConfigOpts) -> None:
    """Make oslo.service's graceful_shutdown_timeout (cotyledon's last resort: it ends a
    worker still stopping with status 1) default to shutdown_timeout + 2 s, the bound
    the daemon promises, instead of 60 s. Call after check_values."""
    conf.set_default("graceful_shutdown_timeout",
                     math.ceil(conf.kafka_bridge.shutdown_timeout) + 2)


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


def topic_template(conf: cfg.ConfigOpts) -> TopicTemplate:
    """``[forward] topic_template`` with its fallback; raises BridgeConfigError."""
    try:
        return TopicTemplate(conf.forward.topic_template, conf.forward.topic_fallback)
    except ValueError as exc:
        raise BridgeConfigError(str(exc)) from None


def check_values(conf: cfg.ConfigOpts) -> None:
    """Read every registered option once; BridgeConfigError for the first value that
    does not convert, naming the file, the option, the value and what is allowed."""
    described = {(group, opt.dest): opt for group, opts in options.GROUPS for opt in opts}
    described.update({(kafka_options.GROUP, opt.dest): opt for opt in kafka_options.all_opts()})
    settings = _file_settings(conf)
    for group, name in _registered(conf):
        try:
            conf[name] if group == "DEFAULT" else conf[group][name]
        except (cfg.ConfigSourceValueError, ValueError) as exc:
            path, raw = settings.get((group, name), ("", None))
            opt = described.get((group, name))
            where = f"{path}: " if path else ""
            shown = "****" if opt is None or opt.secret else raw
            raise BridgeConfigError(
                f"{where}[{group}] {name} = {shown} is not valid: "
                f"{_allowed(opt) if opt is not None else exc.__cause__ or exc}") from None


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
    """Check what can be checked without a broker; raises BridgeConfigError.

    That includes the installed libraries: every internal of theirs that
    kafka_bridge.compat relies on must be there (kafka_bridge.compat.verify).
    """
    try:
        verify()
    except LibraryMismatch as exc:
        raise BridgeConfigError(str(exc)) from None
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
        topic_template(conf)
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


def unread_options(conf: cfg.ConfigOpts) -> list[str]:
    """A warning for each option set in one of kafka-bridge's own sections that no
    code reads, naming the file, the section and where the option belongs."""
    warnings = []
    for path, sections in _parsed_files(conf):
        for section, keys in sections.items():
            if section not in OWN_SECTIONS:
                continue
            known = list(conf[section])
            for key in keys:
                if key in known:
                    continue
                homes = [group for group, name in _registered(conf) if name == key]
                if homes:
                    hint = f"it belongs in [{'] or ['.join(homes)}]"
                else:
                    close = difflib.get_close_matches(key, known, n=1)
                    hint = (f"did you mean {close[0]}?" if close
                            else f"[{section}] has no such option")
                warnings.append(f"{path}: [{section}] {key} is ignored: {hint}")
    return warnings


def _registered(conf: cfg.ConfigOpts) -> Iterator[tuple[str, str]]:
    """(group, option name) of every registered option; group DEFAULT for top-level ones."""
    for key in conf:
        try:
            value = conf[key]
        except (cfg.ConfigSourceValueError, ValueError):
            value = None  # a top-level option with a bad value (groups never raise)
        if isinstance(value, cfg.ConfigOpts.GroupAttr):
            for name in value:
                yield key, name
        else:
            yield "DEFAULT", key


def _config_files(conf: cfg.ConfigOpts) -> list[str]:
    """The files oslo.config read, in its order: --config-file, then each
    --config-dir's *.conf sorted."""
    files = list(conf.config_file or [])
    dirs = conf.config_dir
    for directory in [dirs] if isinstance(dirs, str) else dirs or []:
        files += sorted(os.path.join(directory, name) for name in os.listdir(directory)
                        if name.endswith(".conf"))
    return files


def _parsed_files(conf: cfg.ConfigOpts) -> Iterator[tuple[str, dict[str, dict[str, list[str]]]]]:
    for path in _config_files(conf):
        sections: dict[str, dict[str, list[str]]] = {}
        try:
            cfg.ConfigParser(path, sections).parse()
        except (OSError, cfg.ParseError):
            continue  # oslo.config itself reported what it could not read
        yield path, sections


def _file_settings(conf: cfg.ConfigOpts) -> dict[tuple[str, str], tuple[str, str]]:
    """(section, option) -> (file, raw value) as oslo.config sees it: the last file wins."""
    found = {}
    for path, sections in _parsed_files(conf):
        for section, keys in sections.items():
            for key, values in keys.items():
                found[(section, key)] = (path, values[-1])
    return found


def _allowed(opt: cfg.Opt) -> str:
    """What an option accepts, in words."""
    kind = opt.type
    choices = getattr(kind, "choices", None)
    if choices:
        return f"choose one of {', '.join(map(str, choices))}"
    if isinstance(kind, types.Boolean):
        return "use true or false"
    if isinstance(kind, types.Number):
        noun = "an integer" if isinstance(kind, types.Integer) else "a number"
        low, high = kind.min, kind.max
        if low is not None and high is not None:
            return f"use {noun} from {low} to {high}"
        if low is not None:
            return f"use {noun} of at least {low}"
        if high is not None:
            return f"use {noun} of at most {high}"
        return f"use {noun}"
    if isinstance(kind, types.HostAddress):
        return "use an IP address or a host name"
    return f"see the help of {opt.dest}"
