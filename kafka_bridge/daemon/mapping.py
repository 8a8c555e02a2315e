"""How the daemon maps notifications between the two sides, and the loop guard.

Loop guard: what forward mode writes to Kafka carries the record header
``kafka_bridge_origin: local``; what reverse mode republishes locally carries
``kafka_bridge_origin: kafka`` in its context. Each direction skips what the
other direction produced, so nothing returns to the side it came from, in
``both`` mode and between two bridges pointed at each other.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import string
from collections.abc import Mapping, Sequence
from typing import Any

from kafka_bridge.daemon.options import PRIORITIES

ORIGIN_KEY = "kafka_bridge_origin"
ORIGIN_LOCAL = "local"
ORIGIN_KAFKA = "kafka"
ERROR_HEADER = "kafka_bridge_error"
SOURCE_HEADER = "kafka_bridge_source"

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

TEMPLATE_FIELDS = ("exchange", "topic", "priority", "event_type", "publisher_id")


def check_template(template: str) -> None:
    """Raise ValueError naming an unknown field of a topic template."""
    for _, field, _, _ in string.Formatter().parse(template):
        if field is not None and field not in TEMPLATE_FIELDS:
            raise ValueError(f"[forward] topic_template {template!r} uses unknown field "
                             f"{{{field}}}; known: {', '.join(TEMPLATE_FIELDS)}")


class EventFilter:
    """include/exclude shell patterns on event types."""

    def __init__(self, include: Sequence[str], exclude: Sequence[str]) -> None:
        self._include = list(include) or ["*"]
        self._exclude = list(exclude)

    def accepts(self, event_type: str) -> bool:
        return (any(fnmatch.fnmatchcase(event_type, p) for p in self._include)
                and not any(fnmatch.fnmatchcase(event_type, p) for p in self._exclude))


def split_routing_key(routing_key: str) -> tuple[str, str | None]:
    """``notifications.info`` -> (``notifications``, ``info``); no known priority -> None."""
    topic, _, last = routing_key.rpartition(".")
    if topic and last.lower() in PRIORITIES:
        return topic, last.lower()
    return routing_key, None


def plain_value(message: Mapping[str, Any]) -> bytes:
    """The notification alone as JSON (output_format = plain)."""
    return json.dumps({k: message.get(k) for k in (
        "message_id", "publisher_id", "event_type", "priority", "payload", "timestamp")},
        default=str).encode("utf-8")


def dead_letter_value(ctxt: Any, message: Any) -> bytes:
    """Whatever could be read of a poison message, as JSON."""
    return json.dumps({"context": ctxt, "message": message}, default=repr).encode("utf-8")


def parse_start_from(value: str) -> str | int:
    """committed / earliest / latest, or a time as epoch milliseconds.

    Raises ValueError naming the accepted forms.
    """
    if value in ("committed", "earliest", "latest"):
        return value
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"[reverse] start_from={value!r} is not committed, earliest, latest "
                         f"or an ISO 8601 time such as 2026-11-24T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return (moment - EPOCH) // datetime.timedelta(milliseconds=1)


def notification_time(message: Any) -> float | None:
    """Epoch seconds of an oslo notification's ``timestamp`` (UTC), None if unreadable."""
    stamp = message.get("timestamp") if isinstance(message, Mapping) else None
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()
