"""Selection (window, event type, publisher id), output formats and progress, without a broker."""

from __future__ import annotations

import io
import json

import pytest
from kafka.structs import TopicPartition

from kafka_bridge.kafka import envelope
from kafka_bridge.kafka.consumer import Delivery
from kafka_bridge.operator import formats, progress
from kafka_bridge.operator.progress import Progress
from kafka_bridge.operator.selection import (FILTERED, OUTSIDE_WINDOW, UNDECODABLE, Rejected,
                                             Selection)
from kafka_bridge.operator.window import Window

TP = TopicPartition("notifications.info", 2)


def delivery(event_type: str = "compute.instance.create.end",
             publisher_id: str = "nova-compute.host1", timestamp_ms: int = 1500,
             value: bytes | None = None, offset: int = 7) -> Delivery:
    message = {"message_id": "m-1", "event_type": event_type, "publisher_id": publisher_id,
               "priority": "INFO", "timestamp": "2026-11-24 12:00:01.000000",
               "payload": {"instance_id": "i-1", "project_id": "p-1", "size": 3}}
    if value is None:
        value = envelope.encode({"request_id": "req-1"}, message)
    return Delivery(TP, offset, None, value, (), timestamp_ms)


def reason(selection: Selection, record: Delivery) -> str | None:
    try:
        selection.select(record)
    except Rejected as rejected:
        return rejected.reason
    return None


def test_records_outside_the_window_are_rejected_before_decoding() -> None:
    selection = Selection(Window(1000, 2000))
    assert reason(selection, delivery(timestamp_ms=999, value=b"not json")) == OUTSIDE_WINDOW
    assert reason(selection, delivery(timestamp_ms=2000)) == OUTSIDE_WINDOW
    assert reason(selection, delivery(timestamp_ms=1000)) is None


@pytest.mark.parametrize("patterns, event_type, selected", [
    ((), "anything.at.all", True),
    (("compute.instance.*",), "compute.instance.create.end", True),
    (("compute.instance.*",), "volume.create.end", False),
    (("volume.*", "compute.*.create.end"), "compute.instance.create.end", True),
    (("Compute.*",), "compute.instance.create.end", False),     # case-sensitive
])
def test_event_type_patterns_select_any_match(patterns, event_type, selected) -> None:
    got = reason(Selection(event_types=patterns), delivery(event_type=event_type))
    assert got == (None if selected else FILTERED)


def test_publisher_and_event_type_patterns_must_both_match() -> None:
    selection = Selection(event_types=["compute.*"], publisher_ids=["nova-compute.*"])
    assert reason(selection, delivery()) is None
    assert reason(selection, delivery(publisher_id="ceilometer.polling")) == FILTERED
    assert reason(selection, delivery(event_type="image.update")) == FILTERED


def test_a_record_that_is_not_a_notification_is_rejected_with_the_reason() -> None:
    with pytest.raises(Rejected) as info:
        Selection().select(delivery(value=b"{\"hello\": 1}"))
    assert info.value.reason == UNDECODABLE
    assert "oslo" in str(info.value)


def test_jsonl_has_the_notification_and_where_it_was_read() -> None:
    record = delivery(timestamp_ms=1_795_000_000_123)
    out = io.StringIO()
    writer = formats.NotificationWriter(out, "jsonl")
    writer.write(Selection().select(record))
    line = out.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "message_id": "m-1", "event_type": "compute.instance.create.end", "priority": "INFO",
        "publisher_id": "nova-compute.host1", "timestamp": "2026-11-24 12:00:01.000000",
        "payload": {"instance_id": "i-1", "project_id": "p-1", "size": 3},
        "context": {"request_id": "req-1"}, "topic": "notifications.info", "partition": 2,
        "offset": 7, "kafka_timestamp": "2026-11-18T11:06:40.123Z"}


def test_text_line_shows_time_priority_event_publisher_and_key_fields() -> None:
    line = formats.text_line(Selection().select(delivery()))
    assert line == ("2026-11-24 12:00:01.000000 INFO compute.instance.create.end "
                    "nova-compute.host1 instance_id=i-1 project_id=p-1")


def test_an_unknown_output_format_is_refused() -> None:
    with pytest.raises(ValueError, match="jsonl or text"):
        formats.NotificationWriter(io.StringIO(), "xml")


# progress ----------------------------------------------------------------------------


@pytest.mark.parametrize("seconds, text", [
    (0, "0:00"), (59.4, "0:59"), (61, "1:01"), (3600, "1:00:00"), (3725, "1:02:05"),
])
def test_durations_read_as_clock_times(seconds: float, text: str) -> None:
    assert progress.format_duration(seconds) == text


def test_figures_give_count_percent_rate_and_eta() -> None:
    assert progress.figures(4321, 10000, 2.0) == "4,321/10,000 43% 2,160/s ETA 0:03"
    assert progress.figures(0, 10000, 0.0) == "0/10,000 0%"
    assert progress.figures(0, 0, 1.0) == "0/0 100%"


def test_the_bar_fills_in_proportion_and_fits_the_width() -> None:
    line = progress.render_bar("replay", 500, 1000, 1.0, 60)
    assert len(line) <= 60
    bar = line[line.index("[") + 1:line.index("]")]
    assert bar.count("#") == bar.count(".") or abs(bar.count("#") - bar.count(".")) <= 1
    assert line.endswith("500/1,000 50% 500/s ETA 0:01")
    assert progress.render_bar("replay", 1000, 1000, 1.0, 60).count(".") == 0
    assert "[" not in progress.render_bar("replay", 5, 10, 1.0, 30)  # too narrow for a bar


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_on_a_terminal_the_bar_is_redrawn_in_place_at_most_each_interval() -> None:
    out, clock = io.StringIO(), Clock()
    shown = Progress("replay", 100, out, tty=True, interval=0.2, clock=clock)
    shown.update(10)              # too soon: nothing drawn
    assert out.getvalue() == ""
    clock.now += 0.25
    shown.update(20)
    clock.now += 0.1
    shown.update(30)              # too soon again
    clock.now += 0.15
    shown.finish()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "20/100 20%" in text and "30/100 30%" in text


def test_elsewhere_plain_lines_are_written_each_interval() -> None:
    out, clock = io.StringIO(), Clock()
    shown = Progress("replay", 1000, out, tty=False, interval=10, clock=clock)
    for done in range(0, 1001, 100):
        clock.now += 3
        shown.update(done)
    shown.finish()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines == ["replay: 300/1,000 30% 25/s ETA 0:28",
                     "replay: 700/1,000 70% 29/s ETA 0:10",
                     "replay: 1,000/1,000 100% 30/s ETA 0:00"]


def test_auto_detection_follows_the_stream() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    Progress("replay", 10, terminal, interval=0).update(5)
    assert terminal.getvalue().startswith("\r")
    plain = io.StringIO()
    Progress("replay", 10, plain, interval=0).update(5)
    assert plain.getvalue().startswith("replay: 5/10")
