"""How the cloud's RabbitMQ is reached and its queues declared, from oslo's documented options.

The local transport is the one every oslo service of the cloud uses:
``[oslo_messaging_notifications] transport_url`` (else ``[DEFAULT]
transport_url``) and ``[oslo_messaging_rabbit]``, with the URL's query
parameters overriding options as the rabbit driver lets them. kafka-bridge
reads them through public oslo.messaging API (``get_notification_transport``
loads the driver and its options; ``Transport.conf`` applies the URL
overrides; ``TransportURL`` parses the URL) and connects with kombu's public
``Connection`` exactly as the driver would: same URLs and failover, TLS,
login method, heartbeat, retry intervals, prefetch, and the same exchange and
queue declarations (durable, auto-delete, HA, quorum arguments), so queues
that the driver or other services declared are declared equivalently.
"""

from __future__ import annotations

import dataclasses
import os
import ssl
import sys
from typing import Any
from urllib.parse import quote

import oslo_messaging
import oslo_messaging.opts
from oslo_config import cfg
from oslo_utils import netutils

#: the transport names of oslo.messaging's rabbit driver
RABBIT_TRANSPORTS = ("rabbit", "kombu")

#: the option group of oslo.messaging's rabbit driver
GROUP = "oslo_messaging_rabbit"

_SSL_VERSIONS = {name: getattr(ssl, attribute) for name, attribute in (
    ("tlsv1", "PROTOCOL_TLSv1"), ("sslv23", "PROTOCOL_SSLv23"), ("tlsv1_1", "PROTOCOL_TLSv1_1"),
    ("tlsv1_2", "PROTOCOL_TLSv1_2")) if hasattr(ssl, attribute)}


def register_options(conf: cfg.ConfigOpts) -> None:
    """Register ``[oslo_messaging_rabbit]`` now, so that defaults can be set before the
    driver loads (it registers them only then), from oslo.messaging's public ``list_opts``
    (what oslo-config-generator reads)."""
    conf.register_opts(dict(oslo_messaging.opts.list_opts())[GROUP], group=GROUP)


class NotRabbit(ValueError):
    """The local transport is not RabbitMQ."""


@dataclasses.dataclass(frozen=True)
class RabbitSettings:
    """Everything needed to connect and declare as the rabbit driver does.

    ``url`` holds credentials: it is never logged (kombu's ``as_uri`` masks it).
    """

    url: str = dataclasses.field(repr=False)
    ssl: dict[str, Any] | bool = False
    login_method: str = "AMQPLAIN"
    heartbeat: int = 60
    heartbeat_rate: int = 3
    failover_strategy: str = "round-robin"
    retry_interval: float = 1.0
    retry_backoff: float = 2.0
    retry_interval_max: float = 30.0
    prefetch_count: int = 0
    durable: bool = False
    auto_delete: bool = False
    queue_arguments: dict[str, Any] = dataclasses.field(default_factory=dict)
    cancel_on_failover: bool = False
    compression: str | None = None

    @classmethod
    def from_transport(cls, transport: oslo_messaging.Transport) -> RabbitSettings:
        """The settings of a notification transport built from the configuration.

        Raises NotRabbit if it is not a rabbit:// transport.
        """
        conf = transport.conf
        url = oslo_messaging.TransportURL.parse(
            conf, conf.oslo_messaging_notifications.transport_url)
        if url.transport not in RABBIT_TRANSPORTS:
            raise NotRabbit("kafka-bridge exchanges notifications with RabbitMQ: set "
                            "[DEFAULT] transport_url to a rabbit:// URL")
        return cls.from_options(url, conf[GROUP])

    @classmethod
    def from_options(cls, url: oslo_messaging.TransportURL, options: Any) -> RabbitSettings:
        """The settings of a parsed URL and the ``[oslo_messaging_rabbit]`` options."""
        if options.rabbit_quorum_queue and options.rabbit_ha_queues:
            raise ValueError("[oslo_messaging_rabbit] rabbit_quorum_queue and rabbit_ha_queues "
                             "are both enabled: a queue is quorum or HA (mirrored), not both")
        return cls(
            url=kombu_url(url),
            ssl=ssl_options(options, url),
            login_method=options.rabbit_login_method,
            heartbeat=options.heartbeat_timeout_threshold,
            heartbeat_rate=options.heartbeat_rate,
            failover_strategy=options.kombu_failover_strategy,
            retry_interval=options.rabbit_retry_interval,
            retry_backoff=options.rabbit_retry_backoff,
            retry_interval_max=options.rabbit_interval_max,
            prefetch_count=options.rabbit_qos_prefetch_count,
            # quorum queues are durable, whatever amqp_durable_queues says
            durable=options.amqp_durable_queues or options.rabbit_quorum_queue,
            auto_delete=options.amqp_auto_delete,
            queue_arguments=queue_arguments(options),
            cancel_on_failover=options.enable_cancel_on_failover,
            compression=options.kombu_compression)

    def connection_options(self, purpose: str) -> dict[str, Any]:
        """Keyword arguments of kombu.Connection, as the rabbit driver passes them
        (publisher confirms are enabled per channel by the sink, not here)."""
        return {
            "hostname": self.url, "ssl": self.ssl, "login_method": self.login_method,
            "heartbeat": self.heartbeat, "failover_strategy": self.failover_strategy,
            "transport_options": {"client_properties": {
                "capabilities": {"authentication_failure_close": True,
                                 "connection.blocked": True,
                                 "consumer_cancel_notify": True},
                "connection_name": f"{os.path.basename(sys.argv[0])}:{os.getpid()}:"
                                   f"kafka-bridge-{purpose}"}}}


