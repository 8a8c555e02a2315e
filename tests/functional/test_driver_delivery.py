"""kafka-notify:// delivers every notification to the right listeners, at least once."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator

import oslo_messaging
import pytest
from kafka import KafkaConsumer, KafkaProducer
from oslo_config import cfg
from prometheus_client import REGISTRY

from kafka_bridge_devenv.brokers import Brokers

# Runs on every OpenStack release of the matrix (tox -e py-RELEASE).
pytestmark = pytest.mark.matrix

PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")


class Recorder:
    """An endpoint for every priority that records what it receives."""

    def __init__(self, name: str = "", requeue_first: int = 0) -> None:
        self.name = name
        self.received: list[tuple[str, str, dict]] = []
        self._lock = threading.Condition()
        self._requeue_left = requeue_first
        for priority in PRIORITIES:
            setattr(self, priority, self._handler(priority))

    def _handler(self, priority: str):
        def handle(ctxt, publisher_id, event_type, payload, metadata):
            with self._lock:
                if self._requeue_left > 0:
                    self._requeue_left -= 1
                    return oslo_messaging.NotificationResult.REQUEUE
                self.received.append((priority, event_type, payload))
                self._lock.notify_all()
            return oslo_messaging.NotificationResult.HANDLED
        return handle

    def wait_for(self, count: int, timeout: float = 30) -> bool:
        """Wait until count distinct notifications arrived (duplicates don't count)."""
        with self._lock:
            return self._lock.wait_for(
                lambda: len({p["n"] for _, _, p in self.received}) >= count, timeout)

    def ids(self) -> list[int]:
        with self._lock:
            return [payload["n"] for _, _, payload in self.received]


class BatchRecorder:
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.ids: list[int] = []
        self.done = threading.Event()
        self.expected = 0

    def info(self, messages):
        self.batches.append(len(messages))
        self.ids += [m["payload"]["n"] for m in messages]
        if len(set(self.ids)) >= self.expected:
            self.done.set()


@pytest.fixture
def transport(brokers: Brokers) -> Iterator[oslo_messaging.Transport]:
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=brokers.kafka_url)
    yield transport
    transport.cleanup()


class Listeners:
    def __init__(self, transport: oslo_messaging.Transport) -> None:
        self.transport = transport
        self.started: list = []

    def start(self, topics: list[str], endpoint, pool: str | None = None,
              batch: tuple[int, float] | None = None, allow_requeue: bool = False):
        targets = [oslo_messaging.Target(topic=t) for t in topics]
        if batch:
            listener = oslo_messaging.get_batch_notification_listener(
                self.transport, targets, [endpoint], executor="threading", pool=pool,
                batch_size=batch[0], batch_timeout=batch[1])
        else:
            listener = oslo_messaging.get_notification_listener(
                self.transport, targets, [endpoint], executor="threading", pool=pool,
                allow_requeue=allow_requeue)
        listener.start()
        self.started.append(listener)
        return listener

    def stop_all(self) -> None:
        for listener in self.started:
            listener.stop()
            listener.wait()


@pytest.fixture
def listeners(transport) -> Iterator[Listeners]:
    started = Listeners(transport)
    yield started
    started.stop_all()


def notifier(transport, topic: str) -> oslo_messaging.Notifier:
    return oslo_messaging.Notifier(transport, publisher_id="test.host", driver="messaging",
                                   topics=[topic])


def test_listener_started_receives_everything_published_after_start(transport, listeners,
                                                                    unique: str) -> None:
    recorder = Recorder()
    began = time.monotonic()
    listeners.start([unique], recorder)
    start_time = time.monotonic() - began
    # Published at once, before the group assignment can have completed.
    send = notifier(transport, unique)
    for n in range(50):
        send.info({"user": "u1"}, "test.started", {"n": n})
    assert recorder.wait_for(50), f"received {len(recorder.received)} of 50"
    assert set(recorder.ids()) == set(range(50))
    assert start_time < 1.0, f"listener.start() took {start_time:.2f}s"


def test_every_priority_reaches_its_endpoint_method(transport, listeners, unique: str) -> None:
    recorder = Recorder()
    listeners.start([unique], recorder)
    send = notifier(transport, unique)
    for n, priority in enumerate(PRIORITIES):
        getattr(send, priority)({}, f"test.{priority}", {"n": n})
    assert recorder.wait_for(len(PRIORITIES))
    assert {(p, e) for p, e, _ in recorder.received} == {
        (p, f"test.{p}") for p in PRIORITIES}


