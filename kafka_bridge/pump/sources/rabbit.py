"""Forward's source: notifications consumed from RabbitMQ, a batch at a time.

It declares the exchanges and queues exactly as oslo.messaging's rabbit
driver declares a notification listener's (see kafka_bridge.rabbit), consumes
them with py-amqp's ``basic_consume`` through kombu's public ``Queue.consume``,
and decodes each body itself: the raw AMQP message is in hand whatever it
holds, so a message that is not a notification is dead-lettered with its
original bytes instead of being rejected by a library. A batch is whatever
RabbitMQ sent meanwhile (its frames handed to py-amqp in bulk, see
kafka_bridge.compat.amqp), and a confirmed batch is acknowledged with one
``basic.ack``.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import kombu
import oslo_messaging

from kafka_bridge.compat.amqp import read_ahead, read_available
from kafka_bridge.deadline import Deadline
from kafka_bridge.notification import notification_time
from kafka_bridge.pump.protocols import BatchHandler
from kafka_bridge.rabbit import connection as rabbit
from kafka_bridge.rabbit import wire
from kafka_bridge.rabbit.settings import RabbitSettings

LOG = logging.getLogger(__name__)

#: longest the consuming thread blocks waiting for a first message, so stop() is prompt
IDLE_WAIT = 0.5

_ACK, _REQUEUE = "ack", "requeue"
_PURPOSE = "forward"


class RabbitNotification:
    """A message received from RabbitMQ, decoded if it is a notification.

    ``body`` is the message body as it arrived; ``error`` says why it is
    not a notification (``ctxt`` and ``message`` are then empty). ack and
    nack are recorded and carried out by the source once the batch is
    settled.
    """

    __slots__ = ("ctxt", "message", "error", "body", "content_type", "content_encoding",
                 "compression", "exchange", "routing_key", "queue", "created", "delivery_tag",
                 "channel", "outcome")

    def __init__(self, body: bytes, properties: dict[str, Any], delivery_info: dict[str, Any],
                 queue: str, channel: Any = None) -> None:
        self.body = body
        self.content_type: str | None = properties.get("content_type")
        self.content_encoding: str | None = properties.get("content_encoding")
        headers = properties.get("application_headers") or {}
        self.compression: str | None = headers.get(wire.COMPRESSION_HEADER)
        self.exchange: str = delivery_info.get("exchange") or ""
        self.routing_key: str = delivery_info.get("routing_key") or ""
        self.queue = queue
        self.delivery_tag: int = delivery_info.get("delivery_tag", 0)
        self.channel = channel
        self.error: wire.Undecodable | None = None
        self.ctxt: dict[str, Any] = {}
        self.message: dict[str, Any] | None = None
        try:
            self.ctxt, self.message = wire.decode(body, self.content_type,
                                                  self.content_encoding, headers)
        except wire.Undecodable as exc:
            self.error = exc
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not lose the message
            self.error = wire.Undecodable("decoder raised", f"{type(exc).__name__}: {exc}")
        self.created = notification_time(self.message)
        self.outcome: str | None = None

    def ack(self) -> None:
        self.outcome = _ACK

    def nack(self) -> None:
        self.outcome = _REQUEUE


def settle(batch: Sequence[RabbitNotification], channel: Any) -> None:
    """Acknowledge or requeue a handled batch on channel, the one it was received on.

    Messages of an earlier channel (the connection was re-established
    meanwhile) went back to their queue when it closed and are left alone.
    Delivery tags grow on a channel and earlier batches are settled, so an
    all-acknowledged batch takes one ``basic.ack`` with ``multiple``.
    """
    current = [message for message in batch if message.channel is channel]
    if not current:
        return
    if all(message.outcome == _ACK for message in current):
        channel.basic_ack(current[-1].delivery_tag, multiple=True)
        return
    for message in current:
        if message.outcome == _ACK:
            channel.basic_ack(message.delivery_tag)
        else:
            channel.basic_reject(message.delivery_tag, requeue=True)


class RabbitNotificationSource:
    """Consumes exchanges x topics x priorities on the local RabbitMQ.

    One thread receives and hands batches to the handler; it takes nothing
    more until the handler returned, so an unavailable Kafka holds the
    source (RabbitMQ keeps the rest, beyond rabbit_qos_prefetch_count
    messages). A batch is whatever RabbitMQ sent meanwhile, up to
    batch_size; batch_timeout > 0 waits that long for it to fill.
    Unacknowledged messages go back to their queue if the connection is
    lost or the bridge stops. Connecting and reconnecting observe stop().
    """

    def __init__(self, transport: oslo_messaging.Transport, exchanges: Sequence[str],
                 topics: Sequence[str], priorities: Sequence[str], pool: str | None,
                 batch_size: int, batch_timeout: float,
                 queue_arguments: Mapping[str, Any] | None = None) -> None:
        """queue_arguments: x-arguments of the queues beside those of the transport's
        options (quorum, HA), e.g. ``{"x-single-active-consumer": True}``."""
        settings = RabbitSettings.from_transport(transport)
        if queue_arguments:
            settings = dataclasses.replace(settings, queue_arguments={
                **settings.queue_arguments, **queue_arguments})
        self._settings = settings
        self._bindings: list[rabbit.Binding] = [
            (exchange, f"{topic}.{priority}", pool)
            for topic in topics for exchange in exchanges for priority in priorities]
        self._batch_size = batch_size
        self._batch_timeout = batch_timeout
        self._received: list[RabbitNotification] = []
        self._connection: kombu.Connection | None = None
        self._channel: Any = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, handler: BatchHandler[RabbitNotification]) -> None:
        """Declare the queues and start consuming; returns once consuming, or stopped."""
        self._open()
        self._thread = threading.Thread(target=self._run, args=(handler,),
                                        name="forward-rabbitmq", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop taking messages once the batch in hand is settled (or stop connecting)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()

    def cleanup(self) -> None:
        """Close the connection: whatever was received and not handed over
        goes back to its queue."""
        self._close()

    def _open(self) -> None:
        """Connect, declare and consume, retrying until it worked or stop() was called."""
        while not self._stopping.is_set():
            connection = rabbit.connect(self._settings, _PURPOSE, self._stopping)
            if connection is None:
                return
            try:
                channel = connection.channel()
                # Bodies as they arrived, bytes: py-amqp's documented auto_decode would
                # turn them into text by their content encoding (quietly, when it can).
                channel.auto_decode = False
                read_ahead(connection.connection)
                if self._settings.prefetch_count > 0:
                    channel.basic_qos(0, self._settings.prefetch_count, False)
                channel, declared = rabbit.declare(connection, channel, self._settings,
                                                   self._bindings)
                for queue in rabbit.distinct_by_name(declared):
                    queue(channel).consume(callback=self._receiver(queue.name, channel))
            except Exception as exc:  # noqa: BLE001 - start over on a fresh connection
                LOG.warning("forward: declaring and consuming the RabbitMQ queues failed "
                            "(%s); retrying", exc)
                rabbit.close(connection, _PURPOSE)
                self._stopping.wait(self._settings.retry_interval)
                continue
            self._connection, self._channel = connection, channel
            return

    def _receiver(self, queue: str, channel: Any) -> Callable[[Any], None]:
        received = self._received

        def receive(raw: Any) -> None:
            # py-amqp leaves an empty body as its default, the text ''
            received.append(RabbitNotification(raw.body or b"", raw.properties,
                                               raw.delivery_info, queue, channel))
        return receive

    def _close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._received = []
        rabbit.close(connection, _PURPOSE)

    def _run(self, handler: BatchHandler[RabbitNotification]) -> None:
        while not self._stopping.is_set():
            try:
                if self._connection is None:
                    self._open()
                    continue
                batch = self._next_batch()
                if batch:
                    handler(batch)
                    settle(batch, self._channel)
            except Exception as exc:  # noqa: BLE001 - start over on a fresh connection
                if self._stopping.is_set():
                    break
                LOG.warning("forward: RabbitMQ connection failed (%s); unacknowledged "
                            "notifications return to their queue; reconnecting", exc)
                self._close()
                self._stopping.wait(self._settings.retry_interval)

    def _next_batch(self) -> list[RabbitNotification]:
        if not self._received:
            if not self._drain(Deadline(IDLE_WAIT)):
                self._heartbeat()
                return []
        if self._batch_timeout > 0:
            deadline = Deadline(self._batch_timeout)
            while len(self._received) < self._batch_size and self._drain(deadline):
                pass
        else:
            self._take_what_arrived()
        self._heartbeat()
        taken = self._received[:self._batch_size]
        del self._received[:self._batch_size]
        return taken

    def _take_what_arrived(self) -> None:
        """Process what RabbitMQ sent, without waiting, until batch_size are received.

        The frames received are handed to py-amqp's frame handler in bulk
        (kafka_bridge.compat.amqp), on a socket left non-blocking for the
        whole batch.
        """
        assert self._connection is not None
        connection = self._connection.connection
        received, size = self._received, self._batch_size
        sock = connection.sock
        previous = sock.gettimeout()
        sock.settimeout(0.0)
        try:
            read_available(connection, lambda: len(received) >= size)
        finally:
            if sock.fileno() != -1:  # not if the connection failed meanwhile
                sock.settimeout(previous)

    def _drain(self, deadline: Deadline) -> bool:
        """Process what RabbitMQ sent, waiting until deadline at most; False if nothing."""
        assert self._connection is not None
        try:
            self._connection.drain_events(timeout=deadline.left())
        except (socket.timeout, BlockingIOError):
            return False
        return True

    def _heartbeat(self) -> None:
        """Send a heartbeat when one is due, and fail if RabbitMQ's stopped coming."""
        assert self._connection is not None
        self._connection.heartbeat_check(rate=self._settings.heartbeat_rate)
