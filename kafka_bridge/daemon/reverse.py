"""Reverse mode: Kafka topics republished as notifications on the local transport."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

import oslo_messaging

from kafka_bridge.daemon import mapping
from kafka_bridge.kafka import envelope
from kafka_bridge.kafka.consumer import Delivery, Subscription
from kafka_bridge.pump import BatchHandler, Poison, Skip

LOG = logging.getLogger(__name__)

FETCH_WAIT = 0.2


class KafkaMessage:
    """A record read from Kafka; ack lets its offset be committed."""

    def __init__(self, subscription: Subscription, delivery: Delivery) -> None:
        self.subscription = subscription
        self.delivery = delivery
        self.created = delivery.timestamp_ms / 1000 if delivery.timestamp_ms > 0 else None

    def ack(self) -> None:
        self.subscription.acknowledge(self.delivery)

    def nack(self) -> None:
        self.subscription.requeue(self.delivery)


class KafkaSource:
    """A consumer-group member handing batches to the pump from its own thread."""

    def __init__(self, subscription: Subscription, batch_size: int,
                 batch_timeout: float) -> None:
        self._subscription = subscription
        self._batch_size = batch_size
        self._batch_timeout = batch_timeout
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self, handler: BatchHandler) -> None:
        self._thread = threading.Thread(target=self._run, args=(handler,),
                                        name="kafka-bridge-reverse", daemon=True)
        self._thread.start()

    def _run(self, handler: BatchHandler) -> None:
        while not self._stopping.is_set():
            deliveries = self._subscription.fetch(FETCH_WAIT, self._batch_size)
            if deliveries and len(deliveries) < self._batch_size and self._batch_timeout:
                deliveries += self._subscription.fetch(self._batch_timeout,
                                                       self._batch_size - len(deliveries))
            if deliveries:
                handler([KafkaMessage(self._subscription, d) for d in deliveries])

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


@dataclasses.dataclass(frozen=True)
class LocalNotification:
    """What reverse mode republishes."""

    target: oslo_messaging.Target
    ctxt: dict[str, Any]
    message: dict[str, Any]


class ReverseRoute:
    """Maps a Kafka record to a local notification."""

    def __init__(self, exchange: str | None) -> None:
        self._exchange = exchange

    def record_for(self, message: KafkaMessage) -> LocalNotification:
        delivery = message.delivery
        if dict(delivery.headers).get(mapping.ORIGIN_KEY) == mapping.ORIGIN_LOCAL.encode():
            raise Skip("loop_suppressed")
        try:
            ctxt, body = envelope.decode(delivery.value)
        except envelope.UndecodableRecord as exc:
            raise Poison(str(exc)) from None
        topic, priority = mapping.split_routing_key(delivery.partition.topic)
        priority = priority or str(body.get("priority") or "info").lower()
        ctxt = dict(ctxt, **{mapping.ORIGIN_KEY: mapping.ORIGIN_KAFKA})
        return LocalNotification(
            target=oslo_messaging.Target(exchange=self._exchange, topic=f"{topic}.{priority}"),
            ctxt=ctxt, message=body)

    def dead_letter(self, message: KafkaMessage, reason: str) -> None:
        delivery = message.delivery
        LOG.error("reverse: skipping record %s[%d]@%d: %s", delivery.partition.topic,
                  delivery.partition.partition, delivery.offset, reason)
