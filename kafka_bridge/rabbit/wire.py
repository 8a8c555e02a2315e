"""The rabbit driver's wire format for notifications: read, and write byte for byte.

oslo.messaging's rabbit driver publishes a notification as the kombu JSON
(``application/json``, ``utf-8``) of ``{"oslo.version": "2.0",
"oslo.message": "<JSON of the notification, its context as _context_<key>
keys, a _unique_id>"}``; older senders omit the envelope. ``decode`` reads a
message body as the driver would, but says why instead of dropping what it
cannot read; ``encode`` writes what the driver writes.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Mapping
from typing import Any

from kombu import compression

from kafka_bridge import oslo_json
from kafka_bridge.oslo_json import MESSAGE_KEY, VERSION, VERSION_KEY

CONTENT_TYPE = "application/json"
CONTENT_ENCODING = "utf-8"
UNIQUE_ID_KEY = "_unique_id"
CONTEXT_PREFIX = "_context_"
#: what the rabbit driver adds to a notification besides its context keys
DRIVER_KEYS = frozenset((UNIQUE_ID_KEY, "_msg_id", "_reply_q", "_timeout"))
_PREFIX_LENGTH = len(CONTEXT_PREFIX)
#: the kombu header naming a body's compression (``[oslo_messaging_rabbit] kombu_compression``)
COMPRESSION_HEADER = "compression"


class Undecodable(ValueError):
    """A message body that is not an oslo notification.

    ``kind`` is a short stable name of the reason (for logs and counting);
    ``str()`` says what exactly is wrong.
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def decode(body: bytes, content_type: str | None, content_encoding: str | None,
           headers: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(context, notification) of a message body as the rabbit driver sent it.

    Raises Undecodable for anything else: another content type or encoding,
    an unknown compression, a body that is not UTF-8 JSON, an envelope of
    another version or whose message is not JSON, JSON that is not an object.
    """
    if content_type != CONTENT_TYPE:
        raise Undecodable("unsupported content type",
                          f"{content_type!r}, expected {CONTENT_TYPE!r}" if content_type
                          else f"the message has none, expected {CONTENT_TYPE!r}")
    if (content_encoding or "").lower() != CONTENT_ENCODING:
        raise Undecodable("unsupported content encoding",
                          f"{content_encoding!r}, expected {CONTENT_ENCODING!r}"
                          if content_encoding else
                          f"the message has none, expected {CONTENT_ENCODING!r}")
    compressed_with = (headers or {}).get(COMPRESSION_HEADER)
    if compressed_with:
        try:
            body = compression.decompress(body, compressed_with)
        except (KeyError, OSError, ValueError, zlib.error) as exc:
            raise Undecodable("undecompressable body",
                              f"compression {compressed_with!r}: {exc}") from None
    outer = _json(body, "body is not JSON")
    if isinstance(outer, dict) and VERSION_KEY in outer and MESSAGE_KEY in outer:
        version = outer[VERSION_KEY]
        if not _compatible(version):
            raise Undecodable("unsupported envelope version",
                              f"{version!r}, this bridge reads {VERSION}")
        inner = outer[MESSAGE_KEY]
        if not isinstance(inner, str):
            raise Undecodable("bad envelope", f"{MESSAGE_KEY} is {type(inner).__name__}, "
                                              f"not a JSON string")
        outer = _json(inner, f"{MESSAGE_KEY} is not JSON")
    if not isinstance(outer, dict):
        raise Undecodable("not an object", f"the message is a JSON {type(outer).__name__}")
    context: dict[str, Any] = {}
    message: dict[str, Any] = {}
    for key, value in outer.items():  # one pass: this runs for every notification
        if key[:_PREFIX_LENGTH] == CONTEXT_PREFIX:
            context[key[_PREFIX_LENGTH:]] = value
        elif key not in DRIVER_KEYS:
            message[key] = value
    return context, message


def _json(text: bytes | str, kind: str) -> Any:
    """JSON of UTF-8 text, read as kombu reads it for the driver (text first, so that
    json does not guess another Unicode encoding)."""
    try:
        return json.loads(text.decode(CONTENT_ENCODING) if isinstance(text, bytes) else text)
    except UnicodeDecodeError as exc:
        raise Undecodable(kind, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:
        raise Undecodable(kind, str(exc)) from None
    except RecursionError:
        raise Undecodable(kind, "nested too deeply") from None


def _compatible(version: Any) -> bool:
    """Same major version, minor not above ours (the driver's rule)."""
    if version == VERSION:
        return True
    if not isinstance(version, str):
        return False
    ours = VERSION.split(".")
    parts = version.split(".")
    try:
        return int(parts[0]) == int(ours[0]) and int(parts[1]) <= int(ours[1])
    except (IndexError, ValueError):
        return False


def encode(ctxt: Mapping[str, Any], message: Mapping[str, Any]) -> bytes:
    """The body the rabbit driver publishes for a notification (messagingv2): a new
    unique id, the context packed in, the envelope around it, kombu's JSON.

    Raises TypeError or ValueError if the notification is not JSON-serializable.
    """
    body = dict(message)
    body[UNIQUE_ID_KEY] = unique_id()
    for key, value in ctxt.items():
        body[CONTEXT_PREFIX + key] = value
    return oslo_json.envelope(oslo_json.dumps(body))


def unique_id() -> str:
    """A new ``_unique_id``, as the driver makes one: ``uuid.uuid4().hex``, without the
    UUID object (a third of the cost)."""
    octets = bytearray(os.urandom(16))
    octets[6] = octets[6] & 0x0F | 0x40  # version 4
    octets[8] = octets[8] & 0x3F | 0x80  # RFC 4122 variant
    return octets.hex()
