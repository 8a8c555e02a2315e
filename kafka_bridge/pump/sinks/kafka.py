"""Forward's sink: records published to Kafka through the shared Publisher.

The Kafka layer's ``Publisher`` (also the ``kafka-notify://`` driver's) does
the work; this sink gives the pump one attempt per call and owns the
publisher's life: opened at start so the first notifications do not wait
for it, closed (flushed) at stop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from kafka_bridge.errors import DeliveryFailure
from kafka_bridge.kafka.envelope import OutgoingRecord
from kafka_bridge.kafka.errors import KafkaBridgeError
from kafka_bridge.kafka.producer import Publisher
from kafka_bridge.kafka.settings import KafkaSettings

LOG = logging.getLogger(__name__)


class KafkaSink:
    """Delivers OutgoingRecords to Kafka: None per record the brokers confirmed."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._publisher = Publisher(settings)

    def connect(self) -> None:
        """Open the producer now; if Kafka refuses, the first attempt tries again."""
        try:
            self._publisher.connect()
        except KafkaBridgeError as exc:
            LOG.warning("forward: Kafka producer not connected yet: %s", exc)

    def attempt(self, records: Sequence[OutgoingRecord],
                cancel: threading.Event | None = None) -> Sequence[DeliveryFailure | None]:
        """One delivery attempt of every record (see Publisher.attempt)."""
        return self._publisher.attempt(records, cancel)

    def close(self) -> None:
        """Flush what was sent and release the connections; bounded."""
        self._publisher.close()
