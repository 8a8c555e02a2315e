"""Reverse mode: how a Kafka record becomes a notification on the local transport."""

from __future__ import annotations

import logging

import oslo_messaging

from kafka_bridge.kafka import envelope
from kafka_bridge.kafka.received import ReceivedRecord
from kafka_bridge.notification import split_routing_key
from kafka_bridge.pump.protocols import Poison, Skip, SkipReason
from kafka_bridge.pump.routes import loop_guard
from kafka_bridge.pump.sinks.rabbit import LocalNotification

LOG = logging.getLogger(__name__)


class ReverseRoute:
    """Maps a Kafka record to a local notification.

    The oslo topic and priority come from the Kafka topic name
    (``notifications.info`` -> topic ``notifications``, priority ``info``),
    else from the notification's priority.
    """

    def __init__(self, exchange: str | None) -> None:
        self._exchange = exchange

    def record_for(self, message: ReceivedRecord) -> LocalNotification:
        delivery = message.delivery
        if dict(delivery.headers).get(loop_guard.ORIGIN_KEY) == _FROM_LOCAL:
            raise Skip(SkipReason.LOOP)
        try:
            ctxt, body = envelope.decode(delivery.value)
        except envelope.UndecodableRecord as exc:
            raise Poison(str(exc)) from None
        topic, priority = split_routing_key(delivery.partition.topic)
        priority = priority or str(body.get("priority") or "info").lower()
        ctxt = dict(ctxt, **{loop_guard.ORIGIN_KEY: loop_guard.ORIGIN_KAFKA})
        return LocalNotification(
            target=oslo_messaging.Target(exchange=self._exchange, topic=f"{topic}.{priority}"),
            ctxt=ctxt, message=body)

    def dead_letter(self, message: ReceivedRecord, reason: str) -> None:
        """Reverse has no dead-letter destination: the record is logged and skipped."""
        delivery = message.delivery
        LOG.error("reverse: skipping record %s[%d]@%d: %s", delivery.partition.topic,
                  delivery.partition.partition, delivery.offset, reason)


_FROM_LOCAL = loop_guard.ORIGIN_LOCAL.encode()
