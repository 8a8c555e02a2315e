"""The daemon's RabbitMQ side: forward's source and reverse's sink.

Both use the rabbit driver's own ``Connection``, so the URL, TLS,
heartbeats, failover, exchange and queue declarations (durable, quorum, HA)
and the message format are exactly those of every other oslo service of the
cloud, but drive it themselves, a batch at a time. oslo.messaging's
listener hands messages over one ``poll`` at a time (a retry wrapper, a
context object and a deep copy per message, acknowledgements queued back to
the polling thread one by one), and its notifier waits for a publisher
confirm per message: that was most of the bridge's CPU and wall time.

- ``RabbitNotificationSource`` waits for the first message through the
  driver, takes whatever else RabbitMQ already sent without waiting, and
  acknowledges a confirmed batch with one ``basic.ack``.
- ``RabbitSink`` publishes a batch as the driver publishes a notification
  and waits once for RabbitMQ's publisher confirms of all of it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import kombu.entity
import oslo_messaging
from oslo_messaging._drivers import amqp as oslo_amqp
from oslo_messaging._drivers import common as oslo_common
from oslo_messaging._drivers import impl_rabbit

from kafka_bridge.daemon import mapping
from kafka_bridge.pump import BatchHandler

LOG = logging.getLogger(__name__)

#: longest the consuming thread blocks waiting for a first message, so stop() is prompt
IDLE_WAIT = 0.5

#: pause before connecting again after the connection failed outside the driver's own retry
RECONNECT_DELAY = 1.0

#: what the rabbit driver adds to a notification besides its context keys
_DRIVER_KEYS = ("_unique_id", "_msg_id", "_reply_q", "_timeout")
_CONTEXT_PREFIX = "_context_"

_ACK, _REQUEUE = "ack", "requeue"

#: longest a sink waits for RabbitMQ to confirm one batch
CONFIRM_TIMEOUT = 30.0

#: how often a wait for confirms checks for cancellation
CONFIRM_SLICE = 0.25


def rabbit_driver(transport: oslo_messaging.Transport) -> Any:
    """The transport's rabbit driver; ValueError if the transport is not rabbit://."""
    driver = transport._driver
    if not isinstance(driver, impl_rabbit.RabbitDriver):
        raise ValueError("kafka-bridge exchanges notifications with RabbitMQ: set "
                         "[DEFAULT] transport_url to a rabbit:// URL")
    return driver


def unpack(envelope: Any) -> tuple[dict[str, Any], Any]:
    """(context, notification) of a message body as the rabbit driver sends it.

    The notification is returned as found (not necessarily a dict) when it
    is not an oslo notification; the route decides what to do with it.
    """
    try:
        body = oslo_common.deserialize_msg(envelope)
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
        raw = received._raw_message
        delivery = raw.delivery_info or {}
        self.exchange: str = delivery.get("exchange") or ""
        self.routing_key: str = delivery.get("routing_key") or ""
        self.delivery_tag: int = raw.delivery_tag
        self.channel: Any = raw.channel
        self.ctxt, self.message = unpack(dict(received))
        self.created = mapping.notification_time(self.message)
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
        driver = rabbit_driver(transport)
        self._conf, self._url = driver.conf, driver._url
        self._bindings = [(exchange, f"{topic}.{priority}") for topic in topics
                          for exchange in exchanges for priority in priorities]
        self._pool = pool
        self._batch_size = batch_size
        self._batch_timeout = batch_timeout
        self._received: list[Any] = []
        self._connection: Any = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, handler: BatchHandler) -> None:
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
        connection = impl_rabbit.Connection(self._conf, self._url,
                                            oslo_common.PURPOSE_LISTEN)
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

    def _run(self, handler: BatchHandler) -> None:
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
            except oslo_common.Timeout:
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
        with connection._connection_lock:
            try:
                connection.connection.drain_events(
                    timeout=max(0.0, deadline - time.monotonic()))
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
        with connection._connection_lock:
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


class LocalPublishError(Exception):
    """RabbitMQ did not take a notification."""

    def __init__(self, text: str, retriable: bool) -> None:
        super().__init__(text)
        self.retriable = retriable


class RabbitSink:
    """Publishes notifications on RabbitMQ, a batch per confirm wait.

    Each notification is sent as the rabbit driver sends one (exchange and
    default queue declared, same envelope and properties). RabbitMQ numbers
    a channel's publishes in confirm mode; the sink publishes the whole
    batch, then reads the confirms. Any connection failure fails the
    unconfirmed rest of the attempt as retriable and starts the next
    attempt on a new connection.
    """

    def __init__(self, transport: oslo_messaging.Transport) -> None:
        self._driver = rabbit_driver(transport)
        self._connection: Any = None
        self._channel: Any = None
        self._published = 0  # publishes on self._channel since confirm.select
        self._unconfirmed: set[int] = set()  # publish numbers of this attempt not confirmed
        self._outcomes: dict[int, bool] = {}  # publish number -> confirmed (True) or nacked

    def attempt(self, records: Sequence[Any],
                cancel: threading.Event | None = None) -> list[BaseException | None]:
        """Records have ``target``, ``ctxt`` and ``message``; None where RabbitMQ confirmed."""
        # Nothing counts as delivered until RabbitMQ confirmed it.
        unsent = LocalPublishError("not sent: the RabbitMQ connection failed", retriable=True)
        outcomes: list[BaseException | None] = [unsent] * len(records)
        numbers: dict[int, int] = {}  # index -> publish number
        failed = False
        try:
            connection = self._connection or self._connect()
            with connection._connection_lock:
                self._confirming_channel(connection)
                for index, record in enumerate(records):
                    try:
                        body = self._body(record)
                    except (TypeError, ValueError) as exc:
                        outcomes[index] = LocalPublishError(
                            f"notification cannot be serialized: {exc}", retriable=False)
                        continue
                    self._published += 1
                    numbers[index] = self._published
                    self._unconfirmed.add(self._published)
                    exchange = kombu.entity.Exchange(
                        name=self._driver._get_exchange(record.target), type="topic",
                        durable=connection.durable, auto_delete=connection.amqp_auto_delete)
                    # The driver's own publish: it declares the exchange and
                    # the default queue once per channel.
                    connection._publish_and_creates_default_queue(
                        exchange, body, record.target.topic)
                self._await_confirms(connection, set(numbers.values()), cancel)
        except Exception as exc:  # noqa: BLE001 - the connection is done for; start over
            LOG.warning("reverse: publishing to RabbitMQ failed (%s); reconnecting", exc)
            failed = True
        stopping = cancel is not None and cancel.is_set()
        for index, number in numbers.items():
            self._unconfirmed.discard(number)
            confirmed = self._outcomes.pop(number, None)
            if confirmed:
                outcomes[index] = None
            elif confirmed is None:
                outcomes[index] = LocalPublishError(
                    f"RabbitMQ did not confirm the notification "
                    f"{'before shutdown' if stopping else 'in time'}", retriable=True)
            else:
                outcomes[index] = LocalPublishError("RabbitMQ refused the notification (nack)",
                                                    retriable=True)
        if failed:
            self.close()
        return outcomes

    @staticmethod
    def _body(record: Any) -> Any:
        """The message as the rabbit driver sends a notification (messagingv2)."""
        message = dict(record.message)
        oslo_amqp._add_unique_id(message)
        oslo_amqp.pack_context(message, record.ctxt)
        return oslo_common.serialize_msg(message)

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._unconfirmed.clear()
        self._outcomes.clear()
        if connection is not None:
            try:
                connection.close()
            except Exception as exc:  # noqa: BLE001
                LOG.debug("reverse: closing the RabbitMQ connection: %s", exc)

    def _connect(self) -> Any:
        self._connection = impl_rabbit.Connection(self._driver.conf, self._driver._url,
                                                  oslo_common.PURPOSE_SEND)
        return self._connection

    def _confirming_channel(self, connection: Any) -> Any:
        channel = connection.channel
        if channel is not self._channel:
            # A new channel (first use, or the driver reconnected): confirm
            # mode numbers its publishes from 1.
            if not channel._confirm_selected:
                channel._confirm_selected = True
                channel.confirm_select()
            # Publish without waiting for each confirm (the connection is
            # ours alone); confirms are read by the event handlers below.
            channel.basic_publish = channel._basic_publish
            channel.events["basic_ack"].add(
                lambda tag, multiple: self._confirmed(channel, tag, multiple, True))
            channel.events["basic_nack"].add(
                lambda tag, multiple, *_: self._confirmed(channel, tag, multiple, False))
            self._channel, self._published = channel, 0
            self._unconfirmed.clear()
            self._outcomes.clear()
        return channel

    def _confirmed(self, channel: Any, tag: int, multiple: bool, ok: bool) -> None:
        if channel is not self._channel:
            return
        done = [n for n in self._unconfirmed if n <= tag] if multiple else (
            [tag] if tag in self._unconfirmed else [])
        for number in done:
            self._unconfirmed.discard(number)
            self._outcomes[number] = ok

    def _await_confirms(self, connection: Any, numbers: set[int],
                        cancel: threading.Event | None) -> None:
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while any(number not in self._outcomes for number in numbers):
            left = deadline - time.monotonic()
            if left <= 0 or (cancel is not None and cancel.is_set()):
                return
            try:
                connection.connection.drain_events(timeout=min(CONFIRM_SLICE, left))
            except socket.timeout:
                pass
