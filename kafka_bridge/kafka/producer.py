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
from kafka_bridge.kafka.errors import (DeliveryError, KafkaBridgeError, RecordTooLargeError,
                                      translate)
from kafka_bridge.kafka.settings import KafkaSettings
from kafka_bridge.kafka.topics import TopicCreator

LOG = logging.getLogger(__name__)

MAX_BACKOFF = 5.0


def attempts_allowed(retry: int | None) -> float:
    """Delivery attempts oslo's retry argument allows: None or -1 mean forever."""
    if retry is None or retry < 0:
        return float("inf")
    return retry + 1


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

    def publish(self, records: Sequence[OutgoingRecord],
                retry: int | None = None) -> list[KafkaBridgeError | None]:
        """Send all records, wait for their confirmations; one outcome per record.

        An outcome is None once the brokers confirmed the record (acks as
        configured), else the error that ended its delivery. Retriable
        failures are sent again, as a group, with backoff, until ``retry`` (oslo
        semantics: None or -1 forever, 0 never, N times) is used up; errors
        that no retry can fix (too large, not authorized) end at once. Never
        returns before every record has an outcome.
        """
        outcomes: list[KafkaBridgeError | None] = [None] * len(records)
        pending = list(range(len(records)))
        allowed = attempts_allowed(retry)
        attempt = 0
        while pending:
            attempt += 1
            failed = self._attempt(records, pending, outcomes)
            if not failed:
                break
            if attempt >= allowed:
                for index in failed:
                    last = outcomes[index]
                    outcomes[index] = DeliveryError(
                        f"Kafka did not confirm the record for topic {records[index].topic} "
                        f"after {attempt} attempt(s): {last}")
                    outcomes[index].__cause__ = last
                break
            delay = min(MAX_BACKOFF, 0.2 * 2 ** (attempt - 1))
            LOG.warning("Kafka did not confirm %d record(s) (%s); attempt %d, retrying in %.1fs",
                        len(failed), outcomes[failed[0]], attempt, delay)
            time.sleep(delay)
            pending = failed
        return outcomes

    def _attempt(self, records: Sequence[OutgoingRecord], indexes: list[int],
                 outcomes: list[KafkaBridgeError | None]) -> list[int]:
        """One delivery attempt of records[indexes]; return the retriable failures."""
        secrets = self._settings.secret_values
        try:
            producer = self._get_producer()
            self._topics.ensure({records[i].topic for i in indexes})
        except KafkaBridgeError as exc:
            for index in indexes:
                outcomes[index] = exc
            return list(indexes) if exc.retriable else []
        futures = []
        for index in indexes:
            record = records[index]
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
        timeout = self._settings.delivery_timeout + 5
        for index, future in futures:
            try:
                future.get(timeout=timeout)
                outcomes[index] = None
            except Exception as exc:  # noqa: BLE001 - mapped right here
                outcomes[index] = translate(exc, f"delivering to {records[index].topic}",
                                            secrets)
        return [i for i in indexes
                if outcomes[i] is not None and outcomes[i].retriable]

    def flush(self, timeout: float) -> bool:
        """Wait up to timeout seconds for buffered records; True if all went out."""
        producer = self._producer
        if producer is None:
            return True
        try:
            producer.flush(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - flush failing is reported, not raised
            LOG.warning("Kafka producer flush did not finish: %s",
                        translate(exc, "flushing", self._settings.secret_values))
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Flush, then release connections; bounded by timeout. Safe to call twice."""
        with self._lock:
            producer, self._producer = self._producer, None
            self._closed = True
        if producer is not None:
            try:
                producer.close(timeout=timeout)
            except Exception as exc:  # noqa: BLE001
                LOG.warning("Kafka producer did not close cleanly: %s",
                            translate(exc, "closing", self._settings.secret_values))
        self._topics.close()

