"""At-least-once on the RabbitMQ side, without a broker: the forward source's batch settle and
the reverse sink's publisher-confirm bookkeeping, with injected fake channels and connections."""

from __future__ import annotations

import socket
import threading
import types
from collections.abc import Callable
from typing import Any

import oslo_messaging
import oslo_messaging.opts
from oslo_config import cfg

from kafka_bridge.pump.sinks.rabbit import Confirms, LocalNotification, RabbitSink
from kafka_bridge.pump.sources.rabbit import RabbitNotification, settle
from kafka_bridge.rabbit import wire

# the forward source's settle ---------------------------------------------------------------


class SettlingChannel:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.calls.append(("ack", tag, multiple))

    def basic_reject(self, tag: int, requeue: bool) -> None:
        self.calls.append(("reject", tag, requeue))


def received(tag: int, channel: Any, outcome: str = "ack") -> RabbitNotification:
    message = RabbitNotification(b"{}", {"content_type": "application/json",
                                         "content_encoding": "utf-8"},
                                 {"delivery_tag": tag, "exchange": "nova",
                                  "routing_key": "notifications.info"}, "q", channel)
    message.ack() if outcome == "ack" else message.nack()
    return message


def test_an_all_acknowledged_batch_takes_one_multiple_ack() -> None:
    channel = SettlingChannel()
    settle([received(tag, channel) for tag in (5, 6, 7)], channel)
    assert channel.calls == [("ack", 7, True)]


def test_a_batch_with_a_requeue_is_settled_message_by_message() -> None:
    channel = SettlingChannel()
    settle([received(5, channel), received(6, channel, "nack"), received(7, channel)], channel)
    assert channel.calls == [("ack", 5, False), ("reject", 6, True), ("ack", 7, False)]


def test_messages_of_a_replaced_channel_are_left_to_the_broker() -> None:
    old, new = SettlingChannel(), SettlingChannel()
    # the connection was re-established mid-batch: the old channel's messages are
    # back in their queue already; acking their tags on the new channel would ack others
    settle([received(8, old), received(9, old), received(1, new), received(2, new)], new)
    assert old.calls == []
    assert new.calls == [("ack", 2, True)]
    settle([received(10, old, "nack")], new)
    assert old.calls == [] and new.calls == [("ack", 2, True)]


def test_a_decoder_that_raises_makes_an_undecodable_message_not_a_lost_one(monkeypatch) -> None:
    def broken(*_: Any) -> None:
        raise KeyError("surprise")
    monkeypatch.setattr(wire, "decode", broken)
    message = received(3, SettlingChannel())
    assert message.error is not None and message.error.kind == "decoder raised"
    assert "KeyError" in str(message.error) and message.body == b"{}"


# the reverse sink's confirms ---------------------------------------------------------------


def test_a_multiple_ack_confirms_every_publish_up_to_its_tag_only() -> None:
    confirms = Confirms()
    numbers = [confirms.publishing() for _ in range(5)]
    assert numbers == [1, 2, 3, 4, 5]
    confirms.on_ack(3, True)
    assert confirms.settled([1, 2, 3]) and not confirms.settled([4])
    confirms.on_nack(5, False)
    confirms.on_ack(4, False)
    assert [confirms.take(n) for n in numbers] == [True, True, True, True, False]


def test_a_multiple_nack_refuses_the_pending_ones_and_a_stray_tag_is_ignored() -> None:
    confirms = Confirms()
    for _ in range(4):
        confirms.publishing()
    confirms.on_ack(1, False)
    confirms.on_nack(3, True, False)
    confirms.on_ack(42, False)  # nothing published under that number
    assert [confirms.take(n) for n in (1, 2, 3, 4, 42)] == [True, False, False, None, None]


