"""Forward mode: notifications from the local oslo.messaging transport to Kafka."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import oslo_messaging

from kafka_bridge.daemon import mapping
from kafka_bridge.kafka import envelope
from kafka_bridge.kafka.envelope import OutgoingRecord
from kafka_bridge.kafka.settings import KafkaSettings
from kafka_bridge.pump import BatchHandler, Poison, Skip

LOG = logging.getLogger(__name__)

#: bytes kept free for the record's framing when a dead letter is cut to size
DEAD_LETTER_OVERHEAD = 128


class LocalMessage:
    """A notification received on the local transport, settled by ack or nack."""

    def __init__(self, incoming: Any, default_topic: str) -> None:
        self.incoming = incoming
        self.ctxt = incoming.ctxt if isinstance(incoming.ctxt, dict) else {}
        self.message = incoming.message
        # The rabbit driver keeps the AMQP delivery: it says which exchange and
        # routing key the notification came by (one queue may collect many
        # exchanges). Other drivers: the listener's own topic.
        delivery = getattr(getattr(incoming.message, "_raw_message", None),
                           "delivery_info", None) or {}
        self.exchange = delivery.get("exchange") or ""
        self.routing_key = delivery.get("routing_key") or default_topic
        self.created = mapping.notification_time(self.message)

    def ack(self) -> None:
        self.incoming.acknowledge()

    def nack(self) -> None:
        self.incoming.requeue()


class LocalNotificationSource:
    """Listens to exchanges x topics x priorities on the local transport.

    Batches go to the handler on the driver's listener thread; the listener
    does not poll again until the handler returned, so an unavailable Kafka
    holds the source (RabbitMQ keeps the rest, up to the prefetch count).
    """

    def __init__(self, transport: oslo_messaging.Transport, exchanges: Sequence[str],
                 topics: Sequence[str], priorities: Sequence[str], pool: str | None,
                 batch_size: int, batch_timeout: float) -> None:
        self._transport = transport
        self._plan = [(topic, [(oslo_messaging.Target(exchange=exchange, topic=topic), priority)
                               for exchange in exchanges for priority in priorities])
                      for topic in topics]
        self._pool = pool
        self._batch = (batch_size, batch_timeout)
        self._listeners: list[Any] = []

    def start(self, handler: BatchHandler) -> None:
        """Declare the queues and start consuming."""
        for topic, targets in self._plan:
            listener = self._transport._listen_for_notifications(
                targets, self._pool, *self._batch)
            listener.start(lambda incoming, topic=topic: handler(
                [LocalMessage(i, topic) for i in incoming]))
            self._listeners.append(listener)

    def stop(self) -> None:
        """Stop consuming; what was already received is still handed over."""
        for listener in self._listeners:
            listener.stop()

    def cleanup(self) -> None:
        for listener in self._listeners:
            listener.cleanup()
        self._listeners = []


class ForwardRoute:
    """Maps a local notification to its Kafka record (or dead letter)."""

    def __init__(self, settings: KafkaSettings, topic_template: str,
                 event_filter: mapping.EventFilter, output_format: str,
                 dead_letter_topic: str) -> None:
        mapping.check_template(topic_template)
        self._settings = settings
        self._template = topic_template
        self._filter = event_filter
        self._plain = output_format == "plain"
        self._dead_letter_topic = dead_letter_topic

    def record_for(self, message: LocalMessage) -> OutgoingRecord:
        if message.ctxt.get(mapping.ORIGIN_KEY) == mapping.ORIGIN_KAFKA:
            raise Skip("loop_suppressed")
        body = message.message
        if not isinstance(body, dict) or not isinstance(body.get("event_type"), str):
            raise Poison("not an oslo notification (no event_type)")
        if not self._filter.accepts(body["event_type"]):
            raise Skip("filtered")
        topic, priority = mapping.split_routing_key(message.routing_key)
        priority = priority or str(body.get("priority") or "").lower()
        if not priority:
            raise Poison("notification has no priority")
        fields = {"exchange": message.exchange, "topic": topic, "priority": priority,
                  "event_type": body["event_type"],
                  "publisher_id": str(body.get("publisher_id") or "")}
        try:
            value = (mapping.plain_value(body) if self._plain
                     else envelope.encode(message.ctxt, body))
        except ValueError as exc:
            raise Poison(str(exc)) from None
        return OutgoingRecord(
            topic=self._template.format(**fields),
            value=value,
            key=envelope.record_key(body, self._settings.record_key_field),
            headers=envelope.headers_for(body) + self._origin_headers(message))

    def dead_letter(self, message: LocalMessage, reason: str) -> OutgoingRecord:
        LOG.warning("forward: dead-lettering a notification from %s/%s to %s: %s",
                    message.exchange, message.routing_key, self._dead_letter_topic, reason)
        headers = ((mapping.ERROR_HEADER, reason.encode("utf-8")[:1000]),
                   *self._origin_headers(message))
        # The dead letter itself must fit: cut what could be read of the message.
        room = self._settings.max_request_size - DEAD_LETTER_OVERHEAD - sum(
            len(k) + len(v) for k, v in headers)
        value = mapping.dead_letter_value(message.ctxt, message.message)[:max(0, room)]
        return OutgoingRecord(topic=self._dead_letter_topic, value=value, headers=headers)

    @staticmethod
    def _origin_headers(message: LocalMessage) -> tuple[tuple[str, bytes], ...]:
        return ((mapping.ORIGIN_KEY, mapping.ORIGIN_LOCAL.encode()),
                (mapping.SOURCE_HEADER, f"{message.exchange}/{message.routing_key}".encode()))
