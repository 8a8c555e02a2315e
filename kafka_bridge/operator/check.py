"""Preflight check of a configuration: valid, both brokers usable, topics there.

``run_checks`` validates the configuration as the daemon does and looks
for options in the wrong section, connects to RabbitMQ and Kafka with the
configured credentials, looks for the forward exchanges and queues and the
reverse topics, and returns one ``Finding`` per check. Nothing is created
or changed, except missing reverse topics when create_topics is true.
The exit code is that of the first problem found (EXIT_CODES).
"""

from __future__ import annotations

import dataclasses
import difflib
import glob
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import amqp.exceptions
import oslo_messaging
from kafka.admin import KafkaAdminClient
from oslo_config import cfg

from kafka_bridge.daemon import options
from kafka_bridge.daemon.config import BridgeConfigError, kafka_settings, validate
from kafka_bridge.kafka import options as kafka_options
from kafka_bridge.kafka import settings as settings_mod
from kafka_bridge.kafka.connectivity import check_connection, open_client
from kafka_bridge.kafka.errors import AuthenticationError, KafkaBridgeError, kafka_errors_mapped
from kafka_bridge.kafka.settings import KafkaSettings
from kafka_bridge.kafka.topics import TopicCreator
from kafka_bridge.rabbit import connection as rabbit
from kafka_bridge.rabbit.settings import RabbitSettings

OK = 0
#: an option is invalid, missing or in the wrong section (as the daemon exits)
CONFIGURATION = 2
RABBITMQ_UNREACHABLE = 3
RABBITMQ_REFUSED = 4
KAFKA_UNREACHABLE = 5
KAFKA_REFUSED = 6
TOPIC_MISSING = 7
TOPIC_UNUSABLE = 8

EXIT_CODES = {
    OK: "everything the configuration needs is usable",
    CONFIGURATION: "the configuration is invalid or has options in the wrong section",
    RABBITMQ_UNREACHABLE: "RabbitMQ does not answer",
    RABBITMQ_REFUSED: "RabbitMQ refused the credentials (or access to the virtual host)",
    KAFKA_UNREACHABLE: "no Kafka broker answers",
    KAFKA_REFUSED: "Kafka refused the credentials or the TLS handshake failed",
    TOPIC_MISSING: "a reverse topic does not exist (--create-topics creates it)",
    TOPIC_UNUSABLE: "a reverse topic cannot be read or created (ACLs, settings)",
}

#: the option groups that belong to kafka-bridge alone: unknown names there are reported
OWN_GROUPS = tuple(group for group, _ in options.GROUPS) + (kafka_options.GROUP,)


@dataclasses.dataclass(frozen=True)
class Finding:
    """One line of the report. ok None is a note: worth knowing, not a problem."""

    check: str
    ok: bool | None
    detail: str
    code: int = OK

    @property
    def status(self) -> str:
        return {True: "OK", False: "FAIL", None: "NOTE"}[self.ok]


def exit_code(findings: Iterable[Finding]) -> int:
    """The code of the first problem, OK if there is none."""
    return next((f.code for f in findings if f.ok is False), OK)


def render(findings: Sequence[Finding]) -> str:
    """The findings as a table: check, status, detail."""
    width = max([len("CHECK"), *(len(f.check) for f in findings)])
    lines = [f"{'CHECK'.ljust(width)}  STATUS  DETAIL"]
    lines += [f"{f.check.ljust(width)}  {f.status.ljust(6)}  {f.detail}" for f in findings]
    code = exit_code(findings)
    lines.append(f"exit {code}: {EXIT_CODES[code]}")
    return "\n".join(lines)


def run_checks(conf: cfg.ConfigOpts, create_topics: bool = False) -> list[Finding]:
    """Every check, in order; connection checks only once the configuration is valid."""
    findings = misplaced_options(conf)
    try:
        validate(conf)
        settings = kafka_settings(conf)
    except BridgeConfigError as exc:
        return [*findings, Finding("configuration", False, str(exc), CONFIGURATION)]
    files = ", ".join(config_files(conf)) or "no file"
    findings.insert(0, Finding("configuration", True,
                               f"mode {conf.kafka_bridge.mode}; read {files}"))
    findings += check_rabbitmq(conf)
    findings += check_kafka(conf, settings, create_topics)
    return findings


