"""Resolved Kafka settings and the kafka-python configuration built from them.

``KafkaSettings.from_transport_url`` merges the configuration options with the
transport URL (hosts, credentials, virtual host, query overrides) and fails
at once, naming the option, on anything invalid. ``producer_config``,
``consumer_config`` and ``admin_config`` are pure functions of the settings.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from collections.abc import Mapping
from typing import Any

from oslo_config import cfg

from kafka_bridge.kafka import options
from kafka_bridge.kafka.errors import ConfigurationError
from kafka_bridge.payload_path import PayloadPath

#: shortest produce request timeout the producer is given, in milliseconds
MIN_REQUEST_MS = 1000

#: longest a broker holds a fetch that found no new records, in milliseconds.
#: kafka-python has one fetch per broker in flight and leaves out the
#: partitions whose records it still buffers, so a fetch waiting on a quiet
#: partition holds back the busy ones until this expires (its default, 500,
#: halved the catch-up rate of a listener and stretched reverse latency).
FETCH_MAX_WAIT_MS = 100

#: which Python package kafka-python needs for each compression codec
CODEC_PACKAGES = {"snappy": ("snappy",), "lz4": ("lz4",), "zstd": ("zstandard",)}


@dataclasses.dataclass(frozen=True)
class KafkaSettings:
    """Everything the Kafka layer needs to reach and use one cluster.

    One field per option of ``kafka_bridge.kafka.options`` (same name, see
    its help) besides the brokers and virtual host. Secrets are excluded
    from repr and never logged.
    """

    bootstrap_servers: tuple[str, ...]
    virtual_host: str | None
    security_protocol: str
    sasl_mechanism: str
    sasl_username: str | None
    sasl_password: str | None = dataclasses.field(repr=False)
    ssl_cafile: str | None
    ssl_check_hostname: bool
    ssl_certfile: str | None
    ssl_keyfile: str | None
    ssl_key_password: str | None = dataclasses.field(repr=False)
    connect_timeout: float
    producer_acks: str
    enable_idempotence: bool
    delivery_timeout: float
    compression_codec: str
    linger_ms: int
    batch_size: int
    max_request_size: int
    record_key_field: str | None
    topic_partitions: int
    topic_replication_factor: int
    consumer_group_prefix: str
    max_poll_records: int
    max_unacknowledged: int
    commit_interval: float
    session_timeout_ms: int

    @classmethod
    def from_transport_url(cls, conf: cfg.ConfigOpts, url: Any) -> KafkaSettings:
        """Settings from conf's options overridden by an oslo TransportURL.

        Raises ConfigurationError naming the option or URL part that is wrong.
        """
        options.register(conf)
        group = conf[options.GROUP]
        values = {opt.dest: group[opt.dest] for opt in options.all_opts()}
        for key, raw in (url.query or {}).items():
            values[key] = _parse_query_value(key, raw)
        hosts = list(url.hosts or [])
        if not hosts:
            raise ConfigurationError(
                "the kafka-notify:// URL names no broker; use "
                "kafka-notify://[user:pass@]host:port[,host:port...]/")
        bootstrap = []
        for host in hosts:
            if not host.hostname:
                raise ConfigurationError("a host in the kafka-notify:// URL is empty")
            bootstrap.append(f"{_bracket(host.hostname)}:{host.port or 9092}")
            if host.username:
                values["sasl_username"] = host.username
            if host.password:
                values["sasl_password"] = host.password
        return cls.create(bootstrap, url.virtual_host or None, values)

    @classmethod
    def create(cls, bootstrap: list[str] | tuple[str, ...], virtual_host: str | None,
               values: Mapping[str, Any]) -> KafkaSettings:
        """Validate a complete set of option values; raise ConfigurationError."""
        merged = {opt.dest: opt.default for opt in options.all_opts()}
        merged.update(values)
        settings = cls(tuple(bootstrap), virtual_host, **merged)
        settings._validate()
        return settings

    def _validate(self) -> None:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and not (self.sasl_username and self.sasl_password):
            raise ConfigurationError(
                f"security_protocol={self.security_protocol} needs a user name and password: "
                f"put them in the URL (kafka-notify://user:pass@host:port/) or set "
                f"[{options.GROUP}] sasl_username and sasl_password")
        if self.enable_idempotence and self.producer_acks != "all":
            raise ConfigurationError(
                f"enable_idempotence=true requires producer_acks=all, not "
                f"{self.producer_acks}; set one of them accordingly")
        codec = self.compression_codec
        if codec in CODEC_PACKAGES and not any(
                importlib.util.find_spec(p) for p in CODEC_PACKAGES[codec]):
            raise ConfigurationError(
                f"compression_codec={codec} needs the Python package "
                f"{' or '.join(CODEC_PACKAGES[codec])}; install it or choose another codec")
        if self.delivery_timeout * 1000 < self.linger_ms + MIN_REQUEST_MS:
            raise ConfigurationError(
                f"delivery_timeout={self.delivery_timeout:g} s leaves no time to send after "
                f"linger_ms={self.linger_ms}: raise delivery_timeout to at least "
                f"{(self.linger_ms + MIN_REQUEST_MS) / 1000:g} s or lower linger_ms")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigurationError("ssl_certfile and ssl_keyfile must be set together")
        try:
            self.record_key_path
        except ValueError as exc:
            raise ConfigurationError(f"record_key_field: {exc}") from None

    @functools.cached_property
    def record_key_path(self) -> PayloadPath | None:
        """record_key_field parsed; None when unset. Raises ValueError if malformed."""
        return PayloadPath(self.record_key_field) if self.record_key_field else None

    @property
    def secret_values(self) -> tuple[str, ...]:
        """The secrets in these settings, for scrubbing messages."""
        return tuple(v for v in (self.sasl_password, self.ssl_key_password) if v)


def _bracket(hostname: str) -> str:
    return f"[{hostname}]" if ":" in hostname else hostname


def _parse_query_value(key: str, raw: Any) -> Any:
    opt = next((o for o in options.all_opts() if o.dest == key), None)
    if opt is None:
        known = ", ".join(sorted(o.dest for o in options.all_opts()))
        raise ConfigurationError(
            f"unknown kafka-notify:// URL parameter {key!r}; known parameters: {known}")
    value = raw[-1] if isinstance(raw, list) else raw
    try:
        return opt.type(value)
    except (ValueError, TypeError) as exc:
        # The parser's message may quote the value: never for a secret.
        shown, detail = ("***", "not a valid value") if opt.secret else (repr(value), exc)
        raise ConfigurationError(f"kafka-notify:// URL parameter {key}={shown} is invalid: "
                                 f"{detail}") from None


def _connection_config(settings: KafkaSettings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap_servers": list(settings.bootstrap_servers),
        "security_protocol": settings.security_protocol,
        "request_timeout_ms": int(settings.delivery_timeout * 1000),
        "reconnect_backoff_max_ms": 2000,
        "bootstrap_timeout_ms": int(settings.connect_timeout * 1000),
    }
    if settings.security_protocol.startswith("SASL_"):
        config.update(sasl_mechanism=settings.sasl_mechanism,
                      sasl_plain_username=settings.sasl_username,
                      sasl_plain_password=settings.sasl_password)
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        config.update(ssl_check_hostname=settings.ssl_check_hostname,
                      ssl_cafile=settings.ssl_cafile or None,
                      ssl_certfile=settings.ssl_certfile or None,
                      ssl_keyfile=settings.ssl_keyfile or None,
                      ssl_password=settings.ssl_key_password or None)
    return config


def producer_config(settings: KafkaSettings) -> dict[str, Any]:
    """kafka-python KafkaProducer arguments for settings."""
    delivery_ms = int(settings.delivery_timeout * 1000)
    config = _connection_config(settings)
    config.update(
        acks=-1 if settings.producer_acks == "all" else int(settings.producer_acks),
        enable_idempotence=settings.enable_idempotence,
        compression_type=None if settings.compression_codec == "none"
        else settings.compression_codec,
        linger_ms=settings.linger_ms,
        batch_size=settings.batch_size,
        max_request_size=settings.max_request_size,
        delivery_timeout_ms=delivery_ms,
        # linger and the request both fit in the delivery timeout (kafka-python
        # refuses to start otherwise; _validate keeps room for MIN_REQUEST_MS)
        request_timeout_ms=max(MIN_REQUEST_MS,
                               min(delivery_ms - settings.linger_ms, 30000) - 100),
        max_block_ms=delivery_ms,
    )
    return config


def consumer_config(settings: KafkaSettings, group: str) -> dict[str, Any]:
    """kafka-python KafkaConsumer arguments for one consumer group."""
    config = _connection_config(settings)
    config.update(
        group_id=group,
        enable_auto_commit=False,
        # 'none': partitions without a committed offset are positioned by the
        # Subscription, at the end offsets it read before subscribing.
        auto_offset_reset="none",
        max_poll_records=settings.max_poll_records,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=max(500, settings.session_timeout_ms // 4),
        request_timeout_ms=max(30000, settings.session_timeout_ms + 5000),
    )
    return config


def admin_config(settings: KafkaSettings) -> dict[str, Any]:
    """kafka-python KafkaAdminClient arguments."""
    return _connection_config(settings)
