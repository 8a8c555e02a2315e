"""Following topics live, the way ``kcat -C`` is used: what flows, a line per notification."""

from __future__ import annotations

import logging
import threading

from kafka.structs import TopicPartition

from kafka_bridge.operator.formats import NotificationWriter
from kafka_bridge.operator.reader import GrouplessReader
from kafka_bridge.operator.selection import UNDECODABLE, Rejected, Selection

LOG = logging.getLogger(__name__)

#: longest one fetch waits, so Ctrl-C and stop() are seen promptly
FETCH_WAIT = 0.5

FETCH_RECORDS = 500


def follow(reader: GrouplessReader, start: dict[TopicPartition, int], selection: Selection,
           writer: NotificationWriter, count: int | None = None,
           stopping: threading.Event | None = None) -> int:
    """Write the selected notifications from start on until count were written
    (None: no limit) or stopping is set; return how many were written.

    Records that are not notifications are reported on the log and skipped.
    """
    stopping = stopping or threading.Event()
    reader.seek(start)
    written = 0
    while not stopping.is_set() and (count is None or written < count):
        for delivery in reader.fetch(FETCH_WAIT, FETCH_RECORDS):
            try:
                notification = selection.select(delivery)
            except Rejected as rejected:
                if rejected.reason == UNDECODABLE:
                    LOG.warning("skipping %s[%d]@%d: %s", delivery.partition.topic,
                                delivery.partition.partition, delivery.offset, rejected)
                continue
            writer.write(notification)
            written += 1
            if count is not None and written >= count:
                break
        writer.flush()
    return written
