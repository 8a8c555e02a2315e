"""The forward and reverse routes, the loop guard and their helpers, without a broker."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import oslo_messaging
import pytest
from kombu import serialization
from kafka.structs import TopicPartition
from oslo_messaging._drivers import amqp as rpc_amqp
from oslo_messaging._drivers import common as oslo_common

from kafka_bridge.kafka import envelope
from kafka_bridge.kafka.consumer import Delivery
from kafka_bridge.kafka.received import ReceivedRecord
from kafka_bridge.kafka.settings import KafkaSettings
from kafka_bridge.notification import notification_time, parse_time, split_routing_key
from kafka_bridge.pump import Poison, Skip, SkipReason
from kafka_bridge.pump.routes.event_filter import EventFilter
from kafka_bridge.pump.routes.forward import ForwardRoute, plain_value
from kafka_bridge.pump.routes.reverse import ReverseRoute
from kafka_bridge.pump.routes.topic_template import TEMPLATE_FIELDS, TopicTemplate
from kafka_bridge.pump.sources.rabbit import RabbitNotification

# TopicTemplate -------------------------------------------------------------------------


def check_template(template: str) -> None:
    TopicTemplate(template, "{topic}.{priority}")


def test_check_template_rejects_an_unknown_field_naming_it() -> None:
    with pytest.raises(ValueError) as info:
        check_template("{topic}.{region}.{priority}")
    message = str(info.value)
    assert "{region}" in message
    assert "topic_template" in message
    for field in TEMPLATE_FIELDS:
        assert field in message  # names the known fields


@pytest.mark.parametrize("template", [
    "{topic}.{priority}",
    "{exchange}-{topic}-{priority}-{event_type}-{publisher_id}",
    "fixed-topic",
])
def test_check_template_accepts_the_known_fields(template: str) -> None:
    check_template(template)


def test_template_fields_are_the_five_documented() -> None:
    assert set(TEMPLATE_FIELDS) == {
        "exchange", "topic", "priority", "event_type", "publisher_id"}


# EventFilter ---------------------------------------------------------------------------


def test_event_filter_include_and_exclude() -> None:
    event_filter = EventFilter(["compute.*", "image.upload"], ["compute.*.error"])
    assert event_filter.accepts("compute.instance.create.end")
    assert event_filter.accepts("image.upload")
    assert not event_filter.accepts("image.delete")
    assert not event_filter.accepts("compute.instance.error")  # excluded wins
    assert not event_filter.accepts("Compute.instance.create.end")  # case-sensitive


def test_event_filter_empty_include_means_everything() -> None:
    assert EventFilter([], []).accepts("anything.at.all")
    assert not EventFilter([], ["anything.*"]).accepts("anything.at.all")
    assert EventFilter([], ["anything.*"]).accepts("other")


EVENT_PATTERNS = ["compute.*", "*.end", "volume.?reate", "a[bc]d", "x[!y]z", "",
                  "identity.*.start", "*"]
EVENT_TYPES = ["compute.instance.create.end", "compute.x", "x.end", "volume.create",
               "volume.ccreate", "abd", "acd", "aed", "xaz", "xyz", "", "identity.a.start",
               "identity.start", "compute.\n", "a.b\nc.end"]


@pytest.mark.parametrize("include", [[], *([p] for p in EVENT_PATTERNS),
                                     ["compute.*", "a[bc]d"], ["", "*.end"]])
@pytest.mark.parametrize("exclude", [[], ["*.end"], ["compute.*", "a?d"], ["*"]])
def test_event_filter_matches_as_fnmatchcase_does(include: list[str],
                                                  exclude: list[str]) -> None:
    event_filter = EventFilter(include, exclude)
    for event_type in EVENT_TYPES:
        expected = (any(fnmatch.fnmatchcase(event_type, p) for p in include or ["*"])
                    and not any(fnmatch.fnmatchcase(event_type, p) for p in exclude))
        assert event_filter.accepts(event_type) == expected, event_type


# notification_time ---------------------------------------------------------------------


@pytest.mark.parametrize("stamp", [
    "2026-12-01 07:00:00.123456", "2026-12-01 07:00:00.000001", "2026-12-01 07:00:59.999999",
    "2026-12-01T07:00:00.123456", "2026-12-01 07:00:00", "2026-12-01 07:00:00.123456+02:00",
    "2026-12-01T07:00:00Z", "2026-13-01 07:00:00.123456", "2026-12-01 07:00:00.12345\u0663",
    "2026-12-01 07:00:00.12_456", "2026-12-01 07:00:00. 12345", "garbage", ""])
def test_notification_time_reads_as_parse_time_does(stamp: str) -> None:
    try:
        expected: float | None = parse_time(stamp).timestamp()
    except ValueError:
        expected = None
    for _ in range(2):  # the second time from the cache of seconds
        found = notification_time({"timestamp": stamp})
        assert found == pytest.approx(expected, abs=1e-6) if expected is not None \
            else found is None


def test_notification_time_of_a_notification_without_one_is_none() -> None:
    assert notification_time({"timestamp": 1764572400}) is None
    assert notification_time(None) is None


# split_routing_key ---------------------------------------------------------------------


@pytest.mark.parametrize("routing_key, expected", [
    ("notifications.info", ("notifications", "info")),
    ("a.b.error", ("a.b", "error")),
    ("nopriority", ("nopriority", None)),
    ("x.INFO", ("x", "info")),
    ("notifications.unknown", ("notifications.unknown", None)),
    ("versioned_notifications.sample", ("versioned_notifications", "sample")),
])
def test_split_routing_key(routing_key: str, expected: tuple[str, str | None]) -> None:
    assert split_routing_key(routing_key) == expected


# plain_value ---------------------------------------------------------------------------


def test_plain_value_is_the_notification_alone() -> None:
    value = plain_value({
        "message_id": "m-1", "publisher_id": "compute.host1", "event_type": "e.x",
        "priority": "INFO", "payload": {"a": 1}, "timestamp": "2024-01-01 00:00:00",
        "_context": {"secret": "no"}, "extra": "dropped"})
    assert json.loads(value) == {
        "message_id": "m-1", "publisher_id": "compute.host1", "event_type": "e.x",
        "priority": "INFO", "payload": {"a": 1}, "timestamp": "2024-01-01 00:00:00"}


def test_plain_value_missing_fields_are_null() -> None:
    assert json.loads(plain_value({"event_type": "e"})) == {
        "message_id": None, "publisher_id": None, "event_type": "e", "priority": None,
        "payload": None, "timestamp": None}


# ForwardRoute --------------------------------------------------------------------------


def sent_by_rabbit_driver(ctxt: Any, body: dict, envelope_version: bool = True) -> bytes:
    """The body of a notification as oslo.messaging's rabbit driver publishes it."""
    message = dict(body)
    rpc_amqp._add_unique_id(message)
    rpc_amqp.pack_context(message, ctxt)
    data = oslo_common.serialize_msg(message) if envelope_version else message
    return serialization.dumps(data, serializer="json")[2].encode()


