"""Consuming topics as a member of a consumer group, committing only what was acknowledged.

A ``Subscription`` hands records out with ``fetch`` and commits a
partition's offset only up to its lowest unacknowledged record. It never
misses a record published after it was created: the end offsets are read
before the constructor returns, and a partition the group has no committed
offset for starts there once it is assigned, however late that is.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Sequence
from typing import NamedTuple

import kafka.errors as kafka_errors
from kafka import KafkaConsumer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata, TopicPartition

from kafka_bridge.deadline import Deadline
from kafka_bridge.kafka import settings as settings_mod
from kafka_bridge.kafka.connectivity import open_client
from kafka_bridge.kafka.errors import KafkaBridgeError, kafka_errors_mapped, translate
from kafka_bridge.kafka.offsets import OffsetTracker
from kafka_bridge.kafka.settings import KafkaSettings
from kafka_bridge.kafka.topics import TopicCreator

LOG = logging.getLogger(__name__)

#: longest a single broker poll blocks, so stop() takes effect quickly
POLL_SLICE = 0.1

#: longest a commit waits for the group coordinator before it counts as failed
COMMIT_TIMEOUT = 5.0

START_POSITIONS = ("committed", "earliest", "latest")


class Delivery(NamedTuple):
    """One record handed out by a Subscription, to be acknowledged or requeued.

    A NamedTuple rather than a frozen dataclass: one is built per record on
    the consuming thread, and a tuple costs a fraction of the time.
    """

    partition: TopicPartition
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int


class Subscription(ConsumerRebalanceListener):
    """A consumer-group member on topics.

    ``start``: ``committed`` (resume where the group stopped; a partition
    without a committed offset starts at its end as of construction),
    ``earliest``, ``latest``, or an int timestamp in milliseconds; the last
    three override committed offsets the first time this process is assigned
    each partition (replay).

    fetch() and close() belong to one thread at a time; acknowledge() and
    requeue() may be called from any thread.
    """

    def __init__(self, settings: KafkaSettings, topics: Sequence[str], group: str,
                 start: str | int = "committed") -> None:
        if not isinstance(start, int) and start not in START_POSITIONS:
            raise ValueError(f"start must be one of {START_POSITIONS} or a timestamp")
        self._settings = settings
        self._topics = sorted(set(topics))
        self._group = group
        self._start = start
        self._tracker = OffsetTracker()
        # handed out first: requeued records, then those buffered by a poll
        self._redeliver: collections.deque[Delivery] = collections.deque()
        self._buffered: collections.deque[Delivery] = collections.deque()
        self._queue_lock = threading.Lock()
        self._stopped = threading.Event()
        self._closed = False
        self._positioned: set[TopicPartition] = set()
        self._rewind: dict[TopicPartition, int] = {}
        self._lag: dict[tuple[str, int], int] = {}
        self._last_commit = time.monotonic()
        self._error_state: str | None = None
        # Records are taken max_poll_records at a time and handed out from a
        # local buffer, and a poll waits until half as many slots are free:
        # each kafka-python poll costs a round trip to its network thread,
        # which oslo's one-message-at-a-time listeners (or a dribble of room
        # freed one acknowledgement at a time) would otherwise pay per record.
        self._refill = max(1, min(settings.max_poll_records, settings.max_unacknowledged) // 2)
        creator = TopicCreator(settings)
        try:
            creator.ensure(self._topics)
        finally:
            creator.close()
        self._consumer = open_client(
            KafkaConsumer, settings_mod.consumer_config(settings, group), settings,
            f"subscribing group {group} to {', '.join(self._topics)}")
        try:
            with kafka_errors_mapped(f"reading offsets of {', '.join(self._topics)}",
                                     settings.secret_values):
                # Subscribed first: the metadata read for the start positions then
                # reaches the group coordinator too. Read before subscribing, the
                # first join saw no partitions, and a second rebalance followed
                # within the first second (a stall of ~0.2 s while records waited).
                self._consumer.subscribe(self._topics, listener=self)
                self._start_offsets = self._start_positions()
        except BaseException:
            self._consumer.close(autocommit=False)
            raise

    def _start_positions(self) -> dict[TopicPartition, int]:
        """Where each partition starts when the group has no offset for it (or in
        a replay mode), read now so that nothing published later is missed."""
        partitions = []
        for topic in self._topics:
            ids = self._consumer.partitions_for_topic(topic) or ()
            partitions += [TopicPartition(topic, p) for p in ids]
        if not partitions:
            return {}
        if self._start == "earliest":
            return dict(self._consumer.beginning_offsets(partitions))
        ends = dict(self._consumer.end_offsets(partitions))
        if isinstance(self._start, int):
            found = self._consumer.offsets_for_times({tp: self._start for tp in partitions})
            return {tp: found[tp].offset if found.get(tp) else ends[tp] for tp in partitions}
        return ends

    # ConsumerRebalanceListener: called on kafka-python's network thread, where
    # blocking consumer calls are refused; only seek() and our own state here.

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Records handed out from these partitions and not yet acknowledged
        # must be fetched again, by whichever member gets the partition: the
        # next owner starts from the committed offset, and if it is us again
        # (kafka-python may keep our position), on_partitions_assigned rewinds
        # to the lowest unacknowledged offset. Acknowledged records above it
        # come again too: at-least-once, never lost.
        revoked_set = set(revoked)
        self._rewind.update(self._tracker.to_commit(revoked_set, include_committed=True))
        self._tracker.forget(revoked_set)
        with self._queue_lock:
            for queue in (self._redeliver, self._buffered):
                kept = [d for d in queue if d.partition not in revoked_set]
                queue.clear()
                queue.extend(kept)

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        rewind, self._rewind = self._rewind, {}
        for tp in assigned:
            if tp in rewind:
                self._consumer.seek(tp, rewind[tp])
            elif self._start != "committed" and tp not in self._positioned:
                self._consumer.seek(tp, self._start_offsets.get(tp, 0))
            self._positioned.add(tp)

    # Delivery ------------------------------------------------------------------

    def fetch(self, timeout: float | None, max_records: int) -> list[Delivery]:
        """Up to max_records records, waiting at most timeout seconds (None: until some
        arrive or stop() is called).

        Requeued records come first. Fetching pauses while max_unacknowledged
        records await acknowledgement. Does not raise: broker errors are
        logged once per change and retried.
        """
        deadline = Deadline(timeout)
        while not self._stopped.is_set():
            self._commit_if_due()
            out = self._take(max_records)
            if out:
                return out
            limit = self._settings.max_unacknowledged
            room = limit - self._tracker.unacknowledged()
            if deadline.passed():
                return []
            left = deadline.slice(POLL_SLICE)
            if room < self._refill:
                self._tracker.wait_for_room(limit - self._refill + 1, left)
                continue
            polled = self._poll(left, min(self._settings.max_poll_records, room))
            if polled:
                with self._queue_lock:
                    self._buffered.extend(polled)
        return []

    def _take(self, max_records: int) -> list[Delivery]:
        out: list[Delivery] = []
        with self._queue_lock:
            for queue in (self._redeliver, self._buffered):
                while queue and len(out) < max_records:
                    out.append(queue.popleft())
        return out

    def _poll(self, timeout: float, max_records: int) -> list[Delivery]:
        try:
            polled = self._consumer.poll(timeout_ms=int(timeout * 1000),
                                         max_records=max_records)
        except kafka_errors.NoOffsetForPartitionError as exc:
            # auto_offset_reset is 'none': the group has no offset for these
            # partitions, so they start where they ended when we subscribed
            # (0 for partitions created since: all of them is new).
            # The start is committed at once: should this member die before
            # handing anything out, the next one must start here too, not at
            # its own later end offsets.
            start = {tp: self._start_offsets.get(tp, 0) for tp in exc.args[0]}
            for tp, offset in start.items():
                self._consumer.seek(tp, offset)
            self._commit(start)
            return []
        except Exception as exc:  # noqa: BLE001 - reported and retried
            self._report_error(translate(exc, f"fetching for group {self._group}",
                                         self._settings.secret_values))
            self._stopped.wait(1.0)
            return []
        if self._error_state is not None:
            LOG.info("group %s: fetching from Kafka works again", self._group)
            self._error_state = None
        out: list[Delivery] = []
        lag = dict(self._lag)
        for tp, records in polled.items():
            if not records:
                continue
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                lag[(tp.topic, tp.partition)] = max(0, highwater - records[-1].offset - 1)
            self._tracker.handed_out(tp, [record.offset for record in records])
            out.extend(Delivery(tp, record.offset, record.key, record.value,
                                tuple(record.headers) if record.headers else (),
                                record.timestamp)
                       for record in records)
        self._lag = lag
        return out

    def _report_error(self, error: KafkaBridgeError) -> None:
        text = str(error)
        if text != self._error_state:
            LOG.error("group %s: %s", self._group, text)
            self._error_state = text

    def lag(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> records behind the partition's end, as of the last fetch."""
        return dict(self._lag)

    def acknowledge(self, delivery: Delivery) -> None:
        """The record was handled; its offset may be committed."""
        self._tracker.acknowledged(delivery.partition, delivery.offset)

    def requeue(self, delivery: Delivery) -> None:
        """Hand the record out again (its offset stays uncommitted)."""
        with self._queue_lock:
            self._redeliver.append(delivery)

    # Commits -------------------------------------------------------------------

    def _commit_if_due(self) -> None:
        if time.monotonic() - self._last_commit >= self._settings.commit_interval:
            self._commit(self._tracker.to_commit())

    def _commit(self, offsets: dict[TopicPartition, int],
                timeout: float = COMMIT_TIMEOUT) -> None:
        self._last_commit = time.monotonic()
        if not offsets:
            return
        try:
            # Bounded: without a timeout kafka-python waits for a coordinator
            # as long as Kafka is down, and fetch() and close() with it.
            self._consumer.commit({tp: OffsetAndMetadata(offset, "", -1)
                                   for tp, offset in offsets.items()},
                                  timeout_ms=int(timeout * 1000))
        except Exception as exc:  # noqa: BLE001 - the records will be redelivered
            LOG.warning("group %s: commit failed, unacknowledged and uncommitted records "
                        "will be delivered again: %s", self._group,
                        translate(exc, "committing", self._settings.secret_values))
            return
        self._tracker.committed(offsets)

    # Lifecycle -----------------------------------------------------------------

    def stop(self) -> None:
        """Make fetch() return promptly; thread-safe."""
        self._stopped.set()

    def close(self, timeout: float = 10.0) -> None:
        """Commit what was acknowledged, leave the group, release; safe twice.

        The commit and the close each wait at most timeout seconds."""
        self._stopped.set()
        if self._closed:
            return
        self._closed = True
        self._commit(self._tracker.to_commit(), timeout)
        try:
            self._consumer.close(autocommit=False, timeout_ms=int(timeout * 1000))
        except Exception as exc:  # noqa: BLE001
            LOG.warning("group %s: consumer did not close cleanly: %s", self._group,
                        translate(exc, "closing", self._settings.secret_values))