def config_files(conf: cfg.ConfigOpts) -> list[str]:
    """The files oslo.config read: --config-file ones, then --config-dir *.conf."""
    files = list(conf.config_file or [])
    for directory in conf.config_dir and [conf.config_dir] or []:
        files += sorted(glob.glob(os.path.join(directory, "*.conf")))
    return files


def misplaced_options(conf: cfg.ConfigOpts) -> list[Finding]:
    """Options of kafka-bridge's groups set in another section, and unknown names in them.

    oslo.config ignores both silently: the daemon would run with the default.
    """
    homes: dict[str, list[str]] = {}
    for group in OWN_GROUPS:
        for name in conf[group].keys():
            homes.setdefault(name, []).append(group)
    findings = []
    for path in config_files(conf):
        sections: dict[str, dict[str, list[str]]] = {}
        try:
            cfg.ConfigParser(path, sections).parse()
        except (OSError, cfg.ParseError):
            continue  # oslo.config itself reports an unreadable file
        for section, values in sections.items():
            known = set(conf.keys() if section == "DEFAULT" else
                        conf[section].keys() if section in conf else ())
            for name in values:
                if name in known:
                    continue
                if name in homes:
                    where = " or ".join(f"[{g}]" for g in homes[name])
                    findings.append(Finding(
                        f"option [{section}] {name}", False,
                        f"{path}: {name} is not an option of [{section}]; move it to {where}",
                        CONFIGURATION))
                elif section in OWN_GROUPS:
                    close = difflib.get_close_matches(name, list(homes), 1)
                    hint = f"; did you mean {_spelled(close[0], section, homes)}?" if close \
                        else ""
                    findings.append(Finding(
                        f"option [{section}] {name}", False,
                        f"{path}: [{section}] has no option {name}{hint}", CONFIGURATION))
    return findings


def _spelled(name: str, section: str, homes: dict[str, list[str]]) -> str:
    """name, with the section it belongs to when that is not section."""
    return name if section in homes[name] else f"[{homes[name][0]}] {name}"


def _connect_rabbitmq(transport: oslo_messaging.Transport) -> Any:
    """One connection as the daemon opens it (URL, TLS, login from oslo's options), tried
    once; raises what the connection raised (e.g. py-amqp's AccessRefused)."""
    return rabbit.connect(RabbitSettings.from_transport(transport), "check",
                          threading.Event(), retry=False)


def check_rabbitmq(conf: cfg.ConfigOpts) -> list[Finding]:
    """Connect with the configured credentials; look for the exchanges and queues."""
    transport = oslo_messaging.get_notification_transport(conf)
    url = oslo_messaging.TransportURL.parse(conf, conf.transport_url)
    where = ",".join(f"{h.hostname}:{h.port or 5672}" for h in url.hosts) + \
        f" virtual host {url.virtual_host or '/'}"
    try:
        connection = _connect_rabbitmq(transport)
    except amqp.exceptions.AccessRefused as exc:
        transport.cleanup()
        return [Finding("RabbitMQ", False, f"{where}: {exc}; check the user name and "
                        f"password in [DEFAULT] transport_url and the user's permissions "
                        f"on the virtual host", RABBITMQ_REFUSED)]
    except Exception as exc:  # noqa: BLE001 - kombu, py-amqp and sockets raise many types
        transport.cleanup()
        return [Finding("RabbitMQ", False, f"{where}: cannot connect ({exc}); check the "
                        f"host and port in [DEFAULT] transport_url and that RabbitMQ runs",
                        RABBITMQ_UNREACHABLE)]
    try:
        findings = [Finding("RabbitMQ", True, f"connected to {where}")]
        mode = conf.kafka_bridge.mode
        if mode in ("forward", "both"):
            findings += _forward_entities(connection, conf)
        if mode in ("reverse", "both"):
            exchange = conf.reverse.exchange or conf.control_exchange
            present = _exists(connection, "exchange", exchange)
            findings.append(Finding(f"reverse exchange {exchange}", True if present else None,
                                    "exists" if present else
                                    "absent: the daemon declares it on its first publish"))
        return findings
    finally:
        connection.close()
        transport.cleanup()