class FakeChannel:
    """A py-amqp channel in confirm mode, as far as the sink uses it."""

    def __init__(self, refuse_publish_after: int | None = None) -> None:
        self.events: dict[str, set[Callable[..., None]]] = {"basic_ack": set(),
                                                            "basic_nack": set()}
        self.confirm_selected = False
        self.published: list[tuple[str, str, Any]] = []
        self.declared: list[tuple[str, dict]] = []
        self.refuse_publish_after = refuse_publish_after

    def confirm_select(self) -> None:
        self.confirm_selected = True

    def exchange_declare(self, **kwargs: Any) -> None:
        self.declared.append(("exchange", kwargs))

    def queue_declare(self, **kwargs: Any) -> tuple[str, int, int]:
        self.declared.append(("queue", kwargs))
        return kwargs["queue"], 0, 0

    def queue_bind(self, **kwargs: Any) -> None:
        self.declared.append(("bind", kwargs))

    @staticmethod
    def prepare_queue_arguments(arguments: dict, **_: Any) -> dict:
        return arguments

    def prepare_message(self, body: bytes, priority: Any = None, content_type: Any = None,
                        content_encoding: Any = None, headers: Any = None,
                        properties: Any = None) -> dict:
        return {"body": body, "content_type": content_type,
                "content_encoding": content_encoding, "properties": properties}

    def basic_publish(self, message: dict, exchange: str = "", routing_key: str = "",
                      **_: Any) -> None:
        if self.refuse_publish_after is not None and \
                len(self.published) >= self.refuse_publish_after:
            raise ConnectionResetError("connection reset by peer")
        self.published.append((exchange, routing_key, message))

    def confirm(self, kind: str, tag: int, multiple: bool) -> None:
        for callback in list(self.events[f"basic_{kind}"]):
            callback(tag, multiple)


class FakeConnection:
    """Hands out one channel; drain_events delivers the broker's scripted confirms."""

    def __init__(self, channel: FakeChannel,
                 confirms: Callable[[FakeChannel], list[tuple[str, int, bool]]]) -> None:
        self._channel = channel
        self._confirms = confirms
        self.released = False
        self.connection = types.SimpleNamespace(sock=None)  # the transport's: no socket here

    def channel(self) -> FakeChannel:
        return self._channel

    def drain_events(self, timeout: float) -> None:
        script = self._confirms(self._channel)
        if not script:
            raise socket.timeout()
        kind, tag, multiple = script.pop(0)
        self._channel.confirm(kind, tag, multiple)

    def heartbeat_check(self, rate: int) -> None:
        pass

    def release(self) -> None:
        self.released = True


def sink_with(connections: list[Any]) -> tuple[RabbitSink, list[tuple]]:
    """A sink whose successive connects hand out connections (an exception is raised)."""
    conf = cfg.ConfigOpts()
    conf([])
    # no heartbeats: the fakes need none (URL query parameters override options)
    conf.register_opts(dict(oslo_messaging.opts.list_opts())[None])
    conf.set_override("transport_url", "rabbit://u:p@h:5672/?heartbeat_timeout_threshold=0")
    transport = oslo_messaging.get_notification_transport(conf)
    calls: list[tuple] = []

    def connect(settings: Any, purpose: str, cancel: threading.Event,
                retry: bool = True) -> Any:
        calls.append((purpose, retry))
        outcome = connections.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    sink = RabbitSink(transport, connect=connect)
    transport.cleanup()
    assert sink._settings.heartbeat == 0
    return sink, calls


def notifications(count: int) -> list[LocalNotification]:
    return [LocalNotification(oslo_messaging.Target(topic="notifications.info"),
                              {"request_id": f"req-{n}"},
                              {"event_type": "e", "payload": {"n": n}}) for n in range(count)]


def ack_all_at_once(channel: FakeChannel) -> list[tuple[str, int, bool]]:
    """The broker confirms everything published so far with one multiple ack."""
    if len(channel.published) > getattr(channel, "acked", 0):
        channel.acked = len(channel.published)  # type: ignore[attr-defined]
        return [("ack", len(channel.published), True)]
    return []


