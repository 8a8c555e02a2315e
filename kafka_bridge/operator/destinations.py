"""Where replay puts the notifications it selected.

- ``LocalDestination``: republished on the local RabbitMQ exactly as the
  reverse daemon does (its route and sink, driven through the pump):
  same exchange, topic and priority mapping, the loop-guard marker in the
  context, one publisher-confirm wait per batch, retried while RabbitMQ is
  down.
- ``StreamDestination``: JSON lines (or text) on a stream.
- ``CountingDestination``: nothing leaves (``--dry-run``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import oslo_messaging

from kafka_bridge.kafka.consumer import Delivery
from kafka_bridge.kafka.received import ReceivedRecord
from kafka_bridge.operator.formats import NotificationWriter
from kafka_bridge.operator.selection import Notification
from kafka_bridge.pump import Pump
from kafka_bridge.pump.routes import loop_guard
from kafka_bridge.pump.routes.reverse import ReverseRoute
from kafka_bridge.pump.sinks.rabbit import LocalNotification, RabbitSink


class Destination(Protocol):
    """Takes a batch of notifications; says which it confirmed."""

    #: what the summary calls a confirmed notification
    verb: str

    def deliver(self, notifications: Sequence[Notification]) -> list[bool]:
        """True where the notification was confirmed. Blocks (retrying) while the
        destination is unavailable, until stop()."""

    def stop(self) -> None:
        """Give up waiting: deliver returns, unconfirmed notifications False. Any thread."""

    def close(self) -> None:
        """Release connections."""


class ReplayedRecord(ReceivedRecord):
    """A record for the reverse route that remembers how the pump settled it.

    A replay has no subscription to acknowledge to: ack and nack only record
    whether the local transport confirmed the notification.
    """

    __slots__ = ("confirmed",)

    def __init__(self, delivery: Delivery) -> None:  # no subscription: see ack and nack
        self.delivery = delivery
        self.created = None
        self.confirmed = False

    def ack(self) -> None:
        self.confirmed = True

    def nack(self) -> None:
        self.confirmed = False


def without_origin_marker(delivery: Delivery) -> Delivery:
    """The delivery without the forward direction's origin header.

    The reverse daemon skips records that the forward direction brought from
    RabbitMQ, so that they do not come back; a replay exists to put exactly
    those back for local consumers that missed them. What it republishes
    carries the ``kafka`` origin marker, so a forward bridge does not send
    it to Kafka again.
    """
    headers = tuple(h for h in delivery.headers if h[0] != loop_guard.ORIGIN_KEY)
    return delivery._replace(headers=headers)


class LocalDestination:
    """Republishes on the local transport (rabbit://) as reverse mode does."""

    verb = "republished"

    def __init__(self, transport: oslo_messaging.Transport, exchange: str | None) -> None:
        self._sink = RabbitSink(transport)
        self._pump: Pump[ReplayedRecord, LocalNotification] = Pump(
            "replay", ReverseRoute(exchange), self._sink)

    def deliver(self, notifications: Sequence[Notification]) -> list[bool]:
        records = [ReplayedRecord(without_origin_marker(n.delivery)) for n in notifications]
        if records:
            self._pump.handle(records)
        return [record.confirmed for record in records]

    def stop(self) -> None:
        self._pump.stop()

    def close(self) -> None:
        self._sink.close()


class StreamDestination:
    """Writes each notification as a line; confirmed once flushed."""

    verb = "written"

    def __init__(self, writer: NotificationWriter) -> None:
        self._writer = writer

    def deliver(self, notifications: Sequence[Notification]) -> list[bool]:
        for notification in notifications:
            self._writer.write(notification)
        self._writer.flush()
        return [True] * len(notifications)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self._writer.flush()


class CountingDestination:
    """Sends nothing: every notification counts as one that would be republished."""

    verb = "would_republish"

    def deliver(self, notifications: Sequence[Notification]) -> list[bool]:
        return [True] * len(notifications)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass
