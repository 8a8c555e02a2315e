"""A record handed out by a Subscription, as something to acknowledge or requeue.

Shared by the daemon's reverse source (a pump ``SourceMessage``) and the
``kafka-notify://`` listener (inside oslo's ``IncomingMessage``).
"""

from __future__ import annotations

from kafka_bridge.kafka.consumer import Delivery, Subscription


class ReceivedRecord:
    """A record read from Kafka; ack lets its offset be committed, nack reads it again."""

    __slots__ = ("subscription", "delivery", "created")

    def __init__(self, subscription: Subscription, delivery: Delivery) -> None:
        self.subscription = subscription
        self.delivery = delivery
        #: the record's timestamp (epoch seconds), None if the producer set none
        self.created = delivery.timestamp_ms / 1000 if delivery.timestamp_ms > 0 else None

    def ack(self) -> None:
        """Done with it: its offset may be committed (asynchronously)."""
        self.subscription.acknowledge(self.delivery)

    def nack(self) -> None:
        """Deliver it again; its offset stays uncommitted."""
        self.subscription.requeue(self.delivery)
