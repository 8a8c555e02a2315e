"""Reverse's sink: notifications published on RabbitMQ, a batch per confirm wait.

It publishes each notification as the rabbit driver publishes one (same
exchange and default queue declarations, same envelope and properties, see
kafka_bridge.compat), but waits once for RabbitMQ's publisher confirms of the
whole batch instead of once per message as oslo's Notifier does.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import oslo_messaging

from kafka_bridge.compat import amqp as amqp_compat
from kafka_bridge.compat import oslo_messaging as oslo_compat
from kafka_bridge.errors import DeliveryFailure

LOG = logging.getLogger(__name__)

#: longest a sink waits for RabbitMQ to confirm one batch
CONFIRM_TIMEOUT = 30.0

#: how often a wait for confirms checks for cancellation
CONFIRM_SLICE = 0.25


@dataclasses.dataclass(frozen=True)
class LocalNotification:
    """A notification to publish on the local transport."""

    target: oslo_messaging.Target
    ctxt: dict[str, Any]
    message: dict[str, Any]


class LocalPublishError(DeliveryFailure):
    """RabbitMQ did not take a notification."""


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
        self._driver = oslo_compat.rabbit_driver(transport)
        self._connection: Any = None
        self._channel: Any = None
        self._published = 0  # publishes on self._channel since confirm.select
        self._unconfirmed: set[int] = set()  # publish numbers of this attempt not confirmed
        self._outcomes: dict[int, bool] = {}  # publish number -> confirmed (True) or nacked

    def attempt(self, records: Sequence[LocalNotification],
                cancel: threading.Event | None = None) -> list[DeliveryFailure | None]:
        """None where RabbitMQ confirmed the notification."""
        # Nothing counts as delivered until RabbitMQ confirmed it.
        unsent = LocalPublishError("not sent: the RabbitMQ connection failed", retriable=True)
        outcomes: list[DeliveryFailure | None] = [unsent] * len(records)
        numbers: dict[int, int] = {}  # index -> publish number
        failed = False
        try:
            connection = self._connection or self._connect()
            with oslo_compat.connection_lock(connection):
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
                    oslo_compat.publish_notification(self._driver, connection, record.target,
                                                     body)
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
    def _body(record: LocalNotification) -> Any:
        """The message as the rabbit driver sends a notification (messagingv2)."""
        return oslo_compat.notification_body(record.message, record.ctxt)

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
        self._connection = oslo_compat.rabbit_connection(self._driver, oslo_compat.PURPOSE_SEND)
        return self._connection

    def _confirming_channel(self, connection: Any) -> Any:
        channel = connection.channel
        if channel is not self._channel:
            # A new channel (first use, or the driver reconnected): confirm
            # mode numbers its publishes from 1.
            # Publish without waiting for each confirm (the connection is
            # ours alone); confirms are read as events while draining.
            amqp_compat.publish_without_waiting(
                channel, lambda tag, multiple, ok: self._confirmed(channel, tag, multiple, ok))
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
                oslo_compat.drain_events(connection, min(CONFIRM_SLICE, left))
            except socket.timeout:
                pass
