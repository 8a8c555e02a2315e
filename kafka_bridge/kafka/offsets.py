"""Which offsets may be committed: only those below every unacknowledged record.

Records are acknowledged in any order (executor threads, batches); a
partition's committed offset only ever advances to its lowest
unacknowledged offset, so a crash redelivers everything not acknowledged.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from kafka.structs import TopicPartition


class _PartitionProgress:
    __slots__ = ("pending", "next_offset", "committed")

    def __init__(self) -> None:
        self.pending: set[int] = set()        # handed out, not yet acknowledged
        self.next_offset: int | None = None   # one past the highest handed out
        self.committed: int | None = None     # last offset committed

    def committable(self) -> int | None:
        return min(self.pending) if self.pending else self.next_offset


class OffsetTracker:
    """Thread-safe record of handed-out and acknowledged offsets per partition."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partitions: dict[TopicPartition, _PartitionProgress] = {}
        self._unacked = 0
        self._changed = threading.Condition(self._lock)

    def handed_out(self, tp: TopicPartition, offsets: Sequence[int]) -> None:
        """Record that these offsets of tp were handed to the application."""
        if not offsets:
            return
        with self._lock:
            progress = self._partitions.get(tp)
            if progress is None:
                progress = self._partitions[tp] = _PartitionProgress()
            before = len(progress.pending)
            # A record fetched again (after a rebalance rewind) is one record.
            progress.pending.update(offsets)
            self._unacked += len(progress.pending) - before
            progress.next_offset = max(progress.next_offset or 0, max(offsets) + 1)

    def acknowledged(self, tp: TopicPartition, offset: int) -> bool:
        """Record an acknowledgement; False if tp was revoked meanwhile (ignored)."""
        with self._lock:
            progress = self._partitions.get(tp)
            if progress is None or offset not in progress.pending:
                return False
            progress.pending.remove(offset)
            self._unacked -= 1
            self._changed.notify_all()
            return True

    def unacknowledged(self) -> int:
        """How many handed-out records await acknowledgement."""
        with self._lock:
            return self._unacked

    def wait_for_room(self, limit: int, timeout: float) -> bool:
        """Block until fewer than limit records are unacknowledged, or timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._unacked < limit, timeout)

    def to_commit(self, partitions: set[TopicPartition] | None = None,
                  include_committed: bool = False) -> dict[TopicPartition, int]:
        """Offsets that advanced since the last commit (for partitions, if given).

        With include_committed, every known partition's lowest unacknowledged
        offset (or one past the highest handed out), advanced or not.
        """
        with self._lock:
            result = {}
            for tp, progress in self._partitions.items():
                if partitions is not None and tp not in partitions:
                    continue
                offset = progress.committable()
                if offset is not None and (include_committed or offset != progress.committed):
                    result[tp] = offset
            return result

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        """Record that offsets were committed."""
        with self._lock:
            for tp, offset in offsets.items():
                if tp in self._partitions:
                    self._partitions[tp].committed = offset

    def forget(self, partitions: set[TopicPartition]) -> int:
        """Drop revoked partitions; return how many unacknowledged records they had."""
        with self._lock:
            dropped = 0
            for tp in partitions:
                progress = self._partitions.pop(tp, None)
                if progress is not None:
                    dropped += len(progress.pending)
            self._unacked -= dropped
            self._changed.notify_all()
            return dropped
