"""kafka-notify:// settings, options, wire format and offset bookkeeping, without a broker."""

from __future__ import annotations

import dataclasses
import json
import math

import oslo_messaging
import pytest
from kafka.structs import TopicPartition
from oslo_config import cfg

from kafka_bridge.driver.driver import KafkaNotifyDriver
from kafka_bridge.kafka import envelope, options
from kafka_bridge.kafka import settings as settings_mod
from kafka_bridge.kafka.errors import ConfigurationError
from kafka_bridge.kafka.offsets import OffsetTracker
from kafka_bridge.retry import attempts_allowed
from kafka_bridge.kafka.settings import KafkaSettings, consumer_config, producer_config
from kafka_bridge.payload_path import PayloadPath

SECRET = "s3cr3t-Pa55word-XYZ"


@pytest.fixture
def conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], project="kafka-bridge-tests")
    return conf


def settings_for(conf: cfg.ConfigOpts, url: str) -> KafkaSettings:
    return KafkaSettings.from_transport_url(conf, oslo_messaging.TransportURL.parse(conf, url))


# URL parsing -------------------------------------------------------------------------


def test_url_hosts_credentials_virtual_host_and_query_overrides(conf: cfg.ConfigOpts) -> None:
    settings = settings_for(
        conf, "kafka-notify://user:pw@h1:1,h2:2/vh?compression_codec=gzip&linger_ms=7")
    assert settings.bootstrap_servers == ("h1:1", "h2:2")
    assert settings.sasl_username == "user"
    assert settings.sasl_password == "pw"
    assert settings.virtual_host == "vh"
    assert settings.compression_codec == "gzip"
    assert settings.linger_ms == 7
    assert isinstance(settings.linger_ms, int)
    # untouched options keep their defaults
    assert settings.security_protocol == "PLAINTEXT"
    assert settings.max_request_size == 1048576


def test_url_without_port_or_virtual_host_uses_defaults(conf: cfg.ConfigOpts) -> None:
    settings = settings_for(conf, "kafka-notify://broker/")
    assert settings.bootstrap_servers == ("broker:9092",)
    assert settings.virtual_host is None
    assert settings.sasl_username is None


def test_url_overrides_config_options(conf: cfg.ConfigOpts) -> None:
    options.register(conf)
    conf.set_override("linger_ms", 50, group=options.GROUP)
    conf.set_override("compression_codec", "gzip", group=options.GROUP)
    assert settings_for(conf, "kafka-notify://h:1/").linger_ms == 50
    settings = settings_for(conf, "kafka-notify://h:1/?linger_ms=3")
    assert settings.linger_ms == 3
    assert settings.compression_codec == "gzip"


def test_url_without_hosts_is_refused(conf: cfg.ConfigOpts) -> None:
    with pytest.raises(ConfigurationError, match="names no broker"):
        settings_for(conf, "kafka-notify:///")


def test_unknown_query_parameter_is_named(conf: cfg.ConfigOpts) -> None:
    with pytest.raises(ConfigurationError) as info:
        settings_for(conf, "kafka-notify://h:1/?lingerms=7")
    assert "'lingerms'" in str(info.value)
    assert "linger_ms" in str(info.value)  # the known parameters are listed


