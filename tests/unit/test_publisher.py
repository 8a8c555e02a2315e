"""Publisher.attempt, the forward sink's core: one outcome per record, never a false confirm.

kafka-python's producer is replaced by a fake whose futures the test settles.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import kafka.errors as kafka_errors
import pytest

from kafka_bridge.kafka import producer as producer_mod
from kafka_bridge.kafka.envelope import OutgoingRecord
from kafka_bridge.kafka.errors import (AuthorizationError, KafkaUnavailableError,
                                       RecordTooLargeError, TopicError)
from kafka_bridge.kafka.producer import Publisher
from kafka_bridge.kafka.settings import KafkaSettings

JOIN = 5.0  # upper bound for a call that must return promptly; never used as synchronisation


class FakeFuture:
    """A kafka-python FutureRecordMetadata the test settles (or never does)."""

    def __init__(self, outcome: BaseException | None | str) -> None:
        self.is_done = outcome != "pending"
        self.exception = outcome if isinstance(outcome, BaseException) else None
        self.waits = 0

    def get(self, timeout: float | None = None) -> None:
        self.waits += 1
        if self.exception is not None:
            raise self.exception
        if not self.is_done:
            time.sleep(min(timeout or 0.0, 0.01))  # what a real get() does: wait a slice


class FakeProducer:
    """Settles each send by the record value: b"ok", b"pending", or an exception to raise."""

    def __init__(self, outcomes: dict[bytes, Any]) -> None:
        self.outcomes = outcomes
        self.sent: list[tuple[str, bytes]] = []
        self.closed = False

    def send(self, topic: str, value: bytes, key: bytes | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> FakeFuture:
        outcome = self.outcomes.get(value)
        if isinstance(outcome, tuple):  # ("raise", exc): send itself raises
            raise outcome[1]
        self.sent.append((topic, value))
        return FakeFuture(None if outcome in (None, "ok") else outcome)

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


class FakeTopics:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.ensured: list[set[str]] = []

    def ensure(self, topics: set[str]) -> None:
        self.ensured.append(set(topics))
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        pass


def publisher(outcomes: dict[bytes, Any] | None = None, topics: FakeTopics | None = None,
              **values: Any) -> tuple[Publisher, list[FakeProducer]]:
    made: list[FakeProducer] = []

    def factory() -> FakeProducer:
        made.append(FakeProducer(outcomes or {}))
        return made[-1]

    settings = KafkaSettings.create(["h:1"], None, values)
    return Publisher(settings, factory, topics or FakeTopics()), made  # type: ignore[arg-type]


def short_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Confirmations are awaited 50 ms instead of delivery_timeout + 5 s."""
    real = producer_mod.Deadline
    monkeypatch.setattr(producer_mod, "Deadline", lambda seconds: real(0.05))


def record(value: bytes, topic: str = "t") -> OutgoingRecord:
    return OutgoingRecord(topic=topic, value=value)


def test_every_confirmed_record_is_none_and_topics_are_ensured_first() -> None:
    topics = FakeTopics()
    pub, made = publisher(topics=topics)
    assert pub.attempt([record(b"a", "t1"), record(b"b", "t2")]) == [None, None]
    assert topics.ensured == [{"t1", "t2"}]
    assert made[0].sent == [("t1", b"a"), ("t2", b"b")]


def test_partial_failure_gives_each_record_its_own_outcome() -> None:
    pub, _ = publisher({b"leader": kafka_errors.NotLeaderForPartitionError(),
                        b"big": kafka_errors.MessageSizeTooLargeError(),
                        b"acl": kafka_errors.TopicAuthorizationFailedError()})
    ok, leader, big, acl = pub.attempt(
        [record(b"ok"), record(b"leader"), record(b"big"), record(b"acl")])
    assert ok is None
    assert isinstance(leader, KafkaUnavailableError) and leader.retriable
    assert isinstance(big, RecordTooLargeError) and not big.retriable
    assert isinstance(acl, AuthorizationError) and not acl.retriable


def test_a_record_over_max_request_size_is_refused_without_being_sent() -> None:
    pub, made = publisher(max_request_size=1024)
    small, large = pub.attempt([record(b"x"), record(b"y" * 2000)])
    assert small is None
    assert isinstance(large, RecordTooLargeError) and not large.retriable
    assert "max_request_size" in str(large) and "2000" in str(large)
    assert made[0].sent == [("t", b"x")]


