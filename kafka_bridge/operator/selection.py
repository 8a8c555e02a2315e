"""Which records an operator asked for: a time window, event types and publisher ids."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from kafka_bridge.pump.routes.event_filter import EventFilter
from kafka_bridge.kafka import envelope
from kafka_bridge.kafka.consumer import Delivery
from kafka_bridge.operator.window import Window

#: why a record read was not selected (summary counters)
OUTSIDE_WINDOW = "outside_window"
FILTERED = "filtered"
UNDECODABLE = "undecodable"
REASONS = (OUTSIDE_WINDOW, FILTERED, UNDECODABLE)


@dataclasses.dataclass(frozen=True)
class Notification:
    """A selected record, decoded."""

    delivery: Delivery
    ctxt: dict[str, Any]
    message: dict[str, Any]


class Rejected(Exception):
    """A record not selected; ``reason`` is one of REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


class Selection:
    """Selects records by timestamp window and shell patterns (fnmatch, case-sensitive).

    No pattern means every event type (publisher id).
    """

    def __init__(self, window: Window | None = None, event_types: Sequence[str] = (),
                 publisher_ids: Sequence[str] = ()) -> None:
        self._window = window
        self._event_types = EventFilter(event_types, ())
        self._publishers = EventFilter(publisher_ids, ())

    def select(self, delivery: Delivery) -> Notification:
        """The decoded notification; raises Rejected saying why not."""
        if self._window is not None and not self._window.contains(delivery.timestamp_ms):
            raise Rejected(OUTSIDE_WINDOW)
        try:
            ctxt, message = envelope.decode(delivery.value)
        except envelope.UndecodableRecord as exc:
            raise Rejected(UNDECODABLE, str(exc)) from None
        if not (self._event_types.accepts(str(message.get("event_type")))
                and self._publishers.accepts(str(message.get("publisher_id")))):
            raise Rejected(FILTERED)
        return Notification(delivery, ctxt, message)
