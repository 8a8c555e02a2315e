"""Publishing records to Kafka and waiting for the brokers' confirmation.

One ``Publisher`` per process is enough: kafka-python's producer is
thread-safe and batches records from all callers.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.version import __version__ as KAFKA_PYTHON_VERSION

from kafka_bridge.deadline import Deadline
from kafka_bridge.errors import DeliveryFailure, is_retriable
from kafka_bridge.kafka import settings as settings_mod
from kafka_bridge.kafka.connectivity import open_client
from kafka_bridge.kafka.envelope import OutgoingRecord
from kafka_bridge.kafka.errors import (DeliveryError, KafkaBridgeError, KafkaUnavailableError,
                                       RecordTooLargeError, translate)
from kafka_bridge.kafka.settings import KafkaSettings
from kafka_bridge.kafka.topics import TopicCreator
from kafka_bridge.retry import deliver

LOG = logging.getLogger(__name__)

#: how often a wait for confirmations checks for cancellation
WAIT_SLICE = 0.25


def release(version: str) -> tuple[int, ...]:
    """(major, minor, patch) of a version string such as "3.0.12" or "3.0.12.dev1"."""
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


#: Whether this kafka-python's producer can stay wedged after Kafka comes back
#: from an outage: its metadata refresh keeps finding no node ("No node
#: available for metadata refresh - backoff/retry", kafka/cluster.py) and no
#: record is sent again. Measured on 3.0.12 with
#: tests/functional/test_daemon.py::test_kafka_outage_of_20s_loses_nothing_without_requeue_storm:
#: without a fresh producer the bridge was still not ready 60 s after Kafka
#: was back. The 3.0 series shares the code involved (kafka/net/manager.py
#: least_loaded_node is unchanged from 3.0.0 to 3.0.12); no upstream issue or
#: fixed release is known. Releases after the 3.0 series are outside
#: setup.cfg's range; whoever widens it re-runs that test without the workaround.
PRODUCER_CAN_WEDGE_AFTER_OUTAGE = release(KAFKA_PYTHON_VERSION) < (3, 1)


class Publisher:
    """Sends records and reports, per record, whether Kafka confirmed it.

    Thread-safe. Records to topics that do not exist are preceded by their
    creation.
    """

    def __init__(self, settings: KafkaSettings,
                 producer_factory: Callable[[], KafkaProducer] | None = None,
                 topics: TopicCreator | None = None) -> None:
        """producer_factory and topics replace the real ones in tests."""
        self._settings = settings
        self._new_producer = producer_factory or functools.partial(
            open_client, KafkaProducer, settings_mod.producer_config(settings), settings,
            "connecting the Kafka producer")
        self._topics = topics or TopicCreator(settings)
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _get_producer(self) -> KafkaProducer:
        with self._lock:
            if self._closed:
                raise DeliveryError("the publisher was closed")
            if self._producer is None:
                self._producer = self._new_producer()
            return self._producer

    def connect(self) -> None:
        """Open the producer now rather than with the first record, so that
        the first notifications do not wait for it. Raises KafkaBridgeError."""
        self._get_producer()

    def publish(self, records: Sequence[OutgoingRecord], retry: int | None = None,
                cancel: threading.Event | None = None) -> list[DeliveryFailure | None]:
        """Send all records, wait for their confirmations; one outcome per record.

        An outcome is None once the brokers confirmed the record (acks as
        configured), else the error that ended its delivery. Retriable
        failures are sent again, as a group, with backoff, until ``retry`` (oslo
        semantics: None or -1 forever, 0 never, N times) is used up or
        ``cancel`` is set; errors that no retry can fix (too large, not
        authorized) end at once. Never returns before every record has an
        outcome.
        """
        def log_retry(attempt: int, failing: int, error: DeliveryFailure, delay: float) -> None:
            LOG.warning("Kafka did not confirm %d record(s) (%s); attempt %d, retrying in %.1fs",
                        failing, error, attempt, delay)

        outcomes, attempts = deliver(records, lambda batch: self.attempt(batch, cancel), retry,
                                     cancel, log_retry)
        result: list[DeliveryFailure | None] = []
        for record, outcome in zip(records, outcomes):
            if is_retriable(outcome):
                failure = DeliveryError(f"Kafka did not confirm the record for topic "
                                        f"{record.topic} after {attempts} attempt(s): {outcome}")
                failure.__cause__ = outcome
                outcome = failure
            result.append(outcome)
        return result

    def attempt(self, records: Sequence[OutgoingRecord],
                cancel: threading.Event | None = None) -> list[KafkaBridgeError | None]:
        """One delivery attempt of every record: None where Kafka confirmed it.

        Errors carry ``retriable``; nothing is retried here. Waits at most
        delivery_timeout (plus a margin), and stops waiting once cancel is set.
        """
        try:
            producer = self._get_producer()
            self._topics.ensure({record.topic for record in records})
        except KafkaBridgeError as exc:
            return [exc] * len(records)
        outcomes: list[KafkaBridgeError | None] = [self._oversized(r) for r in records]
        sent = self._send(producer, records, outcomes)
        self._await(sent, records, outcomes, cancel)
        if PRODUCER_CAN_WEDGE_AFTER_OUTAGE and sent and all(
                is_retriable(outcomes[index]) for index, _ in sent):
            # Nothing got through: the producer may be wedged (see
            # PRODUCER_CAN_WEDGE_AFTER_OUTAGE), so the next attempt starts
            # with a fresh one.
            self._discard_producer(producer)
        return outcomes

    def _oversized(self, record: OutgoingRecord) -> RecordTooLargeError | None:
        """Refuse a record the producer would refuse, with a message that says what to do."""
        size = len(record.value) + len(record.key or b"")
        for name, value in record.headers:  # a loop: this runs for every record
            size += len(name) + len(value)
        if size <= self._settings.max_request_size:
            return None
        return RecordTooLargeError(
            f"record for topic {record.topic} is {size} bytes, over max_request_size "
            f"{self._settings.max_request_size}; raise max_request_size (and the "
            f"topic's max.message.bytes) or send smaller notifications")

    def _send(self, producer: KafkaProducer, records: Sequence[OutgoingRecord],
              outcomes: list[KafkaBridgeError | None]) -> list[tuple[int, Any]]:
        """Hand every record without an outcome yet to the producer: (index, future)s.

        A record the producer refuses at once gets its outcome here.
        """
        sent = []
        for index, record in enumerate(records):
            if outcomes[index] is not None:
                continue
            try:
                sent.append((index, producer.send(record.topic, value=record.value,
                                                  key=record.key, headers=list(record.headers))))
            except Exception as exc:  # noqa: BLE001 - mapped right here
                outcomes[index] = translate(exc, f"sending to {record.topic}",
                                            self._settings.secret_values)
        return sent

    def _await(self, sent: list[tuple[int, Any]], records: Sequence[OutgoingRecord],
               outcomes: list[KafkaBridgeError | None], cancel: threading.Event | None) -> None:
        """Read each future's outcome; unconfirmed at the deadline or at cancel is retriable."""
        deadline = Deadline(self._settings.delivery_timeout + 5)
        for index, future in sent:
            while not future.is_done and not deadline.over(cancel):
                try:
                    future.get(timeout=deadline.slice(WAIT_SLICE))
                except Exception:  # noqa: BLE001 - outcome read from the future below
                    pass
            topic = records[index].topic
            if not future.is_done:
                # The record may still arrive; unconfirmed, it is sent again
                # later (at-least-once).
                outcomes[index] = KafkaUnavailableError(
                    f"no confirmation from Kafka for {topic} "
                    f"{'in time' if deadline.passed() else 'before shutdown'}")
            elif future.exception is not None:
                outcomes[index] = translate(future.exception, f"delivering to {topic}",
                                            self._settings.secret_values)

    def _discard_producer(self, producer: KafkaProducer) -> None:
        with self._lock:
            if self._producer is producer:
                self._producer = None
        threading.Thread(target=self._close_quietly, args=(producer, 0.0),
                         name="kafka-bridge-discard-producer", daemon=True).start()

    def _close_quietly(self, producer: KafkaProducer, timeout: float) -> None:
        try:
            producer.close(timeout=timeout)
        except Exception as exc:  # noqa: BLE001
            LOG.warning("Kafka producer did not close cleanly: %s",
                        translate(exc, "closing", self._settings.secret_values))

    def close(self, timeout: float = 10.0) -> None:
        """Flush, then release connections; bounded by timeout. Safe to call twice."""
        with self._lock:
            producer, self._producer = self._producer, None
            self._closed = True
        if producer is not None:
            self._close_quietly(producer, timeout)
        self._topics.close()
