"""The daemon's configuration checks (kafka_bridge.daemon.config), without a broker."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kafka_bridge.daemon.config import (BridgeConfigError, check_values, make_conf,
                                        parse_start_from, unread_options, validate)

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


# check_values and validate with make_conf ---------------------------------------------


def check_config(tmp_path: Path, text: str) -> str | None:
    """The checks of a config file: None if it passes, else the BridgeConfigError text."""
    path = tmp_path / "kafka-bridge.conf"
    path.write_text(textwrap.dedent(text))
    try:
        conf = make_conf(["--config-file", str(path)])
        check_values(conf)
        validate(conf)
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


@pytest.mark.parametrize("section, line, named", [
    ("kafka_bridge", "mode = sideways", "[kafka_bridge] mode = sideways is not valid: choose "
                                        "one of forward, reverse, both"),
    ("kafka_bridge", "batch_size = many", "[kafka_bridge] batch_size = many is not valid: use "
                                          "an integer of at least 1"),
    ("forward", "output_format = xml", "[forward] output_format = xml is not valid: choose one "
                                       "of oslo, plain"),
    ("metrics", "port = 99999", "[metrics] port = 99999 is not valid: use an integer from 0 "
                                "to 65535"),
    ("oslo_messaging_kafka_notify", "connect_timeout = 0.1",
     "[oslo_messaging_kafka_notify] connect_timeout = 0.1 is not valid: use a number of at "
     "least 0.5"),
    ("metrics", "enabled = perhaps", "[metrics] enabled = perhaps is not valid: use true or "
                                     "false"),
    ("DEFAULT", "rate_limit_burst = lots", "[DEFAULT] rate_limit_burst = **** is not valid"),
    ("oslo_messaging_rabbit", "rabbit_qos_prefetch_count = lots",
     "[oslo_messaging_rabbit] rabbit_qos_prefetch_count = **** is not valid"),
])
def test_a_value_of_the_wrong_type_or_outside_its_choices_is_one_line_naming_it(
        tmp_path: Path, section: str, line: str, named: str) -> None:
    error = check_config(tmp_path, f"""
        [kafka_bridge]
        kafka_url = kafka-notify://h:1/
        [{section}]
        {line}
    """)
    assert error is not None and "\n" not in error
    assert error == f"{tmp_path / 'kafka-bridge.conf'}: {named}" or (
        error.startswith(f"{tmp_path / 'kafka-bridge.conf'}: {named}")), error


def test_a_secret_with_a_bad_value_is_not_shown(tmp_path: Path) -> None:
    path = tmp_path / "kafka-bridge.conf"
    path.write_text("[kafka_bridge]\nkafka_url = kafka-notify://h:1/\n"
                    "[oslo_messaging_kafka_notify]\nsasl_password = s3cret\n"
                    "connect_timeout = x\n")
    with pytest.raises(BridgeConfigError) as info:
        check_values(make_conf(["--config-file", str(path)]))
    assert "s3cret" not in str(info.value) and "connect_timeout = x" in str(info.value)


def unread(tmp_path: Path, text: str, name: str = "kafka-bridge.conf") -> list[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return unread_options(make_conf(["--config-file", str(path)]))


def test_an_option_in_the_wrong_section_is_named_with_where_it_belongs(tmp_path: Path) -> None:
    warnings = unread(tmp_path, """
        [forward]
        record_key_field = /payload/nova_object.data/uuid
        topic_template = {topic}.{priority}
    """)
    assert warnings == [f"{tmp_path / 'kafka-bridge.conf'}: [forward] record_key_field is "
                        f"ignored: it belongs in [oslo_messaging_kafka_notify]"]


def test_a_misspelt_option_gets_a_suggestion(tmp_path: Path) -> None:
    warnings = unread(tmp_path, """
        [reverse]
        kafka_topic = notifications.info
        [metrics]
        colour = blue
    """)
    assert warnings == [
        f"{tmp_path / 'kafka-bridge.conf'}: [reverse] kafka_topic is ignored: did you mean "
        f"kafka_topics?",
        f"{tmp_path / 'kafka-bridge.conf'}: [metrics] colour is ignored: [metrics] has no "
        f"such option"]


def test_sections_of_other_projects_and_known_options_give_no_warning(tmp_path: Path) -> None:
    assert unread(tmp_path, """
        [DEFAULT]
        debug = true
        [oslo_messaging_rabbit]
        heartbeat_timeout_threshold = 30
        [some_other_service]
        anything = 1
        [kafka_bridge]
        mode = both
        [oslo_messaging_kafka_notify]
        record_key_field = publisher_id
    """) == []


def test_files_of_a_config_dir_are_checked_too(tmp_path: Path) -> None:
    conf_dir = tmp_path / "conf.d"
    conf_dir.mkdir()
    (conf_dir / "10-forward.conf").write_text("[forward]\nbatch_size = 10\n")
    path = tmp_path / "main.conf"
    path.write_text("[kafka_bridge]\nmode = forward\n")
    warnings = unread_options(make_conf(["--config-file", str(path),
                                         "--config-dir", str(conf_dir)]))
    assert warnings == [f"{conf_dir / '10-forward.conf'}: [forward] batch_size is ignored: "
                        f"it belongs in [kafka_bridge] or [oslo_messaging_kafka_notify]"]
