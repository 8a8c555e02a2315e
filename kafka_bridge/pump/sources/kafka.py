"""Reverse's source: a consumer-group member handing Kafka records to the pump."""

from __future__ import annotations

import threading

from kafka_bridge.kafka.consumer import Subscription
from kafka_bridge.kafka.received import ReceivedRecord
from kafka_bridge.pump.protocols import BatchHandler

#: longest one fetch blocks, so stop() takes effect quickly
FETCH_WAIT = 0.2


class KafkaSource:
    """Fetches batches from a Subscription on its own thread.

    Offsets are committed only for acknowledged records; a requeued record
    is fetched again.
    """

    def __init__(self, subscription: Subscription, batch_size: int,
                 batch_timeout: float) -> None:
        self._subscription = subscription
        self._batch_size = batch_size
        self._batch_timeout = batch_timeout
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self, handler: BatchHandler[ReceivedRecord]) -> None:
        """Start fetching and handing batches to handler."""
        self._thread = threading.Thread(target=self._run, args=(handler,),
                                        name="kafka-bridge-reverse", daemon=True)
        self._thread.start()

    def _run(self, handler: BatchHandler[ReceivedRecord]) -> None:
        while not self._stopping.is_set():
            deliveries = self._subscription.fetch(FETCH_WAIT, self._batch_size)
            if deliveries and len(deliveries) < self._batch_size and self._batch_timeout:
                deliveries += self._subscription.fetch(self._batch_timeout,
                                                       self._batch_size - len(deliveries))
            if deliveries:
                handler([ReceivedRecord(self._subscription, d) for d in deliveries])

    def stop(self) -> None:
        """Stop fetching; the batch in hand is finished first."""
        self._stopping.set()
        self._subscription.stop()
        if self._thread is not None:
            self._thread.join()

    def cleanup(self) -> None:
        """Commit what was acknowledged and leave the group."""
        self._subscription.close()

    def lag(self) -> dict[tuple[str, int], int]:
        """Records per partition not yet taken, as last seen."""
        return self._subscription.lag()