def kombu_url(url: oslo_messaging.TransportURL) -> str:
    """The kombu URL (alternates joined by ';') of a rabbit:// transport URL."""
    hosts = url.hosts or [oslo_messaging.TransportHost("")]
    default_user, default_password = ("", "") if url.hosts else ("guest", "guest")
    return ";".join(
        f"amqp://{quote(host.username or default_user)}:"
        f"{quote(host.password or default_password)}@"
        f"{netutils.escape_ipv6(host.hostname) or 'localhost'}:{host.port or 5672}/"
        f"{url.virtual_host or ''}" for host in hosts)


def ssl_options(options: Any, url: oslo_messaging.TransportURL) -> dict[str, Any] | bool:
    """kombu's ``ssl`` argument for ``[oslo_messaging_rabbit] ssl*``."""
    if not options.ssl:
        return False
    params: dict[str, Any] = {}
    if options.ssl_version:
        try:
            params["ssl_version"] = _SSL_VERSIONS[options.ssl_version.lower()]
        except KeyError:
            raise ValueError(f"[oslo_messaging_rabbit] ssl_version {options.ssl_version!r} is "
                             f"not one of {', '.join(_SSL_VERSIONS)}") from None
    if options.ssl_key_file:
        params["keyfile"] = options.ssl_key_file
    if options.ssl_cert_file:
        params["certfile"] = options.ssl_cert_file
    if options.ssl_ca_file:
        params["ca_certs"] = options.ssl_ca_file
        params["cert_reqs"] = ssl.CERT_REQUIRED
        params["server_hostname"] = url.hosts[0].hostname if len(url.hosts) == 1 else None
    return params or True


def queue_arguments(options: Any) -> dict[str, Any]:
    """x-arguments of a notification queue (a topic consumer's, or the default queue
    a publisher creates): HA policy or quorum type and limits, as the driver sets them."""
    arguments: dict[str, Any] = {}
    if options.rabbit_ha_queues:
        arguments["x-ha-policy"] = "all"
    if options.rabbit_quorum_queue:
        arguments["x-queue-type"] = "quorum"
        for option, argument in (("rabbit_quorum_delivery_limit", "x-delivery-limit"),
                                 ("rabbit_quorum_max_memory_length", "x-max-in-memory-length"),
                                 ("rabbit_quorum_max_memory_bytes", "x-max-in-memory-bytes")):
            if getattr(options, option):
                arguments[argument] = getattr(options, option)
    return arguments
