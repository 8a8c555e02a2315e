"""The RabbitMQ side's wire format and settings match oslo.messaging's rabbit driver.

oslo's private functions appear here only as the reference the bridge's own
code is compared with: a change of oslo's behaviour fails these tests.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import oslo_messaging
import pytest
from kombu import compression, serialization
from oslo_config import cfg
from oslo_messaging._drivers import amqp as rpc_amqp
from oslo_messaging._drivers import common as oslo_common
from oslo_messaging._drivers import impl_rabbit

from kafka_bridge.rabbit import settings as rabbit_settings
from kafka_bridge.rabbit import wire

NOTIFICATION = {"message_id": "m-1", "publisher_id": "compute.host1",
                "event_type": "compute.instance.create.end", "priority": "INFO",
                "payload": {"instance_id": "abc", "ünïcode": "✓", "n": 1.5, "big": 2 ** 70},
                "timestamp": "2024-01-01 00:00:00.000000"}
CTXT = {"user": "u1", "request_id": "req-1", "roles": ["admin"]}


#: beyond ASCII, DEL, separators, an astral character, escapes in keys, big integers
TRICKY = {"event_type": "caf\u00e9\x7f\u2028\U0001f600", "payload": {"k\"\\": "\\\\\"/"},
          "big": 2 ** 80, "all": "".join(map(chr, range(0x250)))}


def oslo_body(ctxt: dict, message: dict) -> bytes:
    """What oslo's rabbit driver publishes for a notification (messagingv2)."""
    msg = dict(message)
    rpc_amqp._add_unique_id(msg)
    rpc_amqp.pack_context(msg, ctxt)
    return serialization.dumps(oslo_common.serialize_msg(msg), serializer="json")[2].encode()


@pytest.mark.parametrize("message", [NOTIFICATION, TRICKY])
def test_encode_is_byte_identical_to_the_rabbit_driver(monkeypatch: pytest.MonkeyPatch,
                                                       message: dict) -> None:
    fixed = uuid.UUID("12345678123456781234567812345678")
    monkeypatch.setattr(uuid, "uuid4", lambda: fixed)
    monkeypatch.setattr(wire, "unique_id", lambda: fixed.hex)
    assert wire.encode(CTXT, message) == oslo_body(CTXT, message)


def test_unique_ids_are_what_uuid4_makes() -> None:
    ids = {wire.unique_id() for _ in range(1000)}
    assert len(ids) == 1000
    for text in ids:
        made = uuid.UUID(text)
        assert (made.hex, made.version, made.variant) == (text, 4, uuid.RFC_4122)


def test_decode_reads_what_the_driver_sends_as_the_driver_does() -> None:
    body = oslo_body(CTXT, NOTIFICATION)
    ctxt, message = wire.decode(body, "application/json", "utf-8")
    assert (ctxt, message) == (CTXT, NOTIFICATION)
    raw = oslo_common.deserialize_msg(json.loads(body))
    assert message == {k: v for k, v in raw.items()
                       if not k.startswith("_context_") and k != "_unique_id"}
    assert list(message) == list(NOTIFICATION)  # key order kept: record bytes depend on it


def test_decode_reads_the_unversioned_format_and_kombu_compression() -> None:
    plain = json.dumps(dict(NOTIFICATION, _context_user="u")).encode()
    assert wire.decode(plain, "application/json", "UTF-8") == ({"user": "u"}, NOTIFICATION)
    zipped, kind = compression.compress(oslo_body(CTXT, NOTIFICATION), "application/x-gzip")
    assert wire.decode(zipped, "application/json", "utf-8",
                       {"compression": kind}) == (CTXT, NOTIFICATION)


@pytest.mark.parametrize("body, content_type, encoding, headers, kind", [
    (b"not json", "application/json", "utf-8", None, "body is not JSON"),
    (b"", "application/json", "utf-8", None, "body is not JSON"),
    (b"\xff\xfe{}", "application/json", "utf-8", None, "body is not JSON"),
    (b"[" * 200000 + b"]" * 200000, "application/json", "utf-8", None, "body is not JSON"),
    ('{"a": 1}'.encode("utf-16"), "application/json", "utf-8", None, "body is not JSON"),
    (b"[1]", "application/json", "utf-8", None, "not an object"),
    (b'"text"', "application/json", "utf-8", None, "not an object"),
    (json.dumps({"oslo.version": "2.0", "oslo.message": "{x"}).encode(), "application/json",
     "utf-8", None, "oslo.message is not JSON"),
    (json.dumps({"oslo.version": "2.0", "oslo.message": "[1]"}).encode(), "application/json",
     "utf-8", None, "not an object"),
    (json.dumps({"oslo.version": "2.0", "oslo.message": 7}).encode(), "application/json",
     "utf-8", None, "bad envelope"),
    (json.dumps({"oslo.version": "9.0", "oslo.message": "{}"}).encode(), "application/json",
     "utf-8", None, "unsupported envelope version"),
    (json.dumps({"oslo.version": "2.1", "oslo.message": "{}"}).encode(), "application/json",
     "utf-8", None, "unsupported envelope version"),
    (b"{}", None, "utf-8", None, "unsupported content type"),
    (b"{}", "text/plain", "utf-8", None, "unsupported content type"),
    (b"{}", "application/json", None, None, "unsupported content encoding"),
    (b"{}", "application/json", "gzip", None, "unsupported content encoding"),
    (b"{}", "application/json", "utf-8", {"compression": "application/x-gzip"},
     "undecompressable body"),
    (b"{}", "application/json", "utf-8", {"compression": "application/x-unknown"},
     "undecompressable body"),
])
def test_decode_says_why_a_body_is_not_a_notification(body: bytes, content_type: str | None,
                                                      encoding: str | None,
                                                      headers: dict | None, kind: str) -> None:
    with pytest.raises(wire.Undecodable) as info:
        wire.decode(body, content_type, encoding, headers)
    assert info.value.kind == kind
    assert str(info.value).startswith(kind + ": ")


