"""oslo.messaging internals kafka-bridge relies on (rabbit driver, message envelope).

The public API offers a Notifier (one publisher confirm awaited per message)
and a notification listener (one ``poll`` per message, a deep copy and a
retry wrapper each, acknowledgements queued back one by one); driving the
rabbit driver's own ``Connection`` a batch at a time is what makes the
daemon fast while keeping every other setting of the cloud's transport (URL,
TLS, heartbeats, failover, durable/quorum queues) exactly as oslo applies
them. The envelope functions are the driver's wire format, which
kafka-bridge must produce and read byte for byte.
"""

from __future__ import annotations

from typing import Any

import kombu.entity
import oslo_messaging
from oslo_config import cfg
from oslo_messaging._drivers import amqp as oslo_amqp
from oslo_messaging._drivers import base as driver_base
from oslo_messaging._drivers import common as oslo_common
from oslo_messaging._drivers import impl_rabbit

#: the driver base classes a transport driver must subclass (oslo's driver
#: interface lives in a private module; there is no public one)
BaseDriver = driver_base.BaseDriver
IncomingMessage = driver_base.IncomingMessage
Listener = driver_base.Listener
PollStyleListener = driver_base.PollStyleListener
PollStyleListenerAdapter = driver_base.PollStyleListenerAdapter

#: raised by ``Connection.consume`` when nothing arrived within its timeout
ConsumeTimeout = oslo_common.Timeout

PURPOSE_LISTEN = oslo_common.PURPOSE_LISTEN
PURPOSE_SEND = oslo_common.PURPOSE_SEND


def serialize_msg(message: dict[str, Any]) -> dict[str, Any]:
    """The ``{"oslo.version", "oslo.message"}`` envelope of a message (wire format)."""
    return oslo_common.serialize_msg(message)


def deserialize_msg(envelope: Any) -> Any:
    """The message inside an envelope; raises what oslo raises for a bad one."""
    return oslo_common.deserialize_msg(envelope)


def register_rabbit_opts(conf: cfg.ConfigOpts) -> None:
    """Register ``[oslo_messaging_rabbit]`` now, so that defaults can be set before
    the driver loads (``rabbit_opts``: the driver registers them only when loaded)."""
    conf.register_opts(impl_rabbit.rabbit_opts, group="oslo_messaging_rabbit")


def rabbit_driver(transport: oslo_messaging.Transport) -> Any:
    """The transport's rabbit driver (``Transport._driver``); ValueError if not rabbit://."""
    driver = transport._driver
    if not isinstance(driver, impl_rabbit.RabbitDriver):
        raise ValueError("kafka-bridge exchanges notifications with RabbitMQ: set "
                         "[DEFAULT] transport_url to a rabbit:// URL")
    return driver


def rabbit_connection(driver: Any, purpose: str, retry: int | None = None) -> Any:
    """A new ``impl_rabbit.Connection`` of the driver's configuration and URL (``_url``).

    retry: connection attempts after the first (None: until one succeeds; 0:
    one attempt, raising what it raised, e.g. py-amqp's AccessRefused).
    """
    return impl_rabbit.Connection(driver.conf, driver._url, purpose, retry=retry)


def new_channel(connection: Any) -> Any:
    """A new py-amqp channel on a rabbit ``Connection``'s kombu connection (its
    ``connection`` attribute), apart from the channel the driver uses; for
    passive declares, after which the broker may close it."""
    return connection.connection.channel()


def connection_lock(connection: Any) -> Any:
    """The lock a rabbit ``Connection`` holds around every use of its channel."""
    return connection._connection_lock


def drain_events(connection: Any, timeout: float) -> None:
    """Process what the broker sent on the connection's kombu connection, at most timeout
    seconds; raises socket.timeout if nothing came. Call with connection_lock held."""
    connection.connection.drain_events(timeout=timeout)


def publish_notification(driver: Any, connection: Any, target: oslo_messaging.Target,
                         body: Any) -> None:
    """Publish one serialized notification as the driver does: its exchange
    (``_get_exchange``) and default queue declared once per channel
    (``_publish_and_creates_default_queue``). Call with connection_lock held."""
    exchange = kombu.entity.Exchange(
        name=driver._get_exchange(target), type="topic", durable=connection.durable,
        auto_delete=connection.amqp_auto_delete)
    connection._publish_and_creates_default_queue(exchange, body, target.topic)


def notification_body(message: dict[str, Any], ctxt: dict[str, Any]) -> Any:
    """A notification as the rabbit driver sends it (messagingv2): a unique id
    (``_add_unique_id``), the context packed in, the envelope around it."""
    message = dict(message)
    oslo_amqp._add_unique_id(message)
    oslo_amqp.pack_context(message, ctxt)
    return oslo_common.serialize_msg(message)


def raw_message(received: Any) -> Any:
    """The kombu message behind a message the rabbit driver's consumer received
    (``RabbitMessage._raw_message``): its delivery tag, channel and routing."""
    return received._raw_message