@pytest.mark.parametrize("query, name", [
    ("linger_ms=abc", "linger_ms"),
    ("compression_codec=bogus", "compression_codec"),
    ("security_protocol=TLS", "security_protocol"),
    ("max_request_size=10", "max_request_size"),  # below min=1024
    ("delivery_timeout=soon", "delivery_timeout"),
    ("enable_idempotence=maybe", "enable_idempotence"),
])
def test_bad_query_value_is_named(conf: cfg.ConfigOpts, query: str, name: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        settings_for(conf, f"kafka-notify://h:1/?{query}")
    assert f"{name}=" in str(info.value)
    assert "invalid" in str(info.value)


@pytest.mark.parametrize("url", [
    "kafka-notify://h:1/?security_protocol=SASL_SSL",
    "kafka-notify://h:1/?security_protocol=SASL_PLAINTEXT",
    "kafka-notify://useronly@h:1/?security_protocol=SASL_SSL",
])
def test_sasl_without_credentials_names_the_fix(conf: cfg.ConfigOpts, url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        settings_for(conf, url)
    message = str(info.value)
    assert "security_protocol=SASL_" in message
    assert "user name and password" in message
    assert "kafka-notify://user:pass@host:port/" in message
    assert "sasl_username" in message and "sasl_password" in message


def test_sasl_with_url_credentials_is_accepted(conf: cfg.ConfigOpts) -> None:
    settings = settings_for(
        conf, f"kafka-notify://alice:{SECRET}@h:1/?security_protocol=SASL_SSL"
              f"&sasl_mechanism=SCRAM-SHA-512")
    assert settings.sasl_username == "alice"
    assert settings.secret_values == (SECRET,)


def test_idempotence_requires_acks_all(conf: cfg.ConfigOpts) -> None:
    with pytest.raises(ConfigurationError, match="producer_acks=all"):
        settings_for(conf, "kafka-notify://h:1/?producer_acks=1")
    settings = settings_for(conf, "kafka-notify://h:1/?producer_acks=1&enable_idempotence=false")
    assert producer_config(settings)["acks"] == 1


def test_ssl_certfile_without_keyfile_is_refused(conf: cfg.ConfigOpts) -> None:
    with pytest.raises(ConfigurationError, match="ssl_certfile and ssl_keyfile"):
        settings_for(conf, "kafka-notify://h:1/?security_protocol=SSL&ssl_certfile=/c.pem")


# kafka-python configuration ----------------------------------------------------------


def test_producer_config_is_durable_and_plaintext_has_no_security(
        conf: cfg.ConfigOpts) -> None:
    settings = settings_for(conf, "kafka-notify://h1:1,h2:2/?delivery_timeout=12&linger_ms=4")
    config = producer_config(settings)
    assert config["acks"] == -1
    assert config["enable_idempotence"] is True
    assert config["bootstrap_servers"] == ["h1:1", "h2:2"]
    assert config["security_protocol"] == "PLAINTEXT"
    assert config["compression_type"] is None
    assert config["linger_ms"] == 4
    assert config["delivery_timeout_ms"] == 12000
    assert config["request_timeout_ms"] <= config["delivery_timeout_ms"]
    for key in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password",
                "ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password",
                "ssl_check_hostname"):
        assert key not in config
    assert producer_config(settings) == config  # pure: same settings, same config


@pytest.mark.parametrize("linger_ms,delivery_timeout", [
    (0, 10), (500, 10), (8000, 10), (9000, 10), (0, 1), (100, 1.1)])
def test_a_producer_starts_with_any_linger_that_fits_the_delivery_timeout(
        conf: cfg.ConfigOpts, linger_ms: int, delivery_timeout: float) -> None:
    from kafka import KafkaProducer
    settings = settings_for(conf, f"kafka-notify://127.0.0.1:9/?linger_ms={linger_ms}"
                                  f"&delivery_timeout={delivery_timeout}")
    config = producer_config(settings)
    assert config["linger_ms"] + config["request_timeout_ms"] <= config["delivery_timeout_ms"]
    # kafka-python checks the same when it builds its accumulator (no broker needed)
    producer = KafkaProducer(**dict(config, bootstrap_servers=["127.0.0.1:9"],
                                    api_version=(2, 8)))
    producer.close(timeout=0)


def test_linger_longer_than_the_delivery_timeout_is_named(conf: cfg.ConfigOpts) -> None:
    with pytest.raises(ConfigurationError, match="linger_ms=9500.*delivery_timeout"):
        settings_for(conf, "kafka-notify://h:1/?linger_ms=9500&delivery_timeout=10")
    with pytest.raises(ConfigurationError, match="linger_ms=50.*delivery_timeout"):
        settings_for(conf, "kafka-notify://h:1/?linger_ms=50&delivery_timeout=1")


def test_consumer_config_commits_manually(conf: cfg.ConfigOpts) -> None:
    settings = settings_for(conf, "kafka-notify://h:1/?max_poll_records=17")
    config = consumer_config(settings, "grp")
    assert config["group_id"] == "grp"
    assert config["enable_auto_commit"] is False
    assert config["max_poll_records"] == 17
    # a fetch waiting on a quiet partition holds back the busy ones for this long
    assert config["fetch_max_wait_ms"] <= 100
    assert config["security_protocol"] == "PLAINTEXT"
    assert "sasl_plain_password" not in config and "ssl_cafile" not in config


def test_sasl_ssl_config_carries_credentials_and_tls(conf: cfg.ConfigOpts) -> None:
    settings = settings_for(
        conf, f"kafka-notify://alice:{SECRET}@h:1/?security_protocol=SASL_SSL"
              f"&sasl_mechanism=SCRAM-SHA-512&ssl_cafile=/etc/ca.pem")
    for config in (producer_config(settings), consumer_config(settings, "g")):
        assert config["security_protocol"] == "SASL_SSL"
        assert config["sasl_mechanism"] == "SCRAM-SHA-512"
        assert config["sasl_plain_username"] == "alice"
        assert config["sasl_plain_password"] == SECRET
        assert config["ssl_cafile"] == "/etc/ca.pem"
        assert config["ssl_check_hostname"] is True


def test_sasl_plaintext_config_has_no_tls_options(conf: cfg.ConfigOpts) -> None:
    settings = settings_for(
        conf, f"kafka-notify://alice:{SECRET}@h:1/?security_protocol=SASL_PLAINTEXT")
    config = producer_config(settings)
    assert config["sasl_plain_password"] == SECRET
    assert "ssl_cafile" not in config and "ssl_check_hostname" not in config


def test_ssl_config_has_tls_but_no_sasl(conf: cfg.ConfigOpts) -> None:
    settings = settings_for(conf, "kafka-notify://h:1/?security_protocol=SSL"
                                  "&ssl_cafile=/ca.pem&ssl_check_hostname=false")
    config = consumer_config(settings, "g")
    assert config["ssl_cafile"] == "/ca.pem"
    assert config["ssl_check_hostname"] is False
    assert "sasl_plain_password" not in config and "sasl_mechanism" not in config


# secrets -------------------------------------------------------------------------------


def test_repr_of_settings_and_driver_hides_secrets(conf: cfg.ConfigOpts) -> None:
    url = oslo_messaging.TransportURL.parse(
        conf, f"kafka-notify://alice:{SECRET}@h1:1/?security_protocol=SASL_SSL"
              f"&ssl_key_password=keypw-{SECRET}")
    settings = KafkaSettings.from_transport_url(conf, url)
    assert settings.sasl_password == SECRET
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    driver = KafkaNotifyDriver(conf, url)
    try:
        assert SECRET not in repr(driver)
        assert "h1:1" in repr(driver)
    finally:
        driver.cleanup()


def test_configuration_errors_never_show_the_password(conf: cfg.ConfigOpts) -> None:
    base = f"kafka-notify://alice:{SECRET}@h:1/"
    for query in ("linger_ms=abc", "nope=1", "security_protocol=SASL_SSL&producer_acks=1",
                  "compression_codec=bogus"):
        with pytest.raises(ConfigurationError) as info:
            settings_for(conf, f"{base}?{query}")
        assert SECRET not in str(info.value), query


def test_invalid_transport_url_from_driver_hides_password(conf: cfg.ConfigOpts) -> None:
    url = oslo_messaging.TransportURL.parse(
        conf, f"kafka-notify://alice:{SECRET}@h:1/?linger_ms=abc")
    with pytest.raises(oslo_messaging.InvalidTransportURL) as info:
        KafkaNotifyDriver(conf, url)
    assert "linger_ms" in str(info.value)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert SECRET not in str(getattr(info.value, "url", ""))


def test_bad_value_of_a_secret_parameter_is_shown_as_stars(
        conf: cfg.ConfigOpts, monkeypatch: pytest.MonkeyPatch) -> None:
    # No shipped secret option has a type that can reject a string, so give
    # the secret options one that can: the value must still never be shown.
    secret_int = cfg.IntOpt("sasl_password", secret=True, help="test")
    real = options.all_opts()
    patched = [secret_int if o.dest == "sasl_password" else o for o in real]
    monkeypatch.setattr(settings_mod.options, "all_opts", lambda: patched)
    with pytest.raises(ConfigurationError) as info:
        settings_mod._parse_query_value("sasl_password", SECRET)
    message = str(info.value)
    assert "sasl_password=***" in message
    assert SECRET not in message


def test_secret_options_are_marked_secret() -> None:
    secret = {o.dest for o in options.all_opts() if o.secret}
    assert secret == {"sasl_password", "ssl_key_password"}


def test_settings_have_one_typed_field_per_option_and_secrets_out_of_repr() -> None:
    fields = {f.name: f for f in dataclasses.fields(KafkaSettings)}
    assert set(fields) - {"bootstrap_servers", "virtual_host"} == {
        o.dest for o in options.all_opts()}
    assert {name for name, f in fields.items() if not f.repr} == {
        o.dest for o in options.all_opts() if o.secret}


# options ----------------------------------------------------------------------------


def test_list_opts_documents_every_option() -> None:
    listed = options.list_opts()
    assert [group for group, _ in listed] == ["oslo_messaging_kafka_notify"]
    opts = listed[0][1]
    assert {o.dest for o in opts} == {o.dest for o in options.all_opts()}
    assert len(opts) == len(options.all_opts())
    for opt in opts:
        assert opt.help and opt.help.strip(), opt.dest
    # a copy: the generator may not alter the live options
    assert opts[0] is not options.all_opts()[0]


def test_register_is_idempotent(conf: cfg.ConfigOpts) -> None:
    options.register(conf)
    options.register(conf)
    assert conf[options.GROUP].linger_ms == 0


# retry semantics ---------------------------------------------------------------------


@pytest.mark.parametrize("retry, attempts", [
    (None, math.inf), (-1, math.inf), (-5, math.inf), (0, 1), (1, 2), (3, 4)])
def test_attempts_allowed(retry: int | None, attempts: float) -> None:
    assert attempts_allowed(retry) == attempts


# wire format -------------------------------------------------------------------------


MESSAGE = {"message_id": "m-1", "publisher_id": "compute.host1", "event_type": "x.start",
           "priority": "INFO", "payload": {"instance_id": "abc", "n": 3, "nested": {"k": [1]}},
           "timestamp": "2024-01-01 00:00:00.000000"}


def test_encode_decode_round_trip() -> None:
    ctxt = {"user": "u1", "request_id": "req-1"}
    value = envelope.encode(ctxt, MESSAGE)
    assert isinstance(value, bytes)
    outer = json.loads(value)
    assert outer["oslo.version"] == "2.0"
    assert isinstance(outer["oslo.message"], str)
    inner = json.loads(outer["oslo.message"])
    assert inner["_context"] == ctxt
    decoded_ctxt, decoded = envelope.decode(value)
    assert decoded_ctxt == ctxt
    assert decoded == MESSAGE
    assert "_context" not in MESSAGE  # encode does not modify its argument


def test_encode_with_no_context_and_context_object() -> None:
    assert envelope.decode(envelope.encode(None, MESSAGE))[0] == {}

    class Ctx:
        def to_dict(self) -> dict:
            return {"project_id": "p"}

    assert envelope.decode(envelope.encode(Ctx(), MESSAGE))[0] == {"project_id": "p"}


def test_encode_refuses_unserializable() -> None:
    with pytest.raises(ValueError, match="not JSON-serializable"):
        envelope.encode({}, dict(MESSAGE, payload={"x": object()}))


@pytest.mark.parametrize("topic, priority, vhost, expected", [
    ("notifications", "info", None, "notifications.info"),
    ("notifications", "info", "vh", "notifications.info.vh"),
    ("notifications.info", None, None, "notifications.info"),
    ("notifications.info", None, "vh", "notifications.info.vh"),
    ("versioned_notifications", "error", "", "versioned_notifications.error"),
])
def test_kafka_topic(topic: str, priority: str | None, vhost: str | None,
                     expected: str) -> None:
    assert envelope.kafka_topic(topic, priority, vhost) == expected


def test_record_key() -> None:
    def key(message: dict, path: str) -> bytes | None:
        return envelope.record_key(message, PayloadPath(path))

    assert key(MESSAGE, "payload.instance_id") == b"abc"
    assert key(MESSAGE, "publisher_id") == b"compute.host1"
    assert envelope.record_key(MESSAGE, None) is None
    assert key(MESSAGE, "payload.missing") is None
    assert key(MESSAGE, "missing.deeper") is None
    assert key(MESSAGE, "publisher_id.deeper") is None  # not a mapping
    assert key(dict(MESSAGE, payload={"instance_id": None}), "payload.instance_id") is None
    # non-strings become stable JSON
    assert key(MESSAGE, "payload.n") == b"3"
    assert key(MESSAGE, "payload.nested") == b'{"k": [1]}'
    assert key({"p": {"b": 1, "a": 2}}, "p") == key({"p": {"a": 2, "b": 1}}, "p")


def test_record_key_field_is_parsed_once_and_a_malformed_one_is_refused() -> None:
    settings = KafkaSettings.create(["h:1"], None, {"record_key_field": "/payload/id"})
    assert settings.record_key_path is not None
    assert settings.record_key_path.text == "/payload/id"
    assert KafkaSettings.create(["h:1"], None, {}).record_key_path is None
    with pytest.raises(ConfigurationError, match="record_key_field.*~"):
        KafkaSettings.create(["h:1"], None, {"record_key_field": "/payload/a~2b"})


def test_headers_for() -> None:
    headers = dict(envelope.headers_for(MESSAGE))
    assert headers == {"event_type": b"x.start", "priority": b"INFO",
                       "publisher_id": b"compute.host1", "message_id": b"m-1"}
    partial = envelope.headers_for({"event_type": "e", "payload": {}})
    assert partial == (("event_type", b"e"),)
    for name, value in envelope.headers_for(MESSAGE):
        assert isinstance(name, str) and isinstance(value, bytes)


@pytest.mark.parametrize("value", [
    None,
    b"not json",
    b"[1]",
    b'"a string"',
    json.dumps({"some": "object"}).encode(),
    json.dumps({"oslo.version": "2.0", "oslo.message": "not json"}).encode(),
    json.dumps({"oslo.version": "2.0",
                "oslo.message": json.dumps({"payload": {}})}).encode(),  # no event_type
    json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(
        {"event_type": "e", "_context": [1]})}).encode(),
    b"\xff\xfe\x00\x80garbage\x9c",
])
def test_decode_refuses_what_is_not_a_notification(value: bytes | None) -> None:
    with pytest.raises(envelope.UndecodableRecord):
        envelope.decode(value)


