"""Operator times and windows: parsing, and offsets per partition, without a broker."""

from __future__ import annotations

import datetime

import pytest
from kafka.structs import OffsetAndTimestamp, TopicPartition

from kafka_bridge.operator.window import OffsetRange, Window, format_ms, parse_time, resolve

NOW = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.timezone.utc).timestamp()
NOW_MS = int(NOW * 1000)


@pytest.mark.parametrize("text, expected", [
    ("2026-11-24T12:00:00Z", "2026-11-24T12:00:00.000Z"),
    ("2026-11-24T12:00:00+01:00", "2026-11-24T11:00:00.000Z"),
    ("2026-11-24T12:00", "2026-11-24T12:00:00.000Z"),        # no offset: UTC
    ("2026-11-24 12:30:15.250", "2026-11-24T12:30:15.250Z"),
    ("2026-11-24", "2026-11-24T00:00:00.000Z"),
])
def test_iso_times_are_read_as_utc_unless_they_name_an_offset(text: str, expected: str) -> None:
    assert format_ms(parse_time(text, NOW)) == expected


@pytest.mark.parametrize("text, seconds_ago", [
    ("-90s", 90), ("-30m", 1800), ("-2h", 7200), ("-1d", 86400), ("-1w", 604800),
    ("-1d12h", 129600), ("-1h30m", 5400), ("now", 0),
])
def test_relative_times_count_back_from_now(text: str, seconds_ago: int) -> None:
    assert parse_time(text, NOW) == NOW_MS - seconds_ago * 1000


@pytest.mark.parametrize("text", ["yesterday", "-2x", "2h", "-h", "24/11/2026", ""])
def test_a_time_that_cannot_be_read_names_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_time(text, NOW)
    message = str(info.value)
    assert repr(text) in message
    assert "ISO 8601" in message and "-2h" in message and "now" in message


def test_format_ms_reads_back_with_parse_time() -> None:
    assert parse_time(format_ms(NOW_MS + 123)) == NOW_MS + 123


def test_window_includes_its_start_and_excludes_its_end() -> None:
    window = Window(1000, 2000)
    assert not window.contains(999)
    assert window.contains(1000)
    assert window.contains(1999)
    assert not window.contains(2000)
    assert Window(1000).contains(10 ** 13)


def test_a_window_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="--until must be later than --from"):
        Window(2000, 1000)


class FakeOffsets:
    """Partitions of records stamped start + 10 ms * offset, ending at `ends`."""

    def __init__(self, ends: dict[TopicPartition, int], start_ms: int = 0) -> None:
        self.ends = ends
        self.start_ms = start_ms

    def end_offsets(self, partitions):
        return {tp: self.ends[tp] for tp in partitions}

    def offsets_for_times(self, timestamps):
        found = {}
        for tp, ts in timestamps.items():
            offset = max(0, -(-(ts - self.start_ms) // 10))
            found[tp] = (OffsetAndTimestamp(offset, self.start_ms + offset * 10, -1)
                         if offset < self.ends[tp] else None)
        return found


A, B, EMPTY = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("t", 2)


def test_resolve_spans_the_records_stamped_within_the_window() -> None:
    offsets = FakeOffsets({A: 100, B: 50, EMPTY: 0})
    ranges = resolve(offsets, [A, B, EMPTY], Window(205, 700))
    # first record at or after 205 ms is offset 21; the end is the first at or after 700
    assert ranges[A] == OffsetRange(21, 70)
    assert ranges[B] == OffsetRange(21, 50)     # no record at 700 yet: up to the end now
    assert ranges[EMPTY] == OffsetRange(0, 0)
    assert [r.size for r in ranges.values()] == [49, 29, 0]


def test_resolve_without_an_end_reads_up_to_the_end_offsets_now() -> None:
    ranges = resolve(FakeOffsets({A: 100}), [A], Window(500))
    assert ranges[A] == OffsetRange(50, 100)


def test_a_window_after_every_record_is_empty() -> None:
    ranges = resolve(FakeOffsets({A: 100}), [A], Window(5000, 6000))
    assert ranges[A] == OffsetRange(100, 100)
    assert ranges[A].size == 0
