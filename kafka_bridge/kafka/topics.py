"""Creating missing topics, so kafka-bridge works where auto-creation is off."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from kafka.admin import KafkaAdminClient

from kafka_bridge.kafka import settings as settings_mod
from kafka_bridge.kafka.connectivity import open_client
from kafka_bridge.kafka.errors import TopicError, kafka_errors_mapped
from kafka_bridge.kafka.settings import KafkaSettings

LOG = logging.getLogger(__name__)


class TopicCreator:
    """Creates topics on first use with the configured partitions and replicas.

    Thread-safe. Remembers what exists so each topic costs one admin round
    trip per process at most.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self._admin: KafkaAdminClient | None = None

    def ensure(self, topics: Iterable[str]) -> None:
        """Make sure every topic exists; create the missing ones.

        Raises TopicError (or another KafkaBridgeError) saying why a topic
        cannot be created.
        """
        wanted = set(topics) - self._known
        if not wanted:
            return
        with self._lock, kafka_errors_mapped("creating Kafka topics",
                                             self._settings.secret_values):
            wanted -= self._known
            if not wanted:
                return
            if self._admin is None:
                self._admin = open_client(KafkaAdminClient,
                                          settings_mod.admin_config(self._settings),
                                          self._settings, "connecting the Kafka admin client")
            existing = set(self._admin.list_topics())
            missing = sorted(wanted - existing)
            if missing:
                self._create(missing)
            self._known |= wanted

    def _create(self, names: list[str]) -> None:
        assert self._admin is not None
        spec = {"num_partitions": self._settings.topic_partitions,
                "replication_factor": self._settings.topic_replication_factor}
        response = self._admin.create_topics({name: dict(spec) for name in names},
                                             raise_errors=False)
        for topic in response.get("topics", []):
            code, message = topic.get("error_code", 0), topic.get("error_message")
            if code in (0, 36):  # 36: TOPIC_ALREADY_EXISTS, another process was first
                continue
            raise TopicError(f"cannot create Kafka topic {topic.get('name')!r} with "
                             f"{self._settings.topic_partitions} partitions and replication "
                             f"factor {self._settings.topic_replication_factor}: error "
                             f"{code} {message or ''}; check topic_partitions and "
                             f"topic_replication_factor against the cluster")
        # Wait for leaders, so the first produce or fetch does not fail.
        self._admin.wait_for_topics(names)
        LOG.info("created Kafka topics %s", ", ".join(names))

    def close(self) -> None:
        """Release the admin connection."""
        with self._lock:
            if self._admin is not None:
                self._admin.close()
                self._admin = None
