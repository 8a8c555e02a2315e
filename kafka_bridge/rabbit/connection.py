"""Connecting to RabbitMQ and declaring what the rabbit driver declares, with kombu's public API.

Every wait here observes a cancellation event: a bridge told to stop never
sits in a connection retry loop (kombu's own ``ensure_connection`` retries
without looking at anything but its retry count).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Optional

import amqp.exceptions
import kombu

from kafka_bridge.rabbit.settings import RabbitSettings

LOG = logging.getLogger(__name__)

#: the reply text by which RabbitMQ refuses a declaration whose durability differs
_DURABLE_MISMATCH = "inequivalent arg 'durable'"


def connect(settings: RabbitSettings, purpose: str, cancel: threading.Event,
            retry: bool = True) -> kombu.Connection | None:
    """An open kombu connection, or None if cancel was set first.

    With retry, failures are retried with the driver's backoff
    (rabbit_retry_interval, rabbit_retry_backoff, rabbit_interval_max),
    switching host as kombu_failover_strategy says, and logged once per
    change of cause; without, the first failure is raised. Waits observe
    cancel; one connection attempt is bounded by kombu's connect timeout.
    """
    options = settings.connection_options(purpose)
    # Each new connection starts at a random host, as the driver's do (a sink that
    # tries once per attempt reaches every host of a cluster in turn).
    hosts = options["hostname"].split(";")
    random.shuffle(hosts)
    connection = kombu.Connection(**dict(options, hostname=";".join(hosts)))
    delay, reported = settings.retry_interval, None
    while not cancel.is_set():
        try:
            connection.ensure_connection(max_retries=0)
        except Exception as exc:  # noqa: BLE001 - any failure to connect is retried
            if not retry:
                connection.release()
                raise
            if str(exc) != reported:
                reported = str(exc)
                LOG.warning("%s: cannot connect to RabbitMQ at %s (%s); retrying", purpose,
                            connection.as_uri(), exc)
            connection.maybe_switch_next()
            cancel.wait(delay)
            delay = min(delay + settings.retry_backoff, settings.retry_interval_max)
            continue
        if reported is not None:
            LOG.info("%s: connected to RabbitMQ at %s", purpose, connection.as_uri())
        return connection
    connection.release()
    return None


def exchange(settings: RabbitSettings, name: str, durable: bool | None = None) -> kombu.Exchange:
    """A control exchange as the driver declares it: topic, durable as configured."""
    return kombu.Exchange(name=name, type="topic",
                          durable=settings.durable if durable is None else durable,
                          auto_delete=settings.auto_delete)


def notification_queue(settings: RabbitSettings, exchange_name: str, routing_key: str,
                       name: str | None = None, durable: bool | None = None) -> kombu.Queue:
    """A notification queue bound to exchange_name with routing_key, as the driver declares
    a topic consumer's (named name, else routing_key) or a publisher's default queue."""
    durable = settings.durable if durable is None else durable
    return kombu.Queue(
        name=name or routing_key, exchange=exchange(settings, exchange_name, durable),
        routing_key=routing_key, durable=durable, auto_delete=settings.auto_delete,
        queue_arguments=settings.queue_arguments,
        consumer_arguments=({"x-cancel-on-ha-failover": True}
                            if settings.cancel_on_failover else None))


#: where a notification queue is bound: exchange, routing key, queue name (None: the key)
Binding = tuple[str, str, Optional[str]]


def declare(connection: kombu.Connection, channel: Any, settings: RabbitSettings,
            bindings: Iterable[Binding]) -> tuple[Any, list[kombu.Queue]]:
    """Declare notification queues (with their exchanges and bindings) on channel;
    (channel, the queues as declared).

    Where RabbitMQ refuses a queue or exchange because another service
    declared it with the other durability, it is declared non-durable on a
    new channel, as the driver falls back (the refusal closed the channel).
    """
    declared = []
    for exchange_name, routing_key, name in bindings:
        queue = notification_queue(settings, exchange_name, routing_key, name)
        try:
            queue(channel).declare()
        except amqp.exceptions.PreconditionFailed as exc:
            if _DURABLE_MISMATCH not in str(exc) or not settings.durable:
                raise
            LOG.warning("queue %s or exchange %s exists with the other durability; declaring "
                        "it non-durable, as oslo.messaging does", queue.name, exchange_name)
            channel = connection.channel()
            queue = notification_queue(settings, exchange_name, routing_key, name,
                                       durable=False)
            queue(channel).declare()
        declared.append(queue)
    return channel, declared


def distinct_by_name(queues: Sequence[kombu.Queue]) -> list[kombu.Queue]:
    """One queue per name: a pool's queue bound several times is consumed once."""
    seen: dict[str, kombu.Queue] = {}
    for queue in queues:
        seen.setdefault(queue.name, queue)
    return list(seen.values())


def close(connection: kombu.Connection | None, purpose: str) -> None:
    """Release a connection; what was delivered and not acknowledged goes back to its queue."""
    if connection is None:
        return
    try:
        connection.release()
    except Exception as exc:  # noqa: BLE001 - the broker requeues what it sent anyway
        LOG.debug("%s: closing the RabbitMQ connection: %s", purpose, exc)
