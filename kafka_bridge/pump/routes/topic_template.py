"""Forward mode's ``[forward] topic_template``: the Kafka topic of a notification."""

from __future__ import annotations

import string

TEMPLATE_FIELDS = ("exchange", "topic", "priority", "event_type", "publisher_id")


def check_template(template: str) -> None:
    """Raise ValueError naming an unknown field of a topic template."""
    for _, field, _, _ in string.Formatter().parse(template):
        if field is not None and field not in TEMPLATE_FIELDS:
            raise ValueError(f"[forward] topic_template {template!r} uses unknown field "
                             f"{{{field}}}; known: {', '.join(TEMPLATE_FIELDS)}")