def test_two_members_of_one_pool_split_the_messages(transport, listeners, unique: str) -> None:
    first, second = Recorder("first"), Recorder("second")
    listeners.start([unique], first, pool=unique)
    listeners.start([unique], second, pool=unique)
    send = notifier(transport, unique)
    deadline = time.monotonic() + 30
    n = 0
    # Keep publishing until both members have work: the group settles on a
    # split of the topic's partitions within a few rebalances.
    while not (first.received and second.received) and time.monotonic() < deadline:
        send.info({}, "test.split", {"n": n})
        n += 1
        first.wait_for(1, 0.01)
    for _ in range(200):
        send.info({}, "test.split", {"n": n})
        n += 1
    deadline = time.monotonic() + 30
    while len(set(first.ids()) | set(second.ids())) < n and time.monotonic() < deadline:
        first.wait_for(n, 0.1)
    together = set(first.ids()) | set(second.ids())
    assert together == set(range(n)), f"missing {sorted(set(range(n)) - together)[:20]}"
    assert first.received and second.received, "one member got nothing"
    overlap = set(first.ids()) & set(second.ids())
    assert len(overlap) < n / 4, f"{len(overlap)} of {n} delivered to both members"


def test_pool_less_listeners_on_the_same_topic_share_and_other_topics_are_separate(
        transport, listeners, unique: str) -> None:
    shared_a, shared_b, other = Recorder(), Recorder(), Recorder()
    listeners.start([unique], shared_a)
    listeners.start([unique], shared_b)
    listeners.start([unique + "-other"], other)
    send, send_other = notifier(transport, unique), notifier(transport, unique + "-other")
    for n in range(100):
        send.info({}, "test.shared", {"n": n})
        send_other.info({}, "test.other", {"n": n})
    assert other.wait_for(100)
    deadline = time.monotonic() + 30
    while len(set(shared_a.ids()) | set(shared_b.ids())) < 100 and time.monotonic() < deadline:
        shared_a.wait_for(100, 0.1)
    assert set(shared_a.ids()) | set(shared_b.ids()) == set(range(100))
    # Shared work: the two pool-less listeners are one group, not two copies.
    assert len(shared_a.ids()) + len(shared_b.ids()) < 150
    # At-least-once: a rebalance may deliver a few records twice, never none.
    assert set(other.ids()) == set(range(100))
    assert len(other.ids()) < 150
    assert all(e == "test.other" for _, e, _ in other.received)


def test_batch_listener_honours_batch_size_and_timeout(transport, listeners,
                                                       unique: str) -> None:
    recorder = BatchRecorder()
    recorder.expected = 23
    listeners.start([unique], recorder, batch=(10, 0.5))
    send = notifier(transport, unique)
    for n in range(23):
        send.info({}, "test.batch", {"n": n})
    assert recorder.done.wait(30), f"got {recorder.ids}"
    assert set(recorder.ids) == set(range(23))
    assert max(recorder.batches) <= 10
    # The last 3 can only have come through the batch timeout.
    assert recorder.batches[-1] < 10


def test_requeued_notification_is_delivered_again(transport, listeners, unique: str) -> None:
    recorder = Recorder(requeue_first=3)
    listeners.start([unique], recorder, allow_requeue=True)
    send = notifier(transport, unique)
    for n in range(5):
        send.info({}, "test.requeue", {"n": n})
    assert recorder.wait_for(5)
    assert set(recorder.ids()) == set(range(5))


def test_undecodable_record_is_skipped_and_the_listener_goes_on(brokers, transport, listeners,
                                                                unique: str) -> None:
    recorder = Recorder()
    listener = listeners.start([unique], recorder)
    send = notifier(transport, unique)
    send.info({}, "test.before", {"n": 0})
    assert recorder.wait_for(1)
    producer = KafkaProducer(**brokers.kafka_client_config())
    for garbage in (b"not json", b"\xff\xfe\x00binary", b'{"oslo.version": "2.0"}', b"[1]"):
        producer.send(f"{unique}.info", garbage, partition=0).get(timeout=10)
    producer.close()
    send.info({}, "test.after", {"n": 1})
    assert recorder.wait_for(2)
    assert {e for _, e, _ in recorder.received} == {"test.before", "test.after"}
    poll_listener = listener.listener._poll_style_listener
    deadline = time.monotonic() + 10
    while poll_listener.undecodable < 4 and time.monotonic() < deadline:
        recorder.wait_for(3, 0.05)
    assert poll_listener.undecodable == 4
    assert REGISTRY.get_sample_value("kafka_bridge_undecodable_records_total",
                                     {"topic": f"{unique}.info"}) == 4


