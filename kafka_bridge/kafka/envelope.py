"""The wire format: topic names, record values, headers and keys.

Record values are byte-compatible with oslo.messaging's own ``kafka://``
driver: the JSON of ``{"oslo.version": "2.0", "oslo.message": "<JSON of the
notification with its context under _context>"}``. Topics are named as that
driver names them: ``<topic>.<priority>[.<virtual host>]``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from kafka_bridge import oslo_json
from kafka_bridge.compat.oslo_messaging import deserialize_msg
from kafka_bridge.payload_path import PayloadPath, as_text

#: record headers set on every notification
HEADER_EVENT_TYPE = "event_type"
HEADER_PRIORITY = "priority"
HEADER_PUBLISHER_ID = "publisher_id"
HEADER_MESSAGE_ID = "message_id"
#: the notification's fields set as headers, each named as the field
HEADER_FIELDS = (HEADER_EVENT_TYPE, HEADER_PRIORITY, HEADER_PUBLISHER_ID, HEADER_MESSAGE_ID)


class UndecodableRecord(ValueError):
    """A record value that is not an oslo notification envelope."""


@dataclasses.dataclass(frozen=True)
class OutgoingRecord:
    """One record to publish."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def kafka_topic(topic: str, priority: str | None, virtual_host: str | None) -> str:
    """The Kafka topic of oslo topic and priority, as ``kafka://`` names it."""
    return ".".join(part for part in (topic, priority, virtual_host) if part)


def encode(ctxt: Any, message: Mapping[str, Any]) -> bytes:
    """The ``kafka://`` record value for a notification and its context.

    Dates become ISO strings and sets lists, as oslo's jsonutils makes them.
    Raises ValueError naming the value if the notification cannot be
    serialized.
    """
    context = ctxt if isinstance(ctxt, dict) else ctxt.to_dict() if ctxt is not None else {}
    body = dict(message)
    body["_context"] = context
    try:
        return oslo_json.envelope(oslo_json.dumps(body))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"notification is not JSON-serializable: {exc}") from None


def decode(value: bytes | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(context, notification) of a record value written by encode or ``kafka://``.

    Raises UndecodableRecord saying what is wrong with it.
    """
    if value is None:
        raise UndecodableRecord("record has no value")
    try:
        outer = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UndecodableRecord(f"record value is not JSON ({exc})") from None
    if not isinstance(outer, dict):
        raise UndecodableRecord("record value is JSON but not an object")
    try:
        message = deserialize_msg(outer)
    except Exception as exc:  # noqa: BLE001 - oslo raises several types here
        raise UndecodableRecord(f"bad oslo envelope ({exc})") from None
    if isinstance(message, str):
        try:
            message = json.loads(message)
        except ValueError as exc:
            raise UndecodableRecord(f"oslo.message is not JSON ({exc})") from None
    if not isinstance(message, dict) or "event_type" not in message:
        raise UndecodableRecord("record is not an oslo notification (no event_type)")
    context = message.pop("_context", {})
    if not isinstance(context, dict):
        raise UndecodableRecord("notification _context is not an object")
    return context, message


def headers_for(message: Mapping[str, Any]) -> tuple[tuple[str, bytes], ...]:
    """Record headers naming the notification (present fields only)."""
    headers = []
    for name in HEADER_FIELDS:  # a loop: this runs for every notification
        value = message.get(name)
        if value is not None:
            headers.append((name, str(value).encode("utf-8")))
    return tuple(headers)


def record_key(message: Mapping[str, Any], path: PayloadPath | None) -> bytes | None:
    """The value at path in message as a record key (a string as it is, anything else as
    its JSON), or None if there is no path or no value there."""
    if path is None:
        return None
    text = as_text(path.find(message))
    return None if text is None else text.encode()
