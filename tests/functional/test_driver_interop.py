"""``kafka-notify://`` and oslo.messaging's own ``kafka://`` driver speak the same wire format.

Each direction is checked with the real upstream driver
(``oslo_messaging._drivers.impl_kafka``, confluent-kafka) against a real
broker, and the record headers kafka-notify adds are read back raw with
kafka-python.

Upstream ``kafka://`` quirks these tests work around, without sleeping:

* its consumer uses ``auto.offset.reset=latest`` and joins its group
  seconds after ``start()`` returns, so a notification published meanwhile
  could be skipped. The tests commit offset 0 on every partition for the
  listener's pool first, so the upstream consumer starts at the beginning
  of each (empty) partition however late it joins;
* its listener's constructor polls once and throws away the message that
  poll returns, so nothing is published before its ``start()`` returned;
* it never creates topics (auto-creation is off on these brokers), so the
  tests create them first.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import oslo_messaging
import pytest
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata, TopicPartition
from oslo_config import cfg
from oslo_context.context import RequestContext

from kafka_bridge_devenv.brokers import Brokers

# Runs on every OpenStack release of the matrix (tox -e py-RELEASE).
pytestmark = pytest.mark.matrix

PARTITIONS = 3
#: oslo Notifier method -> the priority it puts on the wire (and the topic suffix, lower-cased)
PRIORITIES = {"info": "INFO", "warn": "WARN", "error": "ERROR", "critical": "CRITICAL"}
DEADLINE = 40.0


@pytest.fixture
def plain_brokers(brokers: Brokers) -> Brokers:
    if brokers.secure:
        pytest.skip("the kafka:// interop tests build a PLAINTEXT kafka:// URL")
    return brokers


def upstream_url(brokers: Brokers) -> str:
    """The oslo.messaging ``kafka://`` URL of the brokers."""
    return f"kafka://{brokers.kafka_bootstrap}/"


def new_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([])
    return conf


def create_topics(brokers: Brokers, topics: list[str], partitions: int = PARTITIONS) -> None:
    admin = KafkaAdminClient(**brokers.kafka_client_config())
    try:
        admin.create_topics([NewTopic(t, partitions, -1) for t in topics])
    finally:
        admin.close()


def commit_beginning(brokers: Brokers, group: str, topics: list[str]) -> None:
    """Commit offset 0 of every partition of topics for group.

    A group with committed offsets resumes from them, so a ``kafka://``
    listener in this group reads every record of these (empty) topics
    whenever its assignment completes, in spite of auto.offset.reset=latest.
    """
    consumer = KafkaConsumer(group_id=group, enable_auto_commit=False,
                             **brokers.kafka_client_config())
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.commit({tp: OffsetAndMetadata(0, "", -1) for tp in partitions})
        committed = {tp: consumer.committed(tp) for tp in partitions}
    finally:
        consumer.close(autocommit=False)
    assert committed == {tp: 0 for tp in partitions}


class Collector:
    """A notification endpoint recording every call, whatever the priority."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def _record(self, priority: str, ctxt: Any, publisher_id: str, event_type: str,
                payload: Any, metadata: dict[str, Any]) -> None:
        with self._cond:
            self.received.append({"priority": priority, "ctxt": ctxt,
                                  "publisher_id": publisher_id, "event_type": event_type,
                                  "payload": payload, "metadata": metadata})
            self._cond.notify_all()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record("INFO", ctxt, publisher_id, event_type, payload, metadata)

    def warn(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record("WARN", ctxt, publisher_id, event_type, payload, metadata)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record("ERROR", ctxt, publisher_id, event_type, payload, metadata)

    def critical(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record("CRITICAL", ctxt, publisher_id, event_type, payload, metadata)

    def wait_for(self, count: int, timeout: float) -> list[dict[str, Any]]:
        """All received so far, once there are count of them or timeout passed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self.received)


def batch(unique: str, count: int) -> list[dict[str, Any]]:
    """count distinct notifications cycling through the priorities."""
    methods = list(PRIORITIES)
    out = []
    for i in range(count):
        method = methods[i % len(methods)]
        out.append({
            "method": method,
            "priority": PRIORITIES[method],
            "publisher_id": f"compute.host-{i % 3}",
            "event_type": f"compute.instance.{method}.{i}",
            "ctxt": RequestContext(user_id=f"user-{i}", project_id="demo",
                                   request_id=f"req-{unique}-{i}", roles=["admin", "member"],
                                   is_admin=i % 2 == 0, global_request_id=f"greq-{i}"),
            "payload": {"id": i, "instance": f"inst-{i}", "nested": {"n": i, "ok": True},
                        "tags": ["a", "b"], "unicode": "növa ✓", "none": None},
        })
    return out


def publish(transport: oslo_messaging.Transport, topic: str,
            notifications: list[dict[str, Any]]) -> None:
    notifiers: dict[str, oslo_messaging.Notifier] = {}
    for n in notifications:
        notifier = notifiers.get(n["publisher_id"])
        if notifier is None:
            notifier = notifiers[n["publisher_id"]] = oslo_messaging.Notifier(
                transport, publisher_id=n["publisher_id"], driver="messagingv2",
                topics=[topic])
        getattr(notifier, n["method"])(n["ctxt"], n["event_type"], n["payload"])


def wire_context(ctxt: RequestContext) -> dict[str, Any]:
    """The context a listener hands its endpoint for ctxt (oslo's Notifier redacts it)."""
    return json.loads(json.dumps(ctxt.redacted_copy().to_dict()))


