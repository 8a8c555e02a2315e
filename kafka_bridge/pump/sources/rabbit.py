"""Forward's source: notifications consumed from RabbitMQ, a batch at a time.

It uses the rabbit driver's own ``Connection`` (see kafka_bridge.compat), so
the URL, TLS, heartbeats, failover, exchange and queue declarations (durable,
quorum, HA) are exactly those of every other oslo service of the cloud, but
drives it itself: it waits for the first message through the driver, takes
whatever else RabbitMQ already sent without waiting, and acknowledges a
confirmed batch with one ``basic.ack``. oslo.messaging's listener hands
messages over one ``poll`` at a time (a retry wrapper, a context object and a
deep copy per message, acknowledgements queued back one by one): that was
most of the bridge's CPU.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import oslo_messaging

from kafka_bridge.compat import oslo_messaging as oslo_compat
from kafka_bridge.notification import notification_time
from kafka_bridge.pump.protocols import BatchHandler

LOG = logging.getLogger(__name__)

#: longest the consuming thread blocks waiting for a first message, so stop() is prompt
IDLE_WAIT = 0.5

#: pause before connecting again after the connection failed outside the driver's own retry
RECONNECT_DELAY = 1.0

#: what the rabbit driver adds to a notification besides its context keys
_DRIVER_KEYS = ("_unique_id", "_msg_id", "_reply_q", "_timeout")
_CONTEXT_PREFIX = "_context_"

_ACK, _REQUEUE = "ack", "requeue"


def unpack(envelope: Any) -> tuple[dict[str, Any], Any]:
    """(context, notification) of a message body as the rabbit driver sends it.

    The notification is returned as found (not necessarily a dict) when it
    is not an oslo notification; the route decides what to do with it.
    """
    try:
        body = oslo_compat.deserialize_msg(envelope)
    except Exception:  # noqa: BLE001 - oslo raises several types for a bad envelope
        return {}, None
    if not isinstance(body, dict):
        return {}, body
    body = dict(body)
    context = {key[len(_CONTEXT_PREFIX):]: body.pop(key)
               for key in [k for k in body if k.startswith(_CONTEXT_PREFIX)]}
    for key in _DRIVER_KEYS:
        body.pop(key, None)
    return context, body


class RabbitNotification:
    """A notification received from RabbitMQ; ack and nack are recorded and
    carried out by the source once the batch is settled."""

    __slots__ = ("ctxt", "message", "exchange", "routing_key", "created", "delivery_tag",
                 "channel", "outcome")

    def __init__(self, received: Any) -> None:
        raw = oslo_compat.raw_message(received)
        delivery = raw.delivery_info or {}
        self.exchange: str = delivery.get("exchange") or ""
        self.routing_key: str = delivery.get("routing_key") or ""
        self.delivery_tag: int = raw.delivery_tag
        self.channel: Any = raw.channel
        self.ctxt, self.message = unpack(dict(received))
        self.created = notification_time(self.message)
        self.outcome: str | None = None

    def ack(self) -> None:
        self.outcome = _ACK

    def nack(self) -> None:
        self.outcome = _REQUEUE


class RabbitNotificationSource:
    """Consumes exchanges x topics x priorities on the local RabbitMQ.

    One thread receives and hands batches to the handler; it takes nothing
    more until the handler returned, so an unavailable Kafka holds the
    source (RabbitMQ keeps the rest, beyond rabbit_qos_prefetch_count
    messages). A batch is whatever RabbitMQ sent meanwhile, up to
    batch_size; batch_timeout > 0 waits that long for it to fill.
    Unacknowledged messages go back to their queue if the connection is
    lost or the bridge stops.
    """

    def __init__(self, transport: oslo_messaging.Transport, exchanges: Sequence[str],
                 topics: Sequence[str], priorities: Sequence[str], pool: str | None,
                 batch_size: int, batch_timeout: float) -> None:
        self._driver = oslo_compat.rabbit_driver(transport)
        self._bindings = [(exchange, f"{topic}.{priority}") for topic in topics
                          for exchange in exchanges for priority in priorities]
        self._pool = pool
        self._batch_size = batch_size
        self._batch_timeout = batch_timeout
        self._received: list[Any] = []
        self._connection: Any = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, handler: BatchHandler[RabbitNotification]) -> None:
        """Declare the queues and start consuming."""
        self._connection = self._connect()
        self._thread = threading.Thread(target=self._run, args=(handler,),
                                        name="forward-rabbitmq", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop taking messages once the batch in hand is settled."""
        self._stopping.set()
        if self._connection is not None:
            self._connection.stop_consuming()
        if self._thread is not None:
            self._thread.join()

    def cleanup(self) -> None:
        """Close the connection: whatever was received and not handed over
        goes back to its queue."""
        self._close()

    def _connect(self) -> Any:
        connection = oslo_compat.rabbit_connection(self._driver, oslo_compat.PURPOSE_LISTEN)
        for exchange, routing_key in self._bindings:
            connection.declare_topic_consumer(exchange_name=exchange, topic=routing_key,
                                              callback=self._received.append,
                                              queue_name=self._pool)
        return connection

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        self._received = []
        if connection is not None:
            try:
                connection.close()
            except Exception as exc:  # noqa: BLE001 - the broker requeues what it sent anyway
                LOG.debug("forward: closing the RabbitMQ connection: %s", exc)

    def _run(self, handler: BatchHandler[RabbitNotification]) -> None:
        while not self._stopping.is_set():
            try:
                batch = self._next_batch()
                if batch:
                    handler(batch)
                    self._settle(batch)
            except Exception as exc:  # noqa: BLE001 - start over on a fresh connection
                if self._stopping.is_set():
                    break
                LOG.warning("forward: RabbitMQ connection failed (%s); unacknowledged "
                            "notifications return to their queue; reconnecting", exc)
                self._close()
                self._stopping.wait(RECONNECT_DELAY)
                while not self._stopping.is_set() and self._connection is None:
                    try:
                        self._connection = self._connect()
                    except Exception as again:  # noqa: BLE001
                        LOG.warning("forward: cannot reconnect to RabbitMQ yet: %s", again)
                        self._stopping.wait(RECONNECT_DELAY)

    def _next_batch(self) -> list[RabbitNotification]:
        if not self._received:
            try:
                # The driver's own consume: reconnects, redeclares, heartbeats.
                self._connection.consume(timeout=IDLE_WAIT)
            except oslo_compat.ConsumeTimeout:
                return []
        deadline = time.monotonic() + self._batch_timeout
        while len(self._received) < self._batch_size and self._drain(deadline):
            pass
        taken = self._received[:self._batch_size]
        del self._received[:self._batch_size]
        return [RabbitNotification(received) for received in taken]

    def _drain(self, deadline: float) -> bool:
        """Process what RabbitMQ sent, waiting until deadline at most; False if nothing."""
        connection = self._connection
        with oslo_compat.connection_lock(connection):
            try:
                oslo_compat.drain_events(connection, max(0.0, deadline - time.monotonic()))
            except (socket.timeout, BlockingIOError):
                return False
        return True

    def _settle(self, batch: Sequence[RabbitNotification]) -> None:
        """Acknowledge or requeue a handled batch on the channel it came from.

        Messages of an earlier channel (the connection was re-established
        meanwhile) went back to their queue when it closed.
        """
        connection = self._connection
        channel = connection.channel
        current = [message for message in batch if message.channel is channel]
        if not current:
            return
        with oslo_compat.connection_lock(connection):
            if all(message.outcome == _ACK for message in current):
                # Delivery tags grow on a channel and every earlier batch is
                # settled: one ack covers the batch.
                channel.basic_ack(current[-1].delivery_tag, multiple=True)
                return
            for message in current:
                if message.outcome == _ACK:
                    channel.basic_ack(message.delivery_tag)
                else:
                    channel.basic_reject(message.delivery_tag, requeue=True)
