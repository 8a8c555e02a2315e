"""The bridge's RabbitMQ side declares and publishes exactly as oslo.messaging's rabbit driver.

Real RabbitMQ. The driver and the bridge's reverse sink publish to the same
exchange and default queue; RabbitMQ refuses (PRECONDITION_FAILED) a
declaration that differs from an existing one, so publishing after the
driver proves the declarations equivalent, for plain, durable and quorum
queues. The two messages must carry the same properties and envelope.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlsplit

import amqp
import oslo_messaging
import pytest
from oslo_config import cfg

from kafka_bridge.pump.sinks.rabbit import LocalNotification, RabbitSink
from kafka_bridge.rabbit import settings as rabbit_settings
from kafka_bridge.rabbit import wire
from kafka_bridge_devenv.brokers import Brokers

OPTIONS = {
    "default": "",
    "durable": "amqp_durable_queues = true\n",
    "quorum": "rabbit_quorum_queue = true\nrabbit_quorum_delivery_limit = 5\n",
}


def configured(tmp_path: Path, brokers: Brokers, exchange: str,
               rabbit_options: str) -> cfg.ConfigOpts:
    path = tmp_path / "bridge.conf"
    path.write_text(f"[DEFAULT]\ntransport_url = {brokers.rabbit_url}\n"
                    f"control_exchange = {exchange}\n"
                    f"[oslo_messaging_rabbit]\nheartbeat_timeout_threshold = 0\n"
                    f"{rabbit_options}")
    conf = cfg.ConfigOpts()
    rabbit_settings.register_options(conf)
    conf(["--config-file", str(path)])
    return conf


def take(brokers: Brokers, queue: str, count: int) -> list[amqp.Message]:
    url = urlsplit(brokers.rabbit_url)
    connection = amqp.Connection(f"{url.hostname}:{url.port}", userid=unquote(url.username),
                                 password=unquote(url.password))
    connection.connect()
    try:
        channel = connection.channel()
        channel.auto_decode = False
        return [channel.basic_get(queue, no_ack=True) for _ in range(count)]
    finally:
        connection.close()


@pytest.mark.parametrize("kind", sorted(OPTIONS))
def test_sink_declares_and_publishes_as_the_driver(tmp_path: Path, brokers: Brokers,
                                                   unique: str, kind: str) -> None:
    # an exchange of its own: the shared one exists non-durable, and a durable
    # declaration of it is refused (the driver and the bridge fall back alike)
    conf = configured(tmp_path, brokers, f"{unique}-x", OPTIONS[kind])
    topic = f"{unique}.info"
    transport = oslo_messaging.get_notification_transport(conf)
    sink = RabbitSink(transport)
    try:
        notifier = oslo_messaging.Notifier(transport, publisher_id="p", driver="messagingv2",
                                           topics=[unique])
        notifier.info({"request_id": "r"}, "e", {"by": "driver"})
        target = oslo_messaging.Target(topic=topic)  # [DEFAULT] control_exchange, as above
        assert sink.attempt([LocalNotification(target, {"request_id": "r"},
                                               {"event_type": "e",
                                                "payload": {"by": "bridge"}})]) == [None]
    finally:
        sink.close()
        transport.cleanup()
    by_driver, by_bridge = take(brokers, topic, 2)
    assert by_driver is not None and by_bridge is not None, "a message is missing"
    assert by_bridge.properties == by_driver.properties
    for message in (by_driver, by_bridge):
        _, body = wire.decode(message.body, message.content_type, message.content_encoding)
        assert body["event_type"] == "e"
    assert list(json.loads(by_bridge.body)) == list(json.loads(by_driver.body))