NOTIFICATION = {"message_id": "m-1", "publisher_id": "compute.host1",
                "event_type": "compute.instance.create.end", "priority": "INFO",
                "payload": {"instance_id": "abc", "n": 1},
                "timestamp": "2024-01-01 00:00:00.000000"}
CTXT = {"user": "u1", "request_id": "req-1"}


def local_message(body: dict | None = None, ctxt: Any = None,
                  exchange: str = "nova", routing_key: str = "notifications.error",
                  sent: bytes | None = None, content_type: str | None = "application/json",
                  content_encoding: str | None = "utf-8") -> RabbitNotification:
    raw = sent if sent is not None else sent_by_rabbit_driver(
        dict(CTXT) if ctxt is None else ctxt, NOTIFICATION if body is None else body)
    return RabbitNotification(raw, {"content_type": content_type,
                                    "content_encoding": content_encoding},
                              {"exchange": exchange, "routing_key": routing_key,
                               "delivery_tag": 7}, queue="bridge-pool")


def forward_route(template: str = "{topic}.{priority}", output_format: str = "oslo",
                  include: list[str] | None = None, exclude: list[str] | None = None,
                  values: dict[str, Any] | None = None) -> ForwardRoute:
    return ForwardRoute(KafkaSettings.create(["h:1"], None, values or {}),
                        TopicTemplate(template, "{topic}.{priority}"),
                        EventFilter(include or ["*"], exclude or []), output_format,
                        "dead.letters")


