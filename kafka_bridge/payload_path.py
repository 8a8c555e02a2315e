"""Paths to a field of a notification: ``record_key_field`` and ``topic_template`` fields.

Two spellings:

* **JSON Pointer** (RFC 6901), starting with ``/``: each ``/`` separates keys,
  taken literally, dots included: ``/payload/nova_object.data/uuid`` reaches
  ``payload["nova_object.data"]["uuid"]`` of nova's versioned notifications.
  ``~1`` stands for a ``/`` and ``~0`` for a ``~`` inside a key; a number
  indexes a list (``/payload/ip_addresses/0``).
* **dotted**, anything else: ``payload.instance_id``. Each dot separates keys,
  as before; where that finds nothing, dots are also tried as part of a key,
  so ``payload.nova_object.data.uuid`` reaches nova's ``nova_object.data`` too.

Used by the Kafka layer (record keys, for both the driver and the daemon) and
by the daemon's forward topic template.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

_MISSING = object()


class PayloadPath:
    """A parsed path; ``find`` returns the value it names in a notification."""

    __slots__ = ("text", "_keys", "_pointer")

    def __init__(self, text: str) -> None:
        """Raises ValueError naming what is wrong with the path."""
        if not text:
            raise ValueError("a notification field path is empty")
        self.text = text
        self._pointer = text.startswith("/")
        if self._pointer:
            parts = text[1:].split("/")
            for part in parts:
                if "~" in part.replace("~0", "").replace("~1", ""):
                    raise ValueError(f"JSON Pointer {text!r}: '~' must be followed by 0 or 1 "
                                     f"(~0 is '~', ~1 is '/')")
            self._keys = tuple(p.replace("~1", "/").replace("~0", "~") for p in parts)
        else:
            self._keys = tuple(text.split("."))
            if "" in self._keys:
                raise ValueError(f"dotted path {text!r} has an empty part; for keys with "
                                 f"dots write a JSON Pointer such as /payload/nova_object.data")

    def __repr__(self) -> str:
        return f"PayloadPath({self.text!r})"

    def find(self, message: Any) -> Any:
        """The value at this path, or None where the notification has none."""
        found = (_walk(message, self._keys) if self._pointer
                 else _walk_dotted(message, self._keys))
        return None if found is _MISSING else found


def _step(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(key, _MISSING)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and key.isdigit():
        index = int(key)
        return value[index] if index < len(value) else _MISSING
    return _MISSING


def _walk(value: Any, keys: Sequence[str]) -> Any:
    for key in keys:
        value = _step(value, key)
        if value is _MISSING:
            break
    return value


def _walk_dotted(value: Any, parts: Sequence[str]) -> Any:
    """Shortest keys first (the dotted form's original meaning), then keys that
    contain dots, until one reading of the parts reaches a value."""
    if not parts:
        return value
    for end in range(1, len(parts) + 1):
        child = _step(value, ".".join(parts[:end]))
        if child is not _MISSING:
            found = _walk_dotted(child, parts[end:])
            if found is not _MISSING:
                return found
    return _MISSING


def as_text(value: Any) -> str | None:
    """A found value as text: a string as it is, anything else as its JSON; None stays None."""
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
