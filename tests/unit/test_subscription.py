"""Subscription's hand-out buffer and rebalance bookkeeping, over a fake consumer."""

from __future__ import annotations

import collections
from typing import Any

import oslo_messaging
import pytest
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import TopicPartition
from oslo_config import cfg

from kafka_bridge.kafka import consumer as consumer_mod
from kafka_bridge.kafka.settings import KafkaSettings

TP0 = TopicPartition("t", 0)
TP1 = TopicPartition("t", 1)


class FakeConsumer:
    """Serves pre-set records from poll(), as many as max_records allows."""

    def __init__(self, records: dict[TopicPartition, list[int]]) -> None:
        self.pending = {tp: collections.deque(offsets) for tp, offsets in records.items()}
        self.polls = 0
        self.seeks: dict[TopicPartition, int] = {}
        self.commits: list[dict[TopicPartition, int]] = []

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {tp.partition for tp in self.pending if tp.topic == topic}

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in partitions}

    def subscribe(self, topics: list[str], listener: Any) -> None:
        pass

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        self.polls += 1
        out: dict[TopicPartition, list[Any]] = {}
        for tp, offsets in self.pending.items():
            while offsets and sum(map(len, out.values())) < max_records:
                offset = offsets.popleft()
                out.setdefault(tp, []).append(ConsumerRecord(
                    tp.topic, tp.partition, -1, offset, 0, 0, None, b"v", [], None, 1, -1, -1))
        return out

    def highwater(self, tp: TopicPartition) -> int:
        return 100

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset

    def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})

    def close(self, **kwargs: Any) -> None:
        pass


class NoTopicCreation:
    def __init__(self, settings: KafkaSettings) -> None:
        pass

    def ensure(self, topics: list[str]) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def subscribe(monkeypatch: pytest.MonkeyPatch):
    conf = cfg.ConfigOpts()
    conf([], project="kafka-bridge-tests")
    settings = KafkaSettings.from_transport_url(
        conf, oslo_messaging.TransportURL.parse(conf, "kafka-notify://127.0.0.1:9/"))
    monkeypatch.setattr(consumer_mod, "TopicCreator", NoTopicCreation)

    def make(fake: FakeConsumer, query: str = "") -> consumer_mod.Subscription:
        monkeypatch.setattr(consumer_mod, "open_client", lambda *args: fake)
        chosen = settings if not query else KafkaSettings.from_transport_url(
            conf, oslo_messaging.TransportURL.parse(conf, f"kafka-notify://127.0.0.1:9/?{query}"))
        return consumer_mod.Subscription(chosen, ["t"], "group")
    return make


def test_one_poll_serves_many_single_record_fetches(subscribe) -> None:
    fake = FakeConsumer({TP0: list(range(10))})
    subscription = subscribe(fake)
    offsets = [subscription.fetch(1.0, 1)[0].offset for _ in range(10)]
    assert offsets == list(range(10))
    assert fake.polls == 1


def test_revoked_partition_loses_its_buffered_records_and_is_rewound(subscribe) -> None:
    fake = FakeConsumer({TP0: [0, 1, 2, 3], TP1: [0, 1, 2, 3]})
    subscription = subscribe(fake)
    first = subscription.fetch(1.0, 1)[0]
    assert (first.partition, first.offset) == (TP0, 0)
    subscription.acknowledge(first)
    subscription.on_partitions_revoked({TP0})
    subscription.on_partitions_assigned({TP0, TP1})
    # TP0's buffered records 1..3 belong to whoever owns TP0 now: fetched again from 1.
    assert fake.seeks == {TP0: 1}
    rest = subscription.fetch(1.0, 100)
    assert {(d.partition, d.offset) for d in rest} == {(TP1, o) for o in range(4)}


def test_requeued_records_come_before_buffered_ones(subscribe) -> None:
    fake = FakeConsumer({TP0: [0, 1, 2]})
    subscription = subscribe(fake)
    first = subscription.fetch(1.0, 1)[0]
    subscription.requeue(first)
    assert [d.offset for d in subscription.fetch(1.0, 10)] == [0, 1, 2]


def test_polls_wait_for_a_share_of_free_slots_instead_of_a_record_at_a_time(subscribe) -> None:
    # Each kafka-python poll is a round trip to its network thread: polling
    # whenever one acknowledgement freed one slot made a listener poll per record.
    fake = FakeConsumer({TP0: list(range(30))})
    subscription = subscribe(fake, "max_unacknowledged=10")
    handed = subscription.fetch(1.0, 10)
    assert [d.offset for d in handed] == list(range(10)) and fake.polls == 1
    subscription.acknowledge(handed[0])
    assert subscription.fetch(0.05, 1) == []
    assert fake.polls == 1  # one free slot: no poll
    for delivery in handed[1:5]:
        subscription.acknowledge(delivery)
    assert [d.offset for d in subscription.fetch(1.0, 10)] == [10, 11, 12, 13, 14]
    assert fake.polls == 2


def test_max_poll_records_bounds_what_one_poll_takes(subscribe) -> None:
    fake = FakeConsumer({TP0: list(range(10))})
    subscription = subscribe(fake, "max_poll_records=3")
    assert [d.offset for d in subscription.fetch(1.0, 100)] == [0, 1, 2]
    assert fake.polls == 1