def test_rabbit_notification_unpacks_what_the_rabbit_driver_sends() -> None:
    message = local_message()
    assert (message.exchange, message.routing_key) == ("nova", "notifications.error")
    # the context as the notifier had it: no driver keys (_unique_id, msg_id, reply_q)
    assert message.ctxt == CTXT
    assert message.message == NOTIFICATION
    assert message.outcome is None
    message.ack()
    assert message.outcome == "ack"
    other = local_message()
    other.nack()
    assert other.outcome == "requeue"


def test_rabbit_notification_of_the_unversioned_messaging_driver() -> None:
    message = local_message(sent=sent_by_rabbit_driver(CTXT, NOTIFICATION,
                                                       envelope_version=False))
    assert (message.ctxt, message.message) == (CTXT, NOTIFICATION)


@pytest.mark.parametrize("sent, reason", [
    ({"oslo.version": "2.0", "oslo.message": "{not json"}, "oslo.message is not JSON"),
    ({"just": "a dict"}, "not an oslo notification"),
])
def test_message_that_is_not_an_oslo_envelope_is_poison(sent: dict, reason: str) -> None:
    with pytest.raises(Poison, match=reason):
        forward_route().record_for(local_message(sent=json.dumps(sent).encode()))


def test_forward_default_template_and_oslo_value() -> None:
    record = forward_route().record_for(local_message())
    # the priority comes from the routing key, not the body
    assert record.topic == "notifications.error"
    ctxt, body = envelope.decode(record.value)
    assert ctxt == CTXT
    assert body == NOTIFICATION
    assert json.loads(record.value)["oslo.version"] == "2.0"
    assert record.key is None


def test_forward_template_uses_all_fields() -> None:
    route = forward_route("{exchange}-{topic}-{priority}-{event_type}-{publisher_id}")
    record = route.record_for(local_message())
    assert record.topic == ("nova-notifications-error-compute.instance.create.end-"
                            "compute.host1")


def test_forward_priority_from_the_body_when_the_routing_key_has_none() -> None:
    message = local_message(routing_key="notifications")
    assert forward_route().record_for(message).topic == "notifications.info"


def test_forward_without_any_priority_is_poison() -> None:
    body = {k: v for k, v in NOTIFICATION.items() if k != "priority"}
    with pytest.raises(Poison, match="priority"):
        forward_route().record_for(local_message(body, routing_key="notifications"))


def test_forward_plain_value() -> None:
    record = forward_route(output_format="plain").record_for(local_message())
    assert json.loads(record.value) == NOTIFICATION  # no envelope, no context
    assert record.value == plain_value(NOTIFICATION)


def test_forward_headers() -> None:
    record = forward_route().record_for(local_message())
    assert dict(record.headers) == {
        "event_type": b"compute.instance.create.end", "priority": b"INFO",
        "publisher_id": b"compute.host1", "message_id": b"m-1",
        "kafka_bridge_origin": b"local", "kafka_bridge_source": b"nova/notifications.error"}
    assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in record.headers)


