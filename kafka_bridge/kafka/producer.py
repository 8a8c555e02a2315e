"""Publishing records to Kafka and waiting for the brokers' confirmation.

One ``Publisher`` per process is enough: kafka-python's producer is
thread-safe and batches records from all callers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from kafka import KafkaProducer

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


class Publisher:
    """Sends records and reports, per record, whether Kafka confirmed it.

    Thread-safe. Records to topics that do not exist are preceded by their
    creation.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._topics = TopicCreator(settings)
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _get_producer(self) -> KafkaProducer:
        with self._lock:
            if self._closed:
                raise DeliveryError("the publisher was closed")
            if self._producer is None:
                self._producer = open_client(KafkaProducer,
                                             settings_mod.producer_config(self._settings),
                                             self._settings, "connecting the Kafka producer")
            return self._producer

    def connect(self) -> None:
        """Open the producer now rather than with the first record, so that
        the first notifications do not wait for it. Raises KafkaBridgeError."""
        self._get_producer()

    def publish(self, records: Sequence[OutgoingRecord], retry: int | None = None,
                cancel: threading.Event | None = None) -> list[KafkaBridgeError | None]:
        """Send all records, wait for their confirmations; one outcome per record.

        An outcome is None once the brokers confirmed the record (acks as
        configured), else the error that ended its delivery. Retriable
        failures are sent again, as a group, with backoff, until ``retry`` (oslo
        semantics: None or -1 forever, 0 never, N times) is used up or
        ``cancel`` is set; errors that no retry can fix (too large, not
        authorized) end at once. Never returns before every record has an
        outcome.
        """
        def log_retry(attempt: int, failing: int, error: BaseException, delay: float) -> None:
            LOG.warning("Kafka did not confirm %d record(s) (%s); attempt %d, retrying in %.1fs",
                        failing, error, attempt, delay)

        outcomes, attempts = deliver(records, lambda batch: self.attempt(batch, cancel), retry,
                                     cancel, log_retry)
        result: list[KafkaBridgeError | None] = []
        for record, outcome in zip(records, outcomes):
            if outcome is not None and getattr(outcome, "retriable", False):
                failure = DeliveryError(f"Kafka did not confirm the record for topic "
                                        f"{record.topic} after {attempts} attempt(s): {outcome}")
                failure.__cause__ = outcome
                outcome = failure
            result.append(outcome)  # type: ignore[arg-type]
        return result

    def attempt(self, records: Sequence[OutgoingRecord],
                cancel: threading.Event | None = None) -> list[KafkaBridgeError | None]:
        """One delivery attempt of every record: None where Kafka confirmed it.

        Errors carry ``retriable``; nothing is retried here. Waits at most
        delivery_timeout (plus a margin), and stops waiting once cancel is set.
        """
        secrets = self._settings.secret_values
        outcomes: list[KafkaBridgeError | None] = [None] * len(records)
        try:
            producer = self._get_producer()
            self._topics.ensure({record.topic for record in records})
        except KafkaBridgeError as exc:
            return [exc] * len(records)
        futures = []
        for index, record in enumerate(records):
            size = len(record.value) + len(record.key or b"") + sum(
                len(k) + len(v) for k, v in record.headers)
            if size > self._settings.max_request_size:
                outcomes[index] = RecordTooLargeError(
                    f"record for topic {record.topic} is {size} bytes, over max_request_size "
                    f"{self._settings.max_request_size}; raise max_request_size (and the "
                    f"topic's max.message.bytes) or send smaller notifications")
                continue
            try:
                futures.append((index, producer.send(record.topic, value=record.value,
                                                     key=record.key,
                                                     headers=list(record.headers))))
            except Exception as exc:  # noqa: BLE001 - mapped right here
                outcomes[index] = translate(exc, f"sending to {record.topic}", secrets)
        deadline = time.monotonic() + self._settings.delivery_timeout + 5
        for index, future in futures:
            while not future.is_done:
                left = deadline - time.monotonic()
                if left <= 0 or (cancel is not None and cancel.is_set()):
                    # The record may still arrive; unconfirmed, it is sent
                    # again later (at-least-once).
                    outcomes[index] = KafkaUnavailableError(
                        f"no confirmation from Kafka for {records[index].topic} "
                        f"{'before shutdown' if left > 0 else 'in time'}")
                    break
                try:
                    future.get(timeout=min(WAIT_SLICE, left))
                except Exception:  # noqa: BLE001 - outcome read from the future below
                    pass
            if future.is_done and future.exception is not None:
                outcomes[index] = translate(future.exception,
                                            f"delivering to {records[index].topic}", secrets)
        if futures and all(outcomes[i] is not None and outcomes[i].retriable  # type: ignore
                           for i, _ in futures):
            # Nothing got through. kafka-python 3.0.12's producer can stay
            # wedged after a broker restart (its metadata refresh stops), so
            # the next attempt starts with a fresh one.
            self._discard_producer(producer)
        return outcomes

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
