"""The README demo: start real brokers, prove a round trip through each, stop.

Run with ``make demo``. Exits 0 only if every step worked.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import oslo_messaging
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from oslo_config import cfg

from kafka_bridge import devenv

COUNT = 1000


def kafka_round_trip(bootstrap: str) -> None:
    topic = f"demo-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    began = time.monotonic()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    futures = [producer.send(topic, b'{"n": %d}' % i) for i in range(COUNT)]
    for future in futures:
        future.get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=topic,
                             auto_offset_reset="earliest", consumer_timeout_ms=20000)
    received = sum(1 for _, record in zip(range(COUNT), consumer))
    consumer.close()
    elapsed = time.monotonic() - began
    print(f"kafka:    produced {COUNT} records (acks=all) to {topic} and consumed "
          f"{received} back in {elapsed:.2f}s")
    if received != COUNT:
        raise SystemExit(f"kafka round trip lost records: {received}/{COUNT}")


def rabbit_round_trip(url: str) -> None:
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    topic = f"demo-{uuid.uuid4().hex[:8]}"
    received: list[dict] = []
    done = threading.Event()

    class Endpoint:
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            received.append(payload)
            if len(received) == COUNT:
                done.set()

    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [Endpoint()], executor="threading")
    listener.start()
    began = time.monotonic()
    notifier = oslo_messaging.Notifier(transport, publisher_id="demo", driver="messaging",
                                       topics=[topic])
    for i in range(COUNT):
        notifier.info({}, "demo.notification", {"n": i})
    done.wait(60)
    elapsed = time.monotonic() - began
    listener.stop()
    listener.wait()
    transport.cleanup()
    print(f"rabbitmq: sent {COUNT} oslo notifications on topic {topic} and a listener "
          f"received {len(received)} in {elapsed:.2f}s")
    if len(received) != COUNT:
        raise SystemExit(f"rabbitmq round trip lost notifications: {len(received)}/{COUNT}")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="kafka-bridge-demo-") as tmp:
        directory = Path(tmp)
        began = time.monotonic()
        exports = devenv.start(directory, devenv.StartOptions())
        print(f"devenv:   started RabbitMQ ({exports['KAFKA_BRIDGE_RABBIT_URL'].split('@')[1]}) "
              f"and Kafka ({exports['KAFKA_BRIDGE_KAFKA_BOOTSTRAP']}) in "
              f"{time.monotonic() - began:.1f}s")
        try:
            kafka_round_trip(exports["KAFKA_BRIDGE_KAFKA_BOOTSTRAP"])
            rabbit_round_trip(exports["KAFKA_BRIDGE_RABBIT_URL"])
        finally:
            stopped = devenv.stop(directory)
            print(f"devenv:   stopped {len(stopped)} processes")
    print("demo: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