def test_forward_record_key_field() -> None:
    route = forward_route(values={"record_key_field": "payload.instance_id"})
    assert route.record_for(local_message()).key == b"abc"
    body = dict(NOTIFICATION, payload={})
    assert route.record_for(local_message(body)).key is None


def test_forward_skips_what_reverse_mode_republished() -> None:
    message = local_message(ctxt=dict(CTXT, kafka_bridge_origin="kafka"))
    with pytest.raises(Skip) as info:
        forward_route().record_for(message)
    assert info.value.reason is SkipReason.LOOP


def test_forward_skips_excluded_event_types() -> None:
    route = forward_route(exclude=["compute.instance.create.*"])
    with pytest.raises(Skip) as info:
        route.record_for(local_message())
    assert info.value.reason is SkipReason.FILTERED
    included_only = forward_route(include=["image.*"])
    with pytest.raises(Skip) as info:
        included_only.record_for(local_message())
    assert info.value.reason is SkipReason.FILTERED
    # and what passes the filter is forwarded
    assert forward_route(include=["compute.*"]).record_for(local_message()).topic


@pytest.mark.parametrize("body", [
    {"payload": {"a": 1}, "priority": "INFO"},
    {"event_type": 42, "priority": "INFO"},
])
def test_forward_message_without_event_type_is_poison(body: dict) -> None:
    with pytest.raises(Poison, match="event_type"):
        forward_route().record_for(local_message(body))


def test_forward_unserializable_notification_is_poison() -> None:
    # Cannot come from RabbitMQ as JSON; a mapping that made one must not crash the pump.
    message = local_message()
    message.message = dict(NOTIFICATION, payload={"x": object()})
    with pytest.raises(Poison, match="JSON"):
        forward_route().record_for(message)


def test_forward_dead_letter_keeps_the_original_body_and_says_why_and_whence() -> None:
    body = b"\x00\xffnot a notification"
    message = local_message(sent=body, content_type="application/octet-stream",
                            content_encoding=None)
    reason = str(message.error)
    record = forward_route().dead_letter(message, reason)
    assert record.topic == "dead.letters"
    assert record.value == body
    assert record.key is None
    assert dict(record.headers) == {
        "kafka_bridge_error": reason.encode(),
        "kafka_bridge_origin": b"local",
        "kafka_bridge_source": b"nova/notifications.error",
        "kafka_bridge_exchange": b"nova",
        "kafka_bridge_routing_key": b"notifications.error",
        "kafka_bridge_queue": b"bridge-pool",
        "kafka_bridge_content_type": b"application/octet-stream"}
    assert reason.startswith("unsupported content type")


def test_forward_dead_letter_is_cut_to_fit_the_request_size_and_says_so() -> None:
    route = forward_route(values={"max_request_size": 2048})
    body = dict(NOTIFICATION, payload={"blob": "x" * 10000})
    message = local_message(body)
    record = route.dead_letter(message, "r" * 5000)
    size = len(record.value) + sum(len(k) + len(v) for k, v in record.headers)
    assert size <= 2048
    assert len(record.value) > 500
    assert record.value == message.body[:len(record.value)]
    headers = dict(record.headers)
    assert headers["kafka_bridge_truncated_from"] == str(len(message.body)).encode()
    assert len(headers["kafka_bridge_error"]) == 1000


def test_forward_dead_letter_that_fits_is_not_cut() -> None:
    message = local_message({"payload": {"a": 1}})
    record = forward_route().dead_letter(message, "not an oslo notification: no event_type")
    assert record.value == message.body
    assert "kafka_bridge_truncated_from" not in dict(record.headers)


def test_forward_dead_letter_logs_once_per_kind_of_reason(caplog) -> None:
    route = forward_route()
    with caplog.at_level("WARNING"):
        for n in range(50):
            route.dead_letter(local_message(sent=b"x" * n), f"body is not JSON: at char {n}")
        route.dead_letter(local_message(sent=b"[]"), "not an object: the message is a list")
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 2, logged
    assert "body is not JSON" in logged[0] and "not an object" in logged[1]


