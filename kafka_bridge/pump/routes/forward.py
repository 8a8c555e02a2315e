"""Forward mode: how a notification from RabbitMQ becomes a Kafka record."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from kafka_bridge.kafka import envelope
from kafka_bridge.kafka.envelope import OutgoingRecord
from kafka_bridge.kafka.settings import KafkaSettings
from kafka_bridge.notification import split_routing_key
from kafka_bridge.pump.protocols import Poison, Skip, SkipReason
from kafka_bridge.pump.routes import loop_guard
from kafka_bridge.pump.routes.event_filter import EventFilter
from kafka_bridge.pump.routes.topic_template import TopicTemplate
from kafka_bridge.pump.sources.rabbit import RabbitNotification

LOG = logging.getLogger(__name__)

#: record headers of forward mode: why a dead letter is one, and where it came from
ERROR_HEADER = "kafka_bridge_error"
SOURCE_HEADER = "kafka_bridge_source"
#: dead-letter headers: the message's AMQP origin and properties, and its size if cut
EXCHANGE_HEADER = "kafka_bridge_exchange"
ROUTING_KEY_HEADER = "kafka_bridge_routing_key"
QUEUE_HEADER = "kafka_bridge_queue"
CONTENT_TYPE_HEADER = "kafka_bridge_content_type"
CONTENT_ENCODING_HEADER = "kafka_bridge_content_encoding"
COMPRESSION_HEADER = "kafka_bridge_compression"
TRUNCATED_HEADER = "kafka_bridge_truncated_from"

#: bytes kept free for the record's framing when a dead letter is cut to size
DEAD_LETTER_OVERHEAD = 128

#: longest reason kept in the error header
REASON_LIMIT = 1000

#: distinct dead-letter reasons logged; beyond, reasons are only counted
LOGGED_REASONS_LIMIT = 100


class ForwardRoute:
    """Maps a local notification to its Kafka record (or dead letter)."""

    def __init__(self, settings: KafkaSettings, topic_template: TopicTemplate,
                 event_filter: EventFilter, output_format: str,
                 dead_letter_topic: str) -> None:
        self._settings = settings
        self._template = topic_template
        self._filter = event_filter
        self._plain = output_format == "plain"
        self._dead_letter_topic = dead_letter_topic
        self._logged_reasons: set[str] = set()

    def record_for(self, message: RabbitNotification) -> OutgoingRecord:
        if message.error is not None:
            raise Poison(str(message.error))
        if message.ctxt.get(loop_guard.ORIGIN_KEY) == loop_guard.ORIGIN_KAFKA:
            raise Skip(SkipReason.LOOP)
        body = message.message
        if not isinstance(body, dict) or not isinstance(body.get("event_type"), str):
            raise Poison("not an oslo notification: no event_type string")
        if not self._filter.accepts(body["event_type"]):
            raise Skip(SkipReason.FILTERED)
        topic, priority = split_routing_key(message.routing_key)
        priority = priority or str(body.get("priority") or "").lower()
        if not priority:
            raise Poison("not an oslo notification: no priority")
        fields = {"exchange": message.exchange, "topic": topic, "priority": priority,
                  "event_type": body["event_type"],
                  "publisher_id": str(body.get("publisher_id") or "")}
        try:
            value = (plain_value(body) if self._plain
                     else envelope.encode(message.ctxt, body))
        except ValueError as exc:
            raise Poison(f"not serializable: {exc}") from None
        return OutgoingRecord(
            topic=self._template.topic(fields, body),
            value=value,
            key=envelope.record_key(body, self._settings.record_key_path),
            headers=envelope.headers_for(body) + self._origin_headers(message))

    def dead_letter(self, message: RabbitNotification, reason: str) -> OutgoingRecord:
        """The message's original body, to the dead-letter topic, with headers saying why
        and where from; cut to fit max_request_size only if it does not fit."""
        self._log_once(message, reason)
        headers = ((ERROR_HEADER, _cut_text(reason, REASON_LIMIT)),
                   *self._origin_headers(message),
                   *((name, value.encode("utf-8")) for name, value in (
                       (EXCHANGE_HEADER, message.exchange),
                       (ROUTING_KEY_HEADER, message.routing_key),
                       (QUEUE_HEADER, message.queue),
                       (CONTENT_TYPE_HEADER, message.content_type),
                       (CONTENT_ENCODING_HEADER, message.content_encoding),
                       (COMPRESSION_HEADER, message.compression)) if value is not None))
        value = message.body
        if len(value) > self._room(headers):
            headers += ((TRUNCATED_HEADER, str(len(value)).encode()),)
            value = value[:self._room(headers)]
        return OutgoingRecord(topic=self._dead_letter_topic, value=value, headers=headers)

    def _room(self, headers: tuple[tuple[str, bytes], ...]) -> int:
        """Bytes a record value may have beside headers."""
        return max(0, self._settings.max_request_size - DEAD_LETTER_OVERHEAD - sum(
            len(k) + len(v) for k, v in headers))

    def _log_once(self, message: RabbitNotification, reason: str) -> None:
        """A warning the first time a kind of reason is seen; then only the counter.
        The kind is the reason's text before any colon, numbers left out."""
        kind = re.sub(r"\d+", "#", reason.split(":", 1)[0])
        if kind in self._logged_reasons or len(self._logged_reasons) >= LOGGED_REASONS_LIMIT:
            return
        self._logged_reasons.add(kind)
        LOG.warning("forward: dead-lettering a message from exchange %s, routing key %s, queue "
                    "%s to %s: %s (further messages for this reason are only counted in "
                    "kafka_bridge_notifications_total{event=\"dead_lettered\"})",
                    message.exchange, message.routing_key, message.queue,
                    self._dead_letter_topic, reason)

    @staticmethod
    def _origin_headers(message: RabbitNotification) -> tuple[tuple[str, bytes], ...]:
        return ((loop_guard.ORIGIN_KEY, loop_guard.ORIGIN_LOCAL.encode()),
                (SOURCE_HEADER, f"{message.exchange}/{message.routing_key}".encode()))


def plain_value(message: Mapping[str, Any]) -> bytes:
    """The notification alone as JSON (output_format = plain)."""
    return json.dumps({k: message.get(k) for k in (
        "message_id", "publisher_id", "event_type", "priority", "payload", "timestamp")},
        default=str).encode("utf-8")


def _cut_text(text: str, limit: int) -> bytes:
    """text as UTF-8, at most limit bytes, not cutting a character in two."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore").encode("utf-8")