def test_send_raising_is_translated_for_that_record_only() -> None:
    pub, _ = publisher({b"bad": ("raise", kafka_errors.KafkaTimeoutError())})
    good, bad = pub.attempt([record(b"good"), record(b"bad")])
    assert good is None
    assert isinstance(bad, KafkaUnavailableError) and bad.retriable


def test_unconfirmed_at_the_deadline_is_retriable_never_confirmed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    short_deadline(monkeypatch)
    pub, _ = publisher({b"pending": "pending"})
    confirmed, pending = pub.attempt([record(b"ok"), record(b"pending")])
    assert confirmed is None
    assert isinstance(pending, KafkaUnavailableError) and pending.retriable
    assert "in time" in str(pending)


def test_cancel_stops_waiting_promptly_and_leaves_the_record_unconfirmed() -> None:
    pub, _ = publisher({b"pending": "pending"})
    cancel = threading.Event()
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(
        pub.attempt([record(b"pending")], cancel)))
    worker.start()
    cancel.set()
    worker.join(JOIN)
    assert not worker.is_alive(), "attempt kept waiting after cancel was set"
    (outcome,) = result[0]
    assert isinstance(outcome, KafkaUnavailableError) and outcome.retriable
    assert "before shutdown" in str(outcome)


def test_when_nothing_got_through_the_next_attempt_uses_a_fresh_producer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(producer_mod, "PRODUCER_CAN_WEDGE_AFTER_OUTAGE", True)
    short_deadline(monkeypatch)
    pub, made = publisher({b"pending": "pending"})
    pub.attempt([record(b"pending")])
    pub.attempt([record(b"ok")])
    assert len(made) == 2, "a wedged producer was kept"


def test_a_kafka_python_that_does_not_wedge_keeps_its_producer_after_a_failed_attempt(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(producer_mod, "PRODUCER_CAN_WEDGE_AFTER_OUTAGE", False)
    short_deadline(monkeypatch)
    pub, made = publisher({b"pending": "pending"})
    pub.attempt([record(b"pending")])
    pub.attempt([record(b"ok")])
    assert len(made) == 1, "the producer was replaced although this kafka-python does not wedge"
    assert not made[0].closed


def test_the_workaround_applies_to_kafka_pythons_3_0_series() -> None:
    assert producer_mod.release("3.0.12") < (3, 1)
    assert producer_mod.release("3.0.12.dev1") == (3, 0, 12)
    assert producer_mod.release("3.1.0") >= (3, 1)


def test_a_partly_confirmed_attempt_keeps_its_producer() -> None:
    pub, made = publisher({b"leader": kafka_errors.NotLeaderForPartitionError()})
    pub.attempt([record(b"ok"), record(b"leader")])
    pub.attempt([record(b"ok")])
    assert len(made) == 1


def test_topic_creation_failure_fails_every_record_with_its_reason() -> None:
    pub, made = publisher(topics=FakeTopics(TopicError("cannot create topic 't'")))
    outcomes = pub.attempt([record(b"a"), record(b"b")])
    assert all(isinstance(o, TopicError) and not o.retriable for o in outcomes)
    assert made[0].sent == []


def test_publish_retries_retriable_failures_until_confirmed() -> None:
    outcomes = {b"flaky": kafka_errors.NotLeaderForPartitionError()}
    pub, made = publisher(outcomes)

    def heal(*_: Any) -> None:
        outcomes.pop(b"flaky", None)

    pub_attempt = pub.attempt

    def attempt_then_heal(records: Any, cancel: Any = None) -> Any:
        try:
            return pub_attempt(records, cancel)
        finally:
            heal()

    pub.attempt = attempt_then_heal  # type: ignore[method-assign]
    assert pub.publish([record(b"flaky")], retry=3) == [None]
    assert [value for producer in made for _, value in producer.sent] == [b"flaky", b"flaky"]


def test_close_flushes_the_producer_and_later_attempts_fail_for_good() -> None:
    pub, made = publisher()
    pub.attempt([record(b"a")])
    pub.close()
    assert made[0].closed
    (outcome,) = pub.attempt([record(b"b")])
    assert outcome is not None and not outcome.retriable