def test_sink_publishes_the_batch_as_the_driver_would_then_reads_one_multiple_ack() -> None:
    channel = FakeChannel()
    sink, calls = sink_with([FakeConnection(channel, ack_all_at_once)])
    assert sink.attempt(notifications(3)) == [None, None, None]
    assert calls == [("reverse", False)]  # one connection try per attempt: the pump retries
    assert channel.confirm_selected
    assert [(e, k) for e, k, _ in channel.published] == [("openstack", "notifications.info")] * 3
    message = channel.published[0][2]
    assert message["content_type"] == "application/json"
    assert message["content_encoding"] == "utf-8"
    ctxt, body = wire.decode(message["body"], "application/json", "utf-8")
    assert (ctxt, body) == ({"request_id": "req-0"}, {"event_type": "e", "payload": {"n": 0}})
    # exchange and the default queue declared once, as the driver does before publishing
    kinds = [kind for kind, _ in channel.declared]
    assert kinds == ["exchange", "queue", "bind"]
    assert sink.attempt(notifications(2)) == [None, None]
    assert [kind for kind, _ in channel.declared] == kinds


def test_sink_reports_a_nacked_notification_as_retriable_and_the_others_confirmed() -> None:
    def script(channel: FakeChannel) -> list[tuple[str, int, bool]]:
        if not hasattr(channel, "script"):
            channel.script = [("ack", 1, False), ("nack", 2, False),  # type: ignore
                              ("ack", 3, False)]
        return channel.script  # type: ignore
    sink, _ = sink_with([FakeConnection(FakeChannel(), script)])
    outcomes = sink.attempt(notifications(3))
    assert outcomes[0] is None and outcomes[2] is None
    assert outcomes[1] is not None and outcomes[1].retriable and "nack" in str(outcomes[1])


def test_sink_stops_waiting_for_confirms_when_cancelled() -> None:
    cancel = threading.Event()

    def never(channel: FakeChannel) -> list[tuple[str, int, bool]]:
        cancel.set()  # shutdown while the confirms are awaited
        return []
    sink, _ = sink_with([FakeConnection(FakeChannel(), never)])
    outcomes = sink.attempt(notifications(2), cancel)
    assert all(o is not None and o.retriable and "before shutdown" in str(o) for o in outcomes)


def test_sink_connection_lost_mid_batch_fails_the_rest_and_starts_a_new_channel() -> None:
    first = FakeConnection(FakeChannel(refuse_publish_after=2), lambda channel: [])
    second_channel = FakeChannel()
    second = FakeConnection(second_channel, ack_all_at_once)
    sink, calls = sink_with([first, second])
    outcomes = sink.attempt(notifications(4))
    assert all(o is not None and o.retriable for o in outcomes), outcomes
    assert first.released
    # a late confirm of the dead channel confirms nothing of the next attempt
    first.channel().confirm("ack", 2, True)
    assert sink.attempt(notifications(3)) == [None, None, None]
    assert len(calls) == 2
    assert len(second_channel.published) == 3  # numbered from 1 on the new channel


def test_sink_attempt_while_rabbitmq_is_down_fails_fast_and_retriably() -> None:
    sink, calls = sink_with([ConnectionRefusedError("refused"), None])
    outcomes = sink.attempt(notifications(2))
    assert all(o is not None and o.retriable for o in outcomes)
    # cancelled while connecting (connect returned None): unsent, retriable, no raise
    assert all(o is not None and o.retriable for o in sink.attempt(notifications(1)))
    assert len(calls) == 2


def test_sink_a_notification_that_cannot_be_serialized_fails_alone_for_good() -> None:
    channel = FakeChannel()
    sink, _ = sink_with([FakeConnection(channel, ack_all_at_once)])
    batch = notifications(2)
    batch.insert(1, LocalNotification(oslo_messaging.Target(topic="notifications.info"), {},
                                      {"payload": object()}))
    outcomes = sink.attempt(batch)
    assert outcomes[0] is None and outcomes[2] is None
    assert outcomes[1] is not None and not outcomes[1].retriable
    assert len(channel.published) == 2