# ReverseRoute --------------------------------------------------------------------------


class FakeSubscription:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Delivery]] = []

    def acknowledge(self, delivery: Delivery) -> None:
        self.calls.append(("ack", delivery))

    def requeue(self, delivery: Delivery) -> None:
        self.calls.append(("requeue", delivery))


def kafka_message(topic: str = "notifications.error", value: bytes | None = None,
                  headers: tuple[tuple[str, bytes], ...] = (),
                  subscription: FakeSubscription | None = None) -> ReceivedRecord:
    delivery = Delivery(partition=TopicPartition(topic, 3), offset=17, key=None,
                        value=envelope.encode(CTXT, NOTIFICATION) if value is None else value,
                        headers=headers, timestamp_ms=0)
    return ReceivedRecord(subscription or FakeSubscription(), delivery)  # type: ignore[arg-type]


def test_reverse_record_for_targets_topic_and_priority_of_the_kafka_topic() -> None:
    notification = ReverseRoute("nova").record_for(kafka_message())
    assert notification.target == oslo_messaging.Target(exchange="nova",
                                                        topic="notifications.error")
    assert notification.message == NOTIFICATION
    assert notification.ctxt == dict(CTXT, kafka_bridge_origin="kafka")


def test_reverse_topic_without_priority_takes_the_body_priority_or_info() -> None:
    route = ReverseRoute(None)
    assert route.record_for(kafka_message("events")).target.topic == "events.info"
    body = dict(NOTIFICATION, priority="WARN")
    warn = kafka_message("events", envelope.encode(CTXT, body))
    assert route.record_for(warn).target.topic == "events.warn"
    body = {k: v for k, v in NOTIFICATION.items() if k != "priority"}
    none = kafka_message("events", envelope.encode(CTXT, body))
    assert route.record_for(none).target.topic == "events.info"
    assert route.record_for(none).target.exchange is None


def test_reverse_skips_what_forward_mode_produced() -> None:
    message = kafka_message(headers=(("event_type", b"e"), ("kafka_bridge_origin", b"local")))
    with pytest.raises(Skip) as info:
        ReverseRoute("nova").record_for(message)
    assert info.value.reason is SkipReason.LOOP
    # another origin is not a loop
    other = kafka_message(headers=(("kafka_bridge_origin", b"elsewhere"),))
    assert ReverseRoute("nova").record_for(other).message == NOTIFICATION


@pytest.mark.parametrize("value", [b"not json", b"\xff\xfe", b"[1]",
                                   json.dumps({"oslo.version": "2.0",
                                               "oslo.message": "{}"}).encode()])
def test_reverse_undecodable_value_is_poison(value: bytes) -> None:
    with pytest.raises(Poison):
        ReverseRoute("nova").record_for(kafka_message(value=value))


def test_reverse_dead_letter_only_logs() -> None:
    assert ReverseRoute("nova").dead_letter(kafka_message(value=b"x"), "bad") is None


def test_kafka_message_settles_through_the_subscription() -> None:
    subscription = FakeSubscription()
    message = kafka_message(subscription=subscription)
    message.ack()
    message.nack()
    assert subscription.calls == [("ack", message.delivery), ("requeue", message.delivery)]


def test_loop_guard_between_the_two_directions() -> None:
    # what forward wrote to Kafka is not republished by reverse ...
    record = forward_route().record_for(local_message())
    with pytest.raises(Skip):
        ReverseRoute("nova").record_for(
            kafka_message(record.topic, record.value, record.headers))
    # ... and what reverse republished locally is not forwarded again
    republished = ReverseRoute("nova").record_for(kafka_message())
    message = local_message(republished.message, ctxt=republished.ctxt)
    with pytest.raises(Skip) as info:
        forward_route().record_for(message)
    assert info.value.reason is SkipReason.LOOP