# offsets -------------------------------------------------------------------------------


TP = TopicPartition("t", 0)
TP1 = TopicPartition("t", 1)


def test_out_of_order_acks_advance_only_to_lowest_unacknowledged() -> None:
    tracker = OffsetTracker()
    tracker.handed_out(TP, [10, 11])
    tracker.handed_out(TP, [12, 13])
    assert tracker.unacknowledged() == 4
    assert tracker.to_commit() == {TP: 10}  # nothing acknowledged: stay at the first
    assert tracker.acknowledged(TP, 12)
    assert tracker.acknowledged(TP, 11)
    assert tracker.to_commit() == {TP: 10}
    assert tracker.acknowledged(TP, 10)
    assert tracker.to_commit() == {TP: 13}
    tracker.committed({TP: 13})
    assert tracker.to_commit() == {}
    assert tracker.acknowledged(TP, 13)
    assert tracker.to_commit() == {TP: 14}
    assert tracker.unacknowledged() == 0


def test_duplicate_and_unknown_acks_are_ignored() -> None:
    tracker = OffsetTracker()
    tracker.handed_out(TP, [5, 6])
    assert tracker.acknowledged(TP, 6)
    assert not tracker.acknowledged(TP, 6)
    assert not tracker.acknowledged(TP, 99)
    assert tracker.unacknowledged() == 1
    assert tracker.to_commit() == {TP: 5}


