"""Reading Kafka partitions without a consumer group, so nothing is ever committed.

A ``GrouplessReader`` assigns partitions directly (kafka-python's
``KafkaConsumer`` with ``group_id=None``): it joins no group, commits no
offset and cannot disturb a daemon reading the same topics in any group.
It never creates a topic.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from kafka_bridge.kafka import settings as settings_mod
from kafka_bridge.kafka.connectivity import open_client
from kafka_bridge.kafka.consumer import Delivery
from kafka_bridge.kafka.errors import KafkaBridgeError, TopicError, kafka_errors_mapped
from kafka_bridge.kafka.settings import KafkaSettings
from kafka_bridge.operator.window import OffsetRange, Window, resolve

LOG = logging.getLogger(__name__)


def reader_config(settings: KafkaSettings) -> dict[str, object]:
    """kafka-python KafkaConsumer arguments for reading without a group."""
    config: dict[str, object] = settings_mod.admin_config(settings)
    config.update(
        group_id=None,
        enable_auto_commit=False,
        # a start offset deleted by retention meanwhile: go on from the oldest kept
        auto_offset_reset="earliest",
        allow_auto_create_topics=False,
        max_poll_records=settings.max_poll_records,
        fetch_max_wait_ms=settings_mod.FETCH_MAX_WAIT_MS,
    )
    return config


class GrouplessReader:
    """The partitions of some topics, read from positions the caller chooses.

    Raises TopicError from the constructor if a topic does not exist, and
    another KafkaBridgeError if Kafka cannot be reached or refuses us.
    Used by one thread.
    """

    def __init__(self, settings: KafkaSettings, topics: Sequence[str]) -> None:
        self._settings = settings
        self._consumer = open_client(KafkaConsumer, reader_config(settings), settings,
                                     f"reading {', '.join(topics)}")
        try:
            self.partitions = self._partitions(topics)
        except BaseException:
            self._consumer.close()
            raise

    def _partitions(self, topics: Sequence[str]) -> list[TopicPartition]:
        with self._mapped("listing the partitions of " + ", ".join(topics)):
            existing = set(self._consumer.topics())
            missing = sorted(set(topics) - existing)
            if missing:
                raise TopicError(f"Kafka topic {', '.join(missing)} does not exist; check "
                                 f"--topic (or [reverse] kafka_topics)")
            return [TopicPartition(topic, p) for topic in sorted(set(topics))
                    for p in sorted(self._consumer.partitions_for_topic(topic) or ())]

    def _mapped(self, action: str) -> contextlib.AbstractContextManager[None]:
        return kafka_errors_mapped(action, self._settings.secret_values)

    def window_offsets(self, window: Window) -> dict[TopicPartition, OffsetRange]:
        """The offset range of window in every partition (see window.resolve)."""
        with self._mapped("looking up offsets by time"):
            return resolve(self._consumer, self.partitions, window)

    def end_offsets(self) -> dict[TopicPartition, int]:
        """Each partition's end offset now (where new records will be)."""
        with self._mapped("reading end offsets"):
            return dict(self._consumer.end_offsets(self.partitions))

    def seek(self, positions: Mapping[TopicPartition, int]) -> None:
        """Read these partitions from these offsets (and no other partition)."""
        with self._mapped("assigning partitions"):
            self._consumer.assign(list(positions))
            for tp, offset in positions.items():
                self._consumer.seek(tp, offset)

    def done_with(self, tp: TopicPartition) -> None:
        """Fetch nothing more from tp."""
        self._consumer.pause(tp)

    def position(self, tp: TopicPartition) -> int:
        """The offset of the next record read from tp."""
        with self._mapped("reading a position"):
            return int(self._consumer.position(tp))

    def fetch(self, timeout: float, max_records: int) -> list[Delivery]:
        """Records read within timeout seconds, in offset order per partition.

        Raises KafkaBridgeError if Kafka fails in a way retrying cannot fix;
        retriable errors are logged and yield no records.
        """
        try:
            with self._mapped("fetching records"):
                polled = self._consumer.poll(timeout_ms=int(timeout * 1000),
                                             max_records=max_records)
        except KafkaBridgeError as exc:
            if not exc.retriable:
                raise
            LOG.warning("%s; retrying", exc)
            return []
        return [Delivery(tp, record.offset, record.key, record.value,
                         tuple(record.headers) if record.headers else (), record.timestamp)
                for tp, records in polled.items() for record in records]

    def close(self) -> None:
        """Release the connections; commits nothing (there is no group)."""
        self._consumer.close(autocommit=False)
