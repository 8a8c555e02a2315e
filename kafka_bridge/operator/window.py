"""A replay's time window: operator time expressions, and the offsets they span per partition.

Times are Kafka record timestamps (what ``offsets_for_times`` searches):
the time the record was produced, unless the topic uses LogAppendTime.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from kafka.structs import TopicPartition

from kafka_bridge import notification

UTC = datetime.timezone.utc

#: seconds per unit of a relative time such as -2h or -1d12h
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

RELATIVE = re.compile(r"^-((?:\d+[smhdw])+)$")
RELATIVE_PART = re.compile(r"(\d+)([smhdw])")

TIME_FORMS = ("an ISO 8601 time (2026-11-24T12:00:00Z; without an offset it is UTC), "
              "a relative time (-30m, -2h, -1d12h; units s m h d w) or 'now'")


def parse_time(text: str, now: float | None = None) -> int:
    """Epoch milliseconds of an operator's time expression.

    Accepts TIME_FORMS; now (epoch seconds) is the reference of relative
    times. Raises ValueError naming the accepted forms.
    """
    value = text.strip()
    reference = time.time() if now is None else now
    if value == "now":
        return int(reference * 1000)
    relative = RELATIVE.match(value)
    if relative:
        seconds = sum(int(n) * UNITS[unit] for n, unit in RELATIVE_PART.findall(relative[1]))
        return int((reference - seconds) * 1000)
    try:
        moment = notification.parse_time(value)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use {TIME_FORMS}") from None
    return int(moment.timestamp() * 1000)


def format_ms(epoch_ms: int) -> str:
    """An epoch-milliseconds time as ISO 8601 UTC, as parse_time reads it back."""
    moment = datetime.datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclasses.dataclass(frozen=True)
class Window:
    """Record timestamps from start_ms (included) to end_ms (excluded; None: open)."""

    start_ms: int
    end_ms: int | None = None

    def __post_init__(self) -> None:
        if self.end_ms is not None and self.end_ms <= self.start_ms:
            raise ValueError(f"the window ends ({format_ms(self.end_ms)}) before it starts "
                             f"({format_ms(self.start_ms)}): --until must be later than --from")

    def contains(self, timestamp_ms: int) -> bool:
        return timestamp_ms >= self.start_ms and (self.end_ms is None
                                                  or timestamp_ms < self.end_ms)

    def describe(self) -> str:
        end = "now" if self.end_ms is None else format_ms(self.end_ms)
        return f"{format_ms(self.start_ms)} to {end}"


@dataclasses.dataclass(frozen=True)
class OffsetRange:
    """Offsets start (included) to end (excluded) of one partition."""

    start: int
    end: int

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


class OffsetLookup(Protocol):
    """What resolve needs of a consumer (kafka-python's KafkaConsumer has it)."""

    def offsets_for_times(self, timestamps: dict[TopicPartition, int]) -> Mapping[Any, Any]:
        ...

    def end_offsets(self, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int]:
        ...


def resolve(consumer: OffsetLookup, partitions: Iterable[TopicPartition],
            window: Window) -> dict[TopicPartition, OffsetRange]:
    """The offsets each partition's window spans, as of now.

    A partition starts at its first record stamped at or after the start
    and ends before its first record stamped at or after the end; without
    such a record (or without an end), at its end offset now, so records
    produced later are not part of the window. Timestamps within a
    partition need not be ordered: readers still check each record with
    Window.contains.
    """
    partitions = list(partitions)
    if not partitions:
        return {}
    ends = dict(consumer.end_offsets(partitions))
    starts = _first_at(consumer, partitions, window.start_ms, ends)
    stops = ends if window.end_ms is None else _first_at(consumer, partitions,
                                                         window.end_ms, ends)
    return {tp: OffsetRange(starts[tp], max(starts[tp], stops[tp])) for tp in partitions}


def _first_at(consumer: OffsetLookup, partitions: list[TopicPartition], timestamp_ms: int,
              ends: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
    found = consumer.offsets_for_times({tp: timestamp_ms for tp in partitions})
    return {tp: found[tp].offset if found.get(tp) is not None else ends[tp]
            for tp in partitions}
