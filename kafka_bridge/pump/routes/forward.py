"""Forward mode: how a notification from RabbitMQ becomes a Kafka record."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from kafka_bridge.kafka import envelope
from kafka_bridge.kafka.envelope import OutgoingRecord
from kafka_bridge.kafka.settings import KafkaSettings
from kafka_bridge.notification import split_routing_key
from kafka_bridge.pump.protocols import Poison, Skip, SkipReason
from kafka_bridge.pump.routes import loop_guard
from kafka_bridge.pump.routes.event_filter import EventFilter
from kafka_bridge.pump.routes.topic_template import check_template
from kafka_bridge.pump.sources.rabbit import RabbitNotification

LOG = logging.getLogger(__name__)

#: record headers of forward mode: why a dead letter is one, and where it came from
ERROR_HEADER = "kafka_bridge_error"
SOURCE_HEADER = "kafka_bridge_source"

#: bytes kept free for the record's framing when a dead letter is cut to size
DEAD_LETTER_OVERHEAD = 128


class ForwardRoute:
    """Maps a local notification to its Kafka record (or dead letter)."""

    def __init__(self, settings: KafkaSettings, topic_template: str,
                 event_filter: EventFilter, output_format: str,
                 dead_letter_topic: str) -> None:
        check_template(topic_template)
        self._settings = settings
        self._template = topic_template
        self._filter = event_filter
        self._plain = output_format == "plain"
        self._dead_letter_topic = dead_letter_topic

    def record_for(self, message: RabbitNotification) -> OutgoingRecord:
        if message.ctxt.get(loop_guard.ORIGIN_KEY) == loop_guard.ORIGIN_KAFKA:
            raise Skip(SkipReason.LOOP)
        body = message.message
        if not isinstance(body, dict) or not isinstance(body.get("event_type"), str):
            raise Poison("not an oslo notification (no event_type)")
        if not self._filter.accepts(body["event_type"]):
            raise Skip(SkipReason.FILTERED)
        topic, priority = split_routing_key(message.routing_key)
        priority = priority or str(body.get("priority") or "").lower()
        if not priority:
            raise Poison("notification has no priority")
        fields = {"exchange": message.exchange, "topic": topic, "priority": priority,
                  "event_type": body["event_type"],
                  "publisher_id": str(body.get("publisher_id") or "")}
        try:
            value = (plain_value(body) if self._plain
                     else envelope.encode(message.ctxt, body))
        except ValueError as exc:
            raise Poison(str(exc)) from None
        return OutgoingRecord(
            topic=self._template.format(**fields),
            value=value,
            key=envelope.record_key(body, self._settings.record_key_field),
            headers=envelope.headers_for(body) + self._origin_headers(message))

    def dead_letter(self, message: RabbitNotification, reason: str) -> OutgoingRecord:
        LOG.warning("forward: dead-lettering a notification from %s/%s to %s: %s",
                    message.exchange, message.routing_key, self._dead_letter_topic, reason)
        headers = ((ERROR_HEADER, reason.encode("utf-8")[:1000]),
                   *self._origin_headers(message))
        # The dead letter itself must fit: cut what could be read of the message.
        room = self._settings.max_request_size - DEAD_LETTER_OVERHEAD - sum(
            len(k) + len(v) for k, v in headers)
        value = dead_letter_value(message.ctxt, message.message)[:max(0, room)]
        return OutgoingRecord(topic=self._dead_letter_topic, value=value, headers=headers)

    @staticmethod
    def _origin_headers(message: RabbitNotification) -> tuple[tuple[str, bytes], ...]:
        return ((loop_guard.ORIGIN_KEY, loop_guard.ORIGIN_LOCAL.encode()),
                (SOURCE_HEADER, f"{message.exchange}/{message.routing_key}".encode()))


def plain_value(message: Mapping[str, Any]) -> bytes:
    """The notification alone as JSON (output_format = plain)."""
    return json.dumps({k: message.get(k) for k in (
        "message_id", "publisher_id", "event_type", "priority", "payload", "timestamp")},
        default=str).encode("utf-8")


def dead_letter_value(ctxt: Any, message: Any) -> bytes:
    """Whatever could be read of a poison message, as JSON."""
    return json.dumps({"context": ctxt, "message": message}, default=repr).encode("utf-8")
