"""Forward mode's ``[forward] topic_template``: the Kafka topic of a notification.

A template is text with fields in braces. A field is one of the names in
``TEMPLATE_FIELDS`` or a path into the notification (see
kafka_bridge.payload_path): a JSON Pointer (``{/payload/nova_object.data/tenant_id}``)
or a dotted path with at least one dot (``{payload.tenant_id}``). Each value is
made a legal part of a Kafka topic name: characters other than letters,
digits, ``.``, ``_`` and ``-`` become ``_``. A notification without a value
at one of the paths, or whose topic would not be a legal name, goes to the
topic of ``[forward] topic_fallback`` instead: it is never dropped.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

from kafka_bridge.payload_path import PayloadPath, as_text

TEMPLATE_FIELDS = ("exchange", "topic", "priority", "event_type", "publisher_id")

#: Kafka's limit on the length of a topic name
MAX_TOPIC_LENGTH = 249

_ILLEGAL = re.compile(r"[^A-Za-z0-9._-]")


def legal_part(value: str) -> str:
    """value with every character Kafka refuses in a topic name replaced by ``_``."""
    return _ILLEGAL.sub("_", value)


class _Template:
    """One parsed template: literal text and fields, alternating."""

    def __init__(self, text: str, option: str, paths: bool) -> None:
        self.text = text
        self.parts: list[tuple[str, str | None, PayloadPath | None]] = []
        for literal, field, spec, conversion in string.Formatter().parse(text):
            if _ILLEGAL.search(literal):
                raise ValueError(f"{option} {text!r}: {literal!r} has characters Kafka refuses "
                                 f"in topic names; use letters, digits, '.', '_' and '-'")
            if field is None:
                self.parts.append((literal, None, None))
                continue
            if spec or conversion:
                raise ValueError(f"{option} {text!r}: field {{{field}}} has a format spec or "
                                 f"conversion; ':' and '!' cannot appear in a field")
            path = None
            if field not in TEMPLATE_FIELDS:
                if not (paths and (field.startswith("/") or "." in field)):
                    raise ValueError(
                        f"{option} {text!r} uses unknown field {{{field}}}; known: "
                        f"{', '.join(TEMPLATE_FIELDS)}"
                        + (", or a path into the notification such as {/payload/tenant_id}"
                           if paths else " (no paths here: it must always resolve)"))
                path = PayloadPath(field)
            self.parts.append((literal, field, path))

    def render(self, fields: Mapping[str, str], message: Any) -> str | None:
        """The topic, or None if a path has no value (or a whole object or list)."""
        out = []
        for literal, field, path in self.parts:
            out.append(literal)
            if field is None:
                continue
            if path is None:
                out.append(legal_part(fields[field]))
                continue
            found = path.find(message)
            if isinstance(found, (dict, list)):
                return None
            value = as_text(found)
            if not value:
                return None
            out.append(legal_part(value))
        return "".join(out)


class TopicTemplate:
    """``[forward] topic_template`` with ``[forward] topic_fallback``.

    Raises ValueError at construction naming an unknown field, a malformed
    path or illegal literal text; the fallback may use the named fields only.
    """

    def __init__(self, template: str, fallback: str) -> None:
        self._template = _Template(template, "[forward] topic_template", paths=True)
        self._fallback = _Template(fallback, "[forward] topic_fallback", paths=False)

    def topic(self, fields: Mapping[str, str], message: Any) -> str:
        """The Kafka topic of a notification: fields has a value for each
        TEMPLATE_FIELDS name; message is the notification the paths look into."""
        topic = self._template.render(fields, message)
        if topic is None or topic in ("", ".", "..") or len(topic) > MAX_TOPIC_LENGTH:
            topic = self._fallback.render(fields, message)
            assert topic is not None, "a fallback has no paths"
        return topic[:MAX_TOPIC_LENGTH]