def assert_received_intact(sent: list[dict[str, Any]], received: list[dict[str, Any]]) -> None:
    by_id: dict[int, list[dict[str, Any]]] = {}
    for r in received:
        by_id.setdefault(r["payload"]["id"], []).append(r)
    missing = sorted(n["payload"]["id"] for n in sent if n["payload"]["id"] not in by_id)
    assert not missing, f"{len(missing)} of {len(sent)} notifications never arrived: {missing}"
    for n in sent:
        got = by_id[n["payload"]["id"]][0]
        assert got["payload"] == n["payload"]
        assert got["event_type"] == n["event_type"]
        assert got["publisher_id"] == n["publisher_id"]
        assert got["priority"] == n["priority"]
        assert got["ctxt"] == wire_context(n["ctxt"])
        assert got["ctxt"]["request_id"] == n["ctxt"].request_id
        assert set(got["metadata"]) >= {"message_id", "timestamp"}
    assert len({r["metadata"]["message_id"] for r in received}) == len(received)


@pytest.fixture
def transports(plain_brokers: Brokers) -> Iterator[dict[str, oslo_messaging.Transport]]:
    """Notification transports, 'notify' (kafka-notify://) and 'upstream' (kafka://)."""
    made = {
        "notify": oslo_messaging.get_notification_transport(new_conf(),
                                                            url=plain_brokers.kafka_url),
        "upstream": oslo_messaging.get_notification_transport(
            new_conf(), url=upstream_url(plain_brokers)),
    }
    yield made
    for transport in made.values():
        transport.cleanup()


def listen(transport: oslo_messaging.Transport, topic: str, pool: str,
           collector: Collector) -> oslo_messaging.MessageHandlingServer:
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [collector], executor="threading",
        pool=pool)
    listener.start()
    return listener


def test_kafka_reads_what_kafka_notify_writes(plain_brokers: Brokers, unique: str,
                                              transports) -> None:
    topic, pool = f"{unique}-t", f"{unique}-pool"
    kafka_topics = [f"{topic}.{m}" for m in PRIORITIES]
    create_topics(plain_brokers, kafka_topics)
    commit_beginning(plain_brokers, pool, kafka_topics)
    sent = batch(unique, 60)
    collector = Collector()
    listener = listen(transports["upstream"], topic, pool, collector)
    try:
        publish(transports["notify"], topic, sent)
        received = collector.wait_for(len(sent), DEADLINE)
    finally:
        listener.stop()
        listener.wait()
    assert_received_intact(sent, received)
    assert {r["priority"] for r in received} == set(PRIORITIES.values())


def test_kafka_notify_reads_what_kafka_writes(plain_brokers: Brokers, unique: str,
                                              transports) -> None:
    topic, pool = f"{unique}-t", f"{unique}-pool"
    create_topics(plain_brokers, [f"{topic}.{m}" for m in PRIORITIES])
    sent = batch(unique, 60)
    collector = Collector()
    listener = listen(transports["notify"], topic, pool, collector)
    try:
        publish(transports["upstream"], topic, sent)
        # kafka:// only queues in librdkafka; make it deliver what it queued
        transports["upstream"].cleanup()
        received = collector.wait_for(len(sent), DEADLINE)
    finally:
        listener.stop()
        listener.wait()
    assert_received_intact(sent, received)
    assert len(received) == len(sent), "kafka-notify delivered some notifications twice"


def read_records(brokers: Brokers, topics: list[str], count: int) -> list[Any]:
    """The first count records of topics, read from the beginning without a group."""
    consumer = KafkaConsumer(enable_auto_commit=False, **brokers.kafka_client_config())
    try:
        partitions = [tp for t in topics
                      for tp in (TopicPartition(t, p)
                                 for p in consumer.partitions_for_topic(t) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        deadline = time.monotonic() + DEADLINE
        while len(records) < count and time.monotonic() < deadline:
            for batch_records in consumer.poll(timeout_ms=500).values():
                records.extend(batch_records)
    finally:
        consumer.close(autocommit=False)
    return records


def test_records_carry_headers_and_oslo_envelope(plain_brokers: Brokers, unique: str,
                                                 transports) -> None:
    topic = f"{unique}-t"
    sent = batch(unique, 20)
    # kafka-notify creates its topics and returns once Kafka confirmed each record
    publish(transports["notify"], topic, sent)
    kafka_topics = [f"{topic}.{m}" for m in PRIORITIES]
    records = read_records(plain_brokers, kafka_topics, len(sent))
    assert len(records) == len(sent)

    by_id = {}
    for record in records:
        outer = json.loads(record.value)
        assert set(outer) == {"oslo.version", "oslo.message"}
        assert outer["oslo.version"] == "2.0"
        assert isinstance(outer["oslo.message"], str)
        inner = json.loads(outer["oslo.message"])
        by_id[inner["payload"]["id"]] = (record, inner)
    assert sorted(by_id) == [n["payload"]["id"] for n in sent]

    for n in sent:
        record, inner = by_id[n["payload"]["id"]]
        assert record.topic == f"{topic}.{n['method']}"
        assert inner["payload"] == n["payload"]
        assert inner["_context"] == wire_context(n["ctxt"])
        assert inner["event_type"] == n["event_type"]
        assert inner["publisher_id"] == n["publisher_id"]
        assert inner["priority"] == n["priority"]
        headers = dict(record.headers)
        assert len(headers) == len(record.headers), f"repeated headers: {record.headers}"
        assert headers.get("event_type") == n["event_type"].encode()
        assert headers.get("priority") == n["priority"].encode()
        assert headers.get("publisher_id") == n["publisher_id"].encode()
        assert headers.get("message_id") == inner["message_id"].encode()
    assert len({inner["message_id"] for _, inner in by_id.values()}) == len(sent)
