"""Reverse's sink: notifications published on RabbitMQ, a batch per confirm wait.

It publishes each notification as the rabbit driver publishes one (same
exchange and default queue declarations, same body and properties, see
kafka_bridge.rabbit), on a kombu connection of its own in publisher-confirm
mode, with public API only: py-amqp's ``confirm_select`` and its
``basic_ack``/``basic_nack`` channel events; kombu's ``Producer.publish``,
which on a channel without kombu's ``confirm_publish`` does not wait per
message. The whole batch is published, then the confirms are read once,
instead of once per message as oslo's Notifier does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import kombu
import oslo_messaging

from kafka_bridge.deadline import Deadline
from kafka_bridge.errors import DeliveryFailure
from kafka_bridge.rabbit import connection as rabbit
from kafka_bridge.rabbit import wire
from kafka_bridge.rabbit.settings import RabbitSettings

LOG = logging.getLogger(__name__)

#: longest a sink waits for RabbitMQ to confirm one batch
CONFIRM_TIMEOUT = 30.0

#: how often a wait for confirms checks for cancellation
CONFIRM_SLICE = 0.25

_PURPOSE = "reverse"


@dataclasses.dataclass(frozen=True)
class LocalNotification:
    """A notification to publish on the local transport."""

    target: oslo_messaging.Target
    ctxt: dict[str, Any]
    message: dict[str, Any]


class LocalPublishError(DeliveryFailure):
    """RabbitMQ did not take a notification."""


class Confirms:
    """Publisher-confirm bookkeeping of one channel.

    RabbitMQ numbers a confirm-mode channel's publishes from 1 and confirms
    (basic.ack) or refuses (basic.nack) them, one at a time or every number
    up to a tag at once (``multiple``).
    """

    def __init__(self) -> None:
        self.published = 0
        self._pending: dict[int, None] = {}  # ascending publish numbers not yet settled
        self._outcomes: dict[int, bool] = {}  # publish number -> confirmed (True) or nacked

    def publishing(self) -> int:
        """The number of the next publish, now pending."""
        self.published += 1
        self._pending[self.published] = None
        return self.published

    def on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple, True)

    def on_nack(self, tag: int, multiple: bool, *_: Any) -> None:
        self._settle(tag, multiple, False)

    def _settle(self, tag: int, multiple: bool, ok: bool) -> None:
        if not multiple:
            if self._pending.pop(tag, False) is None:
                self._outcomes[tag] = ok
            return
        for number in list(self._pending):
            if number > tag:
                break
            del self._pending[number]
            self._outcomes[number] = ok

    def settled(self, numbers: Sequence[int]) -> bool:
        """Every one of numbers confirmed or refused."""
        # From the last: confirms come mostly in order, so while any is pending
        # the last one is, and this is checked after every frame read.
        return all(number in self._outcomes for number in reversed(numbers))

    def take(self, number: int) -> bool | None:
        """Forget a publish: True confirmed, False refused, None not settled (yet)."""
        self._pending.pop(number, None)
        return self._outcomes.pop(number, None)


class _Link:
    """One connection and its confirm-mode channel, with what was declared on it."""

    def __init__(self, connection: kombu.Connection, settings: RabbitSettings) -> None:
        self.connection = connection
        self._settings = settings
        self._declared: set[tuple[str, str]] = set()
        self._confirming(connection.channel())

    def _confirming(self, channel: Any) -> None:
        """Put channel in confirm mode: its publishes are numbered from 1."""
        self.confirms = Confirms()
        channel.confirm_select()
        channel.events["basic_ack"].add(self.confirms.on_ack)
        channel.events["basic_nack"].add(self.confirms.on_nack)
        self.channel = channel
        self.producer = kombu.Producer(channel, auto_declare=False)

    def declare(self, targets: set[tuple[str, str]]) -> None:
        """Declare (exchange, routing key) targets as the driver does before a publish:
        the exchange and a default queue named after the routing key."""
        new = targets - self._declared
        if not new:
            return
        channel, _ = rabbit.declare(self.connection, self.channel, self._settings,
                                    [(exchange_name, routing_key, None)
                                     for exchange_name, routing_key in sorted(new)])
        if channel is not self.channel:
            self._confirming(channel)  # the old channel was closed by the refusal
        self._declared |= new

    @contextlib.contextmanager
    def corked(self) -> Iterator[None]:
        """Publishes inside are queued by the kernel and leave in full TCP segments (Linux
        TCP_CORK), not one segment (and one RabbitMQ read) per message."""
        sock = getattr(socket, "TCP_CORK", None) and self.connection.connection.sock
        if not sock:
            yield
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        try:
            yield
        finally:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)

    def publish(self, exchange_name: str, routing_key: str, body: bytes) -> int:
        """Publish one body; its publish number."""
        number = self.confirms.publishing()
        self.producer.publish(body, exchange=exchange_name, routing_key=routing_key,
                              content_type=wire.CONTENT_TYPE,
                              content_encoding=wire.CONTENT_ENCODING,
                              compression=self._settings.compression)
        return number

    def await_confirms(self, numbers: Sequence[int], cancel: threading.Event) -> None:
        """Read confirms until numbers are settled, CONFIRM_TIMEOUT passed or cancel is set."""
        deadline = Deadline(CONFIRM_TIMEOUT)
        while not self.confirms.settled(numbers) and not deadline.over(cancel):
            try:
                self.connection.drain_events(timeout=deadline.slice(CONFIRM_SLICE))
            except socket.timeout:
                self.heartbeat()

    def heartbeat(self) -> None:
        """Send a heartbeat when one is due; read what came (heartbeats, late confirms)."""
        self.connection.heartbeat_check(rate=self._settings.heartbeat_rate)
        try:
            self.connection.drain_events(timeout=0.001)
        except socket.timeout:
            pass


class RabbitSink:
    """Publishes notifications on RabbitMQ, a batch per confirm wait.

    Any connection failure fails the unconfirmed rest of the attempt as
    retriable and the next attempt starts on a new connection; connecting
    is tried once per attempt, so the pump's retry loop (with its backoff,
    backpressure and cancellation) does the waiting. Between attempts a
    thread keeps the connection's heartbeats.
    """

    def __init__(self, transport: oslo_messaging.Transport,
                 connect: Callable[..., kombu.Connection | None] = rabbit.connect) -> None:
        self._settings = RabbitSettings.from_transport(transport)
        self._default_exchange: str = transport.conf.control_exchange
        self._connect = connect
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self._closed = threading.Event()
        self._heartbeats: threading.Thread | None = None

    def attempt(self, records: Sequence[LocalNotification],
                cancel: threading.Event | None = None) -> list[DeliveryFailure | None]:
        """None where RabbitMQ confirmed the notification; stops waiting once cancel is set."""
        cancel = cancel or threading.Event()
        # Nothing counts as delivered until RabbitMQ confirmed it.
        unsent = LocalPublishError("not sent: the RabbitMQ connection failed", retriable=True)
        outcomes: list[DeliveryFailure | None] = [unsent] * len(records)
        numbers: dict[int, int] = {}  # index -> publish number
        with self._lock:
            link = self._link
            if link is None:
                try:
                    link = self._open(cancel)
                except Exception as exc:  # noqa: BLE001 - the pump retries, and logs once
                    return [LocalPublishError(f"RabbitMQ unreachable: {exc}", retriable=True)
                            ] * len(records)
                if link is None:
                    return outcomes
            try:
                link.declare({(record.target.exchange or self._default_exchange,
                               record.target.topic) for record in records})
                with link.corked():
                    for index, record in enumerate(records):
                        try:
                            body = wire.encode(record.ctxt, record.message)
                        except (TypeError, ValueError) as exc:
                            outcomes[index] = LocalPublishError(
                                f"notification cannot be serialized: {exc}", retriable=False)
                            continue
                        numbers[index] = link.publish(
                            record.target.exchange or self._default_exchange,
                            record.target.topic, body)
                link.await_confirms(list(numbers.values()), cancel)
                failed = False
            except Exception as exc:  # noqa: BLE001 - the connection is done for; start over
                LOG.warning("reverse: publishing to RabbitMQ failed (%s); reconnecting", exc)
                failed = True
            for index, number in numbers.items():
                outcomes[index] = self._outcome(link.confirms.take(number), cancel)
            if failed:
                self._drop_link()
        return outcomes

    @staticmethod
    def _outcome(confirmed: bool | None, cancel: threading.Event) -> DeliveryFailure | None:
        if confirmed:
            return None
        if confirmed is None:
            return LocalPublishError(
                f"RabbitMQ did not confirm the notification "
                f"{'before shutdown' if cancel.is_set() else 'in time'}", retriable=True)
        return LocalPublishError("RabbitMQ refused the notification (nack)", retriable=True)

    def close(self) -> None:
        """Stop the heartbeats and close the connection. Safe to call twice."""
        self._closed.set()
        if self._heartbeats is not None:
            self._heartbeats.join()
        with self._lock:
            self._drop_link()

    def _open(self, cancel: threading.Event) -> _Link | None:
        """A new link; None if cancelled; raises if RabbitMQ cannot be reached."""
        connection = self._connect(self._settings, _PURPOSE, cancel, retry=False)
        if connection is None:
            return None
        try:
            self._link = _Link(connection, self._settings)
        except Exception:
            rabbit.close(connection, _PURPOSE)
            raise
        if self._heartbeats is None and self._settings.heartbeat > 0:
            self._heartbeats = threading.Thread(target=self._keep_alive,
                                                name="reverse-rabbitmq-heartbeat", daemon=True)
            self._heartbeats.start()
        return self._link

    def _drop_link(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            rabbit.close(link.connection, _PURPOSE)

    def _keep_alive(self) -> None:
        """Heartbeats while no attempt uses the connection, as the rabbit driver's
        sending connections have them (every heartbeat_timeout_threshold / rate / 2 s)."""
        interval = self._settings.heartbeat / self._settings.heartbeat_rate / 2
        while not self._closed.wait(interval):
            with self._lock:
                if self._link is None:
                    continue
                try:
                    self._link.heartbeat()
                except Exception as exc:  # noqa: BLE001 - the next attempt reconnects
                    LOG.info("reverse: RabbitMQ connection lost while idle (%s)", exc)
                    self._drop_link()
