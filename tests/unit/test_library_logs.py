"""kafka-python's repeated lines during an outage: one per interval, with a count."""

from __future__ import annotations

import logging

from kafka_bridge.kafka.library_logs import RepeatFilter


def record(name: str, msg: str = "%s: Connection lost: %s") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, ("conn", "refused"), None)


def test_a_repeating_library_line_is_shown_once_per_interval_then_counted() -> None:
    now = [0.0]
    repeat = RepeatFilter(interval=60, clock=lambda: now[0])
    assert repeat.filter(record("kafka.net.connection"))
    for _ in range(600):  # every 100 ms for a minute
        now[0] += 0.099
        assert not repeat.filter(record("kafka.net.connection"))
    now[0] += 1.0
    again = record("kafka.net.connection")
    assert repeat.filter(again)
    assert "600 similar line(s)" in again.getMessage()


def test_other_messages_and_other_loggers_pass() -> None:
    repeat = RepeatFilter(interval=60, clock=lambda: 0.0)
    assert repeat.filter(record("kafka.net.connection"))
    assert repeat.filter(record("kafka.net.connection", "Connection failed: %s %s"))
    for _ in range(3):
        assert repeat.filter(record("kafka_bridge.daemon.service"))
        assert repeat.filter(record("oslo.messaging"))
