"""``kafka-notify://``: an oslo.messaging transport driver for notifications on Kafka.

Registered as ``kafka-notify`` in the ``oslo.messaging.drivers`` namespace.
Publishes with acks=all and idempotence, honours ``retry``, commits a
listener's offsets only after acknowledgement, and writes the same topics and
record values as oslo.messaging's ``kafka://`` driver. RPC is refused.
Loading it sets kafka-python's loggers to WARNING unless the service's
logging configuration set their level.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

import oslo_messaging
from oslo_config import cfg

from kafka_bridge.compat.oslo_messaging import BaseDriver, Listener, PollStyleListenerAdapter
from kafka_bridge.driver.listener import KafkaNotificationListener
from kafka_bridge.kafka import envelope, library_logs
from kafka_bridge.kafka.consumer import Subscription
from kafka_bridge.kafka.errors import ConfigurationError, KafkaBridgeError
from kafka_bridge.kafka.producer import Publisher
from kafka_bridge.kafka.settings import KafkaSettings

LOG = logging.getLogger(__name__)

RPC_REFUSED = ("kafka-notify:// carries notifications only; RPC is not supported. Keep a "
               "rabbit:// transport_url for RPC and point only [oslo_messaging_notifications] "
               "transport_url at kafka-notify://")

CLEANUP_TIMEOUT = 10.0


class KafkaNotifyDriver(BaseDriver):
    """oslo.messaging driver for notifications over Apache Kafka."""

    def __init__(self, conf: cfg.ConfigOpts, url: Any, default_exchange: str | None = None,
                 allowed_remote_exmods: list[str] | None = None) -> None:
        super().__init__(conf, url, default_exchange, allowed_remote_exmods)
        # Loaded by a service (Ceilometer, nova...) whose logging knows nothing of
        # kafka-python: its INFO lines would fill the service's log.
        library_logs.default_to_warning()
        try:
            self.settings = KafkaSettings.from_transport_url(conf, url)
        except ConfigurationError as exc:
            raise oslo_messaging.InvalidTransportURL(_redacted(url), str(exc)) from None
        self._publisher = Publisher(self.settings)
        self._listeners: list[KafkaNotificationListener] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<KafkaNotifyDriver {','.join(self.settings.bootstrap_servers)}>"

    def require_features(self, requeue: bool = False) -> None:
        """Requeue is supported: a requeued notification is delivered again."""

    @property
    def publisher(self) -> Publisher:
        """The Kafka publisher; callers may batch with publish() to share confirmations."""
        return self._publisher

    def notification_record(self, target: oslo_messaging.Target, ctxt: Any,
                            message: dict[str, Any]) -> envelope.OutgoingRecord:
        """The record send_notification publishes for a notification.

        Raises ValueError naming the problem if the notification is not
        JSON-serializable.
        """
        return envelope.OutgoingRecord(
            topic=envelope.kafka_topic(target.topic, None, self.settings.virtual_host),
            value=envelope.encode(ctxt, message),
            key=envelope.record_key(message, self.settings.record_key_path),
            headers=envelope.headers_for(message))

    def send_notification(self, target: oslo_messaging.Target, ctxt: Any,
                          message: dict[str, Any], version: str,
                          retry: int | None = None) -> None:
        """Publish one notification and wait until Kafka confirmed it.

        target.topic is ``<topic>.<priority>`` (oslo's notifier sets it). Raises
        MessageDeliveryFailure once ``retry`` is used up (None or -1: never
        gives up on retriable errors; 0: one attempt; N: N more), or at once
        for errors no retry fixes (record too large, credentials refused).
        """
        try:
            record = self.notification_record(target, ctxt, message)
        except ValueError as exc:
            raise oslo_messaging.MessageDeliveryFailure(
                f"cannot send notification {message.get('event_type')!r}: {exc}") from exc
        outcome = self._publisher.publish([record], retry=retry)[0]
        if outcome is not None:
            raise oslo_messaging.MessageDeliveryFailure(str(outcome)) from outcome

    def listen_for_notifications(self, targets_and_priorities: list[tuple[Any, str]],
                                 pool: str | None, batch_size: int,
                                 batch_timeout: float | None) -> Listener:
        """A listener on the Kafka topics of targets_and_priorities.

        ``pool`` is the consumer group; without one the group is derived from
        the topics. Returns once the listener is subscribed: every notification
        published after that is delivered, even if the group assignment
        completes later. Raises MessageDeliveryFailure naming the cause if
        Kafka cannot be reached or refuses the credentials.
        """
        topics = sorted({envelope.kafka_topic(target.topic, priority, self.settings.virtual_host)
                         for target, priority in targets_and_priorities})
        group = pool or derived_group(self.settings.consumer_group_prefix, topics)
        try:
            subscription = Subscription(self.settings, topics, group)
        except KafkaBridgeError as exc:
            raise oslo_messaging.MessageDeliveryFailure(
                f"cannot listen on {', '.join(topics)}: {exc}") from exc
        listener = KafkaNotificationListener(subscription)
        with self._lock:
            self._listeners.append(listener)
        return PollStyleListenerAdapter(listener, batch_size, batch_timeout)

    def send(self, *args: Any, **kwargs: Any) -> None:
        """RPC: refused with NotImplementedError."""
        raise NotImplementedError(RPC_REFUSED)

    def listen(self, *args: Any, **kwargs: Any) -> None:
        """RPC: refused with NotImplementedError."""
        raise NotImplementedError(RPC_REFUSED)

    def cleanup(self) -> None:
        """Flush pending records and close every client, within a bounded time.

        Safe to call twice.
        """
        with self._lock:
            listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.stop()
            listener.cleanup()
        self._publisher.close(timeout=CLEANUP_TIMEOUT)


def derived_group(prefix: str, topics: list[str]) -> str:
    """The consumer group of a pool-less listener: one per set of topics."""
    joined = ",".join(sorted(topics))
    if len(joined) > 150:
        joined = hashlib.sha256(joined.encode()).hexdigest()[:32]
    return f"{prefix}:{joined}"


def _redacted(url: Any) -> str:
    hosts = ",".join(f"{h.hostname}:{h.port}" for h in (getattr(url, "hosts", None) or []))
    return f"{getattr(url, 'transport', 'kafka-notify')}://{hosts}/"
