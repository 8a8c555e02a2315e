"""The listening half of ``kafka-notify://``: records in, oslo IncomingMessages out."""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import Counter

from kafka_bridge.compat.oslo_messaging import IncomingMessage, PollStyleListener
from kafka_bridge.deadline import Deadline
from kafka_bridge.kafka import envelope
from kafka_bridge.kafka.consumer import Subscription
from kafka_bridge.kafka.received import ReceivedRecord

LOG = logging.getLogger(__name__)

#: in prometheus_client's default registry, for services that export it
UNDECODABLE = Counter("kafka_bridge_undecodable_records",
                      "Kafka records a kafka-notify:// listener skipped because they are not "
                      "oslo notifications.", ["topic"])


class KafkaIncomingNotification(IncomingMessage):
    """A notification read from Kafka; its offset is committed once acknowledged."""

    def __init__(self, record: ReceivedRecord, ctxt: dict[str, Any],
                 message: dict[str, Any]) -> None:
        super().__init__(ctxt, message, msg_id=message.get("message_id"))
        self._record = record

    def acknowledge(self) -> None:
        """Let the offset be committed (asynchronously, every commit_interval)."""
        self._record.ack()

    def requeue(self) -> None:
        """Deliver the notification again; its offset stays uncommitted."""
        self._record.nack()


class KafkaNotificationListener(PollStyleListener):
    """Polls a Subscription for oslo's listener thread.

    Records that are not notifications are logged, counted in
    ``undecodable`` and acknowledged, so one bad record never stops a topic.
    """

    def __init__(self, subscription: Subscription) -> None:
        super().__init__(prefetch_size=-1)
        self._subscription = subscription
        self._stop_lock = threading.Lock()
        self._cleaned = False
        self.undecodable = 0

    def poll(self, timeout: float | None = None, batch_size: int = 1,
             batch_timeout: float | None = None) -> list[IncomingMessage]:
        """Up to batch_size notifications.

        Blocks until one arrives (at most timeout seconds; None: until stop()),
        then, for batches, until batch_size arrived or batch_timeout passed
        since the first. Never raises.
        """
        incoming = self._fetch(timeout, batch_size)
        if incoming and len(incoming) < batch_size and batch_timeout:
            deadline = Deadline(batch_timeout)
            while len(incoming) < batch_size and not deadline.passed():
                incoming += self._fetch(deadline.left(), batch_size - len(incoming))
        return incoming

    def _fetch(self, timeout: float | None, count: int) -> list[IncomingMessage]:
        out: list[IncomingMessage] = []
        deadline = Deadline(timeout)
        while not out:
            deliveries = self._subscription.fetch(deadline.left(), count)
            if not deliveries:
                return out
            for delivery in deliveries:
                try:
                    ctxt, message = envelope.decode(delivery.value)
                except envelope.UndecodableRecord as exc:
                    self.undecodable += 1
                    UNDECODABLE.labels(delivery.partition.topic).inc()
                    LOG.warning("skipping undecodable record %s[%d]@%d: %s",
                                delivery.partition.topic, delivery.partition.partition,
                                delivery.offset, exc)
                    self._subscription.acknowledge(delivery)
                    continue
                out.append(KafkaIncomingNotification(
                    ReceivedRecord(self._subscription, delivery), ctxt, message))
            if deadline.passed():
                break
        return out

    def stop(self) -> None:
        """Make poll() return promptly. Thread-safe, idempotent."""
        self._subscription.stop()

    def cleanup(self) -> None:
        """Commit what was acknowledged and leave the group; bounded, idempotent."""
        with self._stop_lock:
            if self._cleaned:
                return
            self._cleaned = True
        self._subscription.close()