def _forward_entities(connection: Any,
                      conf: cfg.ConfigOpts) -> list[Finding]:
    forward = conf.forward
    exchanges = list(forward.exchanges)
    absent = [e for e in exchanges if not _exists(connection, "exchange", e)]
    findings = [Finding("forward exchanges", True if not absent else None,
                        f"{len(exchanges) - len(absent)} of {len(exchanges)} exist" + (
                            f"; absent: {', '.join(absent)} (declared by the first service "
                            f"that notifies on them, or the daemon at start)" if absent
                            else ""))]
    queues = [forward.pool] if forward.pool else [
        f"{topic}.{priority}" for topic in forward.topics for priority in forward.priorities]
    missing = [q for q in queues if not _exists(connection, "queue", q)]
    findings.append(Finding(
        "forward queues", True if not missing else None,
        f"{len(queues) - len(missing)} of {len(queues)} exist" + (
            f"; absent: {', '.join(missing)} (the daemon declares them at start; "
            f"notifications sent before that are not kept for it)" if missing else "")))
    return findings


def _exists(connection: Any, kind: str, name: str) -> bool:
    """Whether an exchange or queue exists (a passive declare: nothing is created)."""
    channel = connection.channel()  # apart: the broker closes it if the entity is absent
    try:
        if kind == "exchange":
            channel.exchange_declare(exchange=name, type="topic", passive=True)
        else:
            channel.queue_declare(queue=name, passive=True)
    except amqp.exceptions.NotFound:
        return False  # the broker closed the channel
    channel.close()
    return True


def check_kafka(conf: cfg.ConfigOpts, settings: KafkaSettings,
                create_topics: bool) -> list[Finding]:
    """Connect with the configured credentials; look for (or create) the reverse topics."""
    servers = ",".join(settings.bootstrap_servers)
    try:
        check_connection(settings)
    except AuthenticationError as exc:
        return [Finding("Kafka", False, str(exc), KAFKA_REFUSED)]
    except KafkaBridgeError as exc:
        return [Finding("Kafka", False, str(exc), KAFKA_UNREACHABLE)]
    findings = [Finding("Kafka", True, f"connected to {servers} ({settings.security_protocol})")]
    if conf.kafka_bridge.mode not in ("reverse", "both"):
        return findings
    return findings + _reverse_topics(settings, conf.reverse.kafka_topics, create_topics)


def _reverse_topics(settings: KafkaSettings, topics: Sequence[str],
                    create: bool) -> list[Finding]:
    try:
        admin = open_client(KafkaAdminClient, settings_mod.admin_config(settings), settings,
                            "connecting the Kafka admin client")
        try:
            with kafka_errors_mapped("listing topics", settings.secret_values):
                existing = set(admin.list_topics())
                described = {t["name"]: t for t in admin.describe_topics(
                    [t for t in topics if t in existing])} if existing & set(topics) else {}
        finally:
            admin.close()
    except KafkaBridgeError as exc:
        return [Finding("reverse topics", False, str(exc), TOPIC_UNUSABLE)]
    findings = []
    creator = TopicCreator(settings) if create else None
    try:
        for topic in topics:
            check = f"topic {topic}"
            if topic in existing:
                partitions = len(described.get(topic, {}).get("partitions") or ())
                findings.append(Finding(check, True, f"exists, {partitions} partitions"))
            elif creator is None:
                findings.append(Finding(
                    check, False, f"does not exist: nothing has been published to it, or "
                    f"[reverse] kafka_topics has a typo; create it (check --create-topics "
                    f"makes it with {settings.topic_partitions} partitions)", TOPIC_MISSING))
            else:
                try:
                    creator.ensure([topic])
                except KafkaBridgeError as exc:
                    findings.append(Finding(check, False, str(exc), TOPIC_UNUSABLE))
                    continue
                findings.append(Finding(check, True,
                                        f"created with {settings.topic_partitions} partitions"))
    finally:
        if creator is not None:
            creator.close()
    return findings