def test_forget_drops_revoked_partitions_and_ignores_late_acks() -> None:
    tracker = OffsetTracker()
    tracker.handed_out(TP, [0, 1, 2])
    tracker.handed_out(TP1, [0, 1, 2])
    assert tracker.acknowledged(TP, 0)
    assert tracker.forget({TP}) == 2
    assert tracker.unacknowledged() == 3
    assert TP not in tracker.to_commit()
    assert not tracker.acknowledged(TP, 1)  # late ack for a revoked partition
    assert tracker.unacknowledged() == 3
    assert TP not in tracker.to_commit()
    assert tracker.to_commit() == {TP1: 0}
    assert tracker.acknowledged(TP1, 0)
    assert tracker.to_commit({TP1}) == {TP1: 1}
    assert tracker.to_commit({TP}) == {}
    assert tracker.forget({TopicPartition("other", 0)}) == 0


def test_wait_for_room_wakes_on_forget() -> None:
    tracker = OffsetTracker()
    tracker.handed_out(TP, [0, 1])
    assert not tracker.wait_for_room(2, 0.01)
    tracker.acknowledged(TP, 0)
    assert tracker.wait_for_room(2, 0.01)
    tracker.forget({TP})
    assert tracker.unacknowledged() == 0
    assert tracker.wait_for_room(1, 0.01)


def test_a_record_fetched_again_after_a_rewind_counts_once() -> None:
    from kafka.structs import TopicPartition

    from kafka_bridge.kafka.offsets import OffsetTracker
    tracker = OffsetTracker()
    tp = TopicPartition("t", 0)
    tracker.handed_out(tp, [0, 1])
    tracker.handed_out(tp, [1, 2])  # offset 1 handed out again (fetched again)
    assert tracker.unacknowledged() == 3
    for offset in (0, 1, 2):
        assert tracker.acknowledged(tp, offset)
    assert tracker.unacknowledged() == 0
    assert tracker.to_commit() == {tp: 3}