def test_acknowledged_offsets_are_committed_so_a_new_member_resumes_after_them(
        transport, listeners, unique: str) -> None:
    first = Recorder()
    listener = listeners.start([unique], first, pool=unique)
    send = notifier(transport, unique)
    for n in range(20):
        send.info({}, "test.commit", {"n": n})
    assert first.wait_for(20)
    listener.stop()
    listener.wait()
    listeners.started.remove(listener)
    for n in range(20, 30):
        send.info({}, "test.commit", {"n": n})
    second = Recorder()
    listeners.start([unique], second, pool=unique)
    assert second.wait_for(10)
    counts = collections.Counter(second.ids())
    assert set(counts) == set(range(20, 30)), f"resumed at the wrong place: {sorted(counts)}"


def test_stop_and_cleanup_are_bounded_and_safe_twice(brokers, unique: str) -> None:
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=brokers.kafka_url)
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=unique)], [Recorder()], executor="threading")
    listener.start()
    began = time.monotonic()
    listener.stop()
    listener.wait()
    listener.stop()
    transport.cleanup()
    transport.cleanup()
    assert time.monotonic() - began < 15


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_notifications_round_trip(brokers, unique: str, codec: str) -> None:
    conf = cfg.ConfigOpts()
    conf([])
    url = f"{brokers.kafka_url}{'&' if '?' in brokers.kafka_url else '?'}compression_codec={codec}"
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    started = Listeners(transport)
    try:
        recorder = Recorder()
        started.start([unique], recorder)
        send = notifier(transport, unique)
        for n in range(20):
            send.info({}, "test.compressed", {"n": n, "text": "x" * 500})
        assert recorder.wait_for(20)
        assert set(recorder.ids()) == set(range(20))
    finally:
        started.stop_all()
        transport.cleanup()


def test_publisher_confirms_a_whole_batch_in_one_call(brokers, transport, unique: str) -> None:
    driver = transport._driver
    target = oslo_messaging.Target(topic=f"{unique}.info")
    records = [driver.notification_record(
        target, {}, {"event_type": "test.batch", "priority": "INFO", "publisher_id": "p",
                     "message_id": str(n), "payload": {"n": n}, "timestamp": "t"})
               for n in range(500)]
    outcomes = driver.publisher.publish(records, retry=0)
    assert outcomes == [None] * 500
    consumer = KafkaConsumer(f"{unique}.info", group_id=unique, auto_offset_reset="earliest",
                             consumer_timeout_ms=20000, **brokers.kafka_client_config())
    seen = set()
    try:
        for record in consumer:
            seen.add(record.value)
            if len(seen) == 500:
                break
    finally:
        consumer.close()
    assert seen == {r.value for r in records}


def test_a_new_member_is_assigned_its_partitions_in_one_rebalance(brokers, unique: str) -> None:
    # Joining before the topic's metadata reached the group coordinator made the
    # first assignment empty and a second rebalance follow, stalling delivery.
    from kafka_bridge_devenv.traffic import create_topic
    from kafka_bridge.kafka.consumer import Subscription
    from kafka_bridge.kafka.settings import KafkaSettings

    conf = cfg.ConfigOpts()
    conf([])
    settings = KafkaSettings.from_transport_url(
        conf, oslo_messaging.TransportURL.parse(conf, brokers.kafka_url))
    topic = f"{unique}.info"
    create_topic(brokers, topic)
    subscription = Subscription(settings, [topic], f"{unique}-group", start="earliest")
    assignments: list[set] = []
    assign = subscription.on_partitions_assigned
    subscription.on_partitions_assigned = lambda assigned: (  # type: ignore[method-assign]
        assignments.append(set(assigned)), assign(assigned))
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            subscription.fetch(0.2, 10)
    finally:
        subscription.close()
    assert [len(a) for a in assignments] == [3], assignments