@pytest.mark.parametrize("text", [
    b'{"a": NaN, "b": Infinity}', b'{"big": 123456789012345678901234567890}',
    b'{"s": "\\ud800 lone"}', b'{"f": 1e400, "g": 0.1, "h": -0.0, "k": 1E5}',
    b'{"dup": 1, "dup": 2}', '{"é": "ü"}'.encode(),
])
def test_decode_reads_the_same_values_as_json(text: bytes) -> None:
    body = json.dumps({"oslo.version": "2.0", "oslo.message": text.decode()}).encode()
    _, message = wire.decode(body, "application/json", "utf-8")
    expected = json.loads(text)
    assert json.dumps(message) == json.dumps(expected)


# settings ----------------------------------------------------------------------------------


def options(**values: Any) -> Any:
    conf = cfg.ConfigOpts()
    conf([])
    rabbit_settings.register_options(conf)
    for name, value in values.items():
        conf.set_override(name, value, group="oslo_messaging_rabbit")
    return conf.oslo_messaging_rabbit


@pytest.mark.parametrize("values", [
    {}, {"rabbit_ha_queues": True}, {"rabbit_quorum_queue": True},
    {"rabbit_quorum_queue": True, "rabbit_quorum_delivery_limit": 3,
     "rabbit_quorum_max_memory_length": 10, "rabbit_quorum_max_memory_bytes": 1000},
])
def test_queue_arguments_are_the_drivers(values: dict) -> None:
    opts = options(**values)
    expected = impl_rabbit._get_queue_arguments(
        opts.rabbit_ha_queues, 0, opts.rabbit_quorum_queue, impl_rabbit.QuorumMemConfig(
            opts.rabbit_quorum_delivery_limit, opts.rabbit_quorum_max_memory_length,
            opts.rabbit_quorum_max_memory_bytes), False)
    assert rabbit_settings.queue_arguments(opts) == expected


@pytest.mark.parametrize("url", [
    "rabbit://user:p%40ss@host1:5671,user2:pw@host2/vhost",
    "rabbit://u:p@[::1]:5672/",
    "rabbit:///",
    "kombu://guest:guest@localhost/",
])
def test_kombu_url_is_the_drivers(url: str) -> None:
    conf = cfg.ConfigOpts()
    conf([])
    parsed = oslo_messaging.TransportURL.parse(conf, url)
    expected = ";".join(impl_rabbit.Connection._transform_transport_url(
        None, parsed, host, **({} if parsed.hosts else dict(
            default_username="guest", default_password="guest",  # nosec - driver defaults
            default_hostname="localhost")))
        for host in (parsed.hosts or [oslo_messaging.TransportHost("")]))
    assert rabbit_settings.kombu_url(parsed) == expected.replace("kombu://", "amqp://")


def configured(tmp_path: Any, text: str) -> cfg.ConfigOpts:
    path = tmp_path / "bridge.conf"
    path.write_text(text)
    conf = cfg.ConfigOpts()
    rabbit_settings.register_options(conf)
    conf(["--config-file", str(path)])
    return conf


def test_settings_follow_the_options_and_url_overrides(tmp_path: Any) -> None:
    conf = configured(tmp_path, "[DEFAULT]\n"
                      "transport_url = rabbit://u:secret@h:5672/?rabbit_qos_prefetch_count=7\n"
                      "[oslo_messaging_rabbit]\namqp_durable_queues = true\n")
    transport = oslo_messaging.get_notification_transport(conf)
    try:
        settings = rabbit_settings.RabbitSettings.from_transport(transport)
    finally:
        transport.cleanup()
    assert settings.prefetch_count == 7
    assert settings.durable
    assert settings.url == "amqp://u:secret@h:5672/"
    assert "secret" not in repr(settings)


def test_a_transport_other_than_rabbit_is_refused(tmp_path: Any) -> None:
    conf = configured(tmp_path, "[DEFAULT]\ntransport_url = fake://\n")
    transport = oslo_messaging.get_notification_transport(conf)
    try:
        with pytest.raises(rabbit_settings.NotRabbit, match="rabbit://"):
            rabbit_settings.RabbitSettings.from_transport(transport)
    finally:
        transport.cleanup()


# the Kafka record value forward writes -----------------------------------------------------


@pytest.mark.parametrize("message", [
    NOTIFICATION,
    {"event_type": "e", "when": __import__("datetime").datetime(2026, 1, 2, 3, 4, 5),
     "tags": {"only"}, "nested": [{"a": None, "b": True, "c": 1e-7}], "ctl": "\x00\n\"\\"},
    {"event_type": "e", "payload": "x" * 900},
    TRICKY,
])
def test_kafka_value_is_byte_identical_to_oslo_serialize_msg_and_jsonutils(message: dict) -> None:
    from oslo_serialization import jsonutils

    from kafka_bridge.kafka import envelope
    body = dict(message, _context=CTXT)
    expected = jsonutils.dumps(oslo_common.serialize_msg(body)).encode("utf-8")
    assert envelope.encode(CTXT, message) == expected
