"""How replay and tail write notifications: JSON lines, or one compact line for people."""

from __future__ import annotations

import json
from typing import Any, TextIO

from kafka_bridge.operator.selection import Notification
from kafka_bridge.operator.window import format_ms

#: payload fields shown by the text format when present, in this order
KEY_FIELDS = ("instance_id", "resource_id", "project_id", "tenant_id", "user_id", "state",
              "status")

FORMATS = ("jsonl", "text")


def as_json(notification: Notification) -> dict[str, Any]:
    """One notification with where it was read, as a JSON object."""
    message, delivery = notification.message, notification.delivery
    return {
        "message_id": message.get("message_id"),
        "event_type": message.get("event_type"),
        "priority": message.get("priority"),
        "publisher_id": message.get("publisher_id"),
        "timestamp": message.get("timestamp"),
        "payload": message.get("payload"),
        "context": notification.ctxt,
        "topic": delivery.partition.topic,
        "partition": delivery.partition.partition,
        "offset": delivery.offset,
        "kafka_timestamp": format_ms(delivery.timestamp_ms),
    }


def json_line(notification: Notification) -> str:
    """as_json on one line, without a newline."""
    return json.dumps(as_json(notification), default=str, ensure_ascii=False)


def text_line(notification: Notification) -> str:
    """time priority event_type publisher key=value..., for a terminal."""
    message = notification.message
    stamp = message.get("timestamp") or format_ms(notification.delivery.timestamp_ms)
    payload = message.get("payload")
    fields = [f"{name}={payload[name]}" for name in KEY_FIELDS
              if isinstance(payload, dict) and payload.get(name) not in (None, "")]
    return " ".join([str(stamp), str(message.get("priority") or "-").upper(),
                     str(message.get("event_type") or "-"),
                     str(message.get("publisher_id") or "-"), *fields])


class NotificationWriter:
    """Writes notifications to a stream in one of FORMATS, a line each."""

    def __init__(self, stream: TextIO, output_format: str = "jsonl") -> None:
        if output_format not in FORMATS:
            raise ValueError(f"output format {output_format!r}: choose {' or '.join(FORMATS)}")
        self._stream = stream
        self._line = json_line if output_format == "jsonl" else text_line

    def write(self, notification: Notification) -> None:
        self._stream.write(self._line(notification) + "\n")

    def flush(self) -> None:
        self._stream.flush()
