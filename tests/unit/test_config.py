"""The daemon's configuration checks (kafka_bridge.daemon.config), without a broker."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


from kafka_bridge.daemon.config import BridgeConfigError, make_conf, parse_start_from, validate

# parse_start_from ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["committed", "earliest", "latest"])
def test_parse_start_from_positions(value: str) -> None:
    assert parse_start_from(value) == value


@pytest.mark.parametrize("value, epoch_ms", [
    ("2026-11-24T12:00:00Z", 1795521600000),
    ("2026-11-24T12:00:00", 1795521600000),  # naive: UTC
    ("2026-11-24T14:00:00+02:00", 1795521600000),
    ("1970-01-01T00:00:00Z", 0),
    ("2024-01-01T00:00:00.123Z", 1704067200123),
    # a time with milliseconds must not lose one to float rounding
    ("2038-12-07T08:57:53.944Z", 2175325073944),
])
def test_parse_start_from_time_is_exact_epoch_ms(value: str, epoch_ms: int) -> None:
    result = parse_start_from(value)
    assert isinstance(result, int)
    assert result == epoch_ms


@pytest.mark.parametrize("value", [
    "garbage", "yesterday", "", "Committed", "2026-13-01T00:00:00Z"])
def test_parse_start_from_garbage_names_the_accepted_forms(value: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_start_from(value)
    message = str(info.value)
    for form in ("start_from", "committed", "earliest", "latest", "ISO 8601"):
        assert form in message


# validate with make_conf ------------------------------------------------------------


def check_config(tmp_path: Path, text: str) -> str | None:
    """validate() of a config file: None if it passes, else the BridgeConfigError text."""
    path = tmp_path / "kafka-bridge.conf"
    path.write_text(textwrap.dedent(text))
    try:
        validate(make_conf(["--config-file", str(path)]))
    except BridgeConfigError as exc:
        return str(exc)
    return None


def test_valid_forward_config_passes(tmp_path: Path) -> None:
    assert check_config(tmp_path, """
        [kafka_bridge]
        kafka_url = kafka-notify://h:1/
        [forward]
        topic_template = {exchange}.{topic}.{priority}
        priorities = info,error
    """) is None


def test_valid_reverse_config_passes(tmp_path: Path) -> None:
    assert check_config(tmp_path, """
        [kafka_bridge]
        kafka_url = kafka-notify://h:1/
        mode = reverse
        [reverse]
        kafka_topics = notifications.info
        start_from = 2026-11-24T12:00:00Z
    """) is None


def test_a_transport_other_than_rabbit_is_named(tmp_path: Path) -> None:
    error = check_config(tmp_path, """
        [DEFAULT]
        transport_url = fake://
        [kafka_bridge]
        kafka_url = kafka-notify://h:1/
    """)
    assert error is not None and "transport_url" in error and "rabbit://" in error


def test_missing_kafka_url_is_named(tmp_path: Path) -> None:
    error = check_config(tmp_path, """
        [kafka_bridge]
        mode = forward
    """)
    assert error is not None and "kafka_url" in error


def test_bad_kafka_url_parameter_is_a_config_error_naming_kafka_url(tmp_path: Path) -> None:
    error = check_config(tmp_path, """
        [kafka_bridge]
        kafka_url = kafka-notify://h:1/?linger_ms=abc
    """)
    assert error is not None and "kafka_url" in error and "linger_ms" in error


@pytest.mark.parametrize("mode", ["reverse", "both"])
def test_reverse_without_kafka_topics_is_named(tmp_path: Path, mode: str) -> None:
    error = check_config(tmp_path, f"""
        [kafka_bridge]
        kafka_url = kafka-notify://h:1/
        mode = {mode}
    """)
    assert error is not None and "kafka_topics" in error and mode in error


def test_bad_topic_template_is_named(tmp_path: Path) -> None:
    error = check_config(tmp_path, """
        [kafka_bridge]
        kafka_url = kafka-notify://h:1/
        [forward]
        topic_template = {topic}.{host}
    """)
    assert error is not None and "topic_template" in error and "{host}" in error


def test_bad_topic_template_is_ignored_in_reverse_mode(tmp_path: Path) -> None:
    assert check_config(tmp_path, """
        [kafka_bridge]
        kafka_url = kafka-notify://h:1/
        mode = reverse
        [forward]
        topic_template = {topic}.{host}
        [reverse]
        kafka_topics = t
    """) is None


def test_bad_start_from_is_named(tmp_path: Path) -> None:
    error = check_config(tmp_path, """
        [kafka_bridge]
        kafka_url = kafka-notify://h:1/
        mode = reverse
        [reverse]
        kafka_topics = notifications.info
        start_from = last tuesday
    """)
    assert error is not None and "start_from" in error and "last tuesday" in error


def test_unknown_priority_is_named(tmp_path: Path) -> None:
    error = check_config(tmp_path, """
        [kafka_bridge]
        kafka_url = kafka-notify://h:1/
        [forward]
        priorities = info,bogus
    """)
    assert error is not None and "priorities" in error and "bogus" in error
