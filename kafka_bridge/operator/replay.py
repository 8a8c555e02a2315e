"""A bounded replay: the records of a time window, read once, to a destination.

The window is resolved to an offset range per partition when the replay
starts; the replay reads each range once without a consumer group and
stops when every partition reached its range's end. A partition's position
advances past a record only once the record was confirmed by the
destination or deliberately skipped, so an interrupted replay can resume
from its positions (``Positions``) and deliver the rest, at least once.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from kafka.structs import TopicPartition

from kafka_bridge.kafka.consumer import Delivery
from kafka_bridge.operator.destinations import Destination
from kafka_bridge.operator.progress import Progress
from kafka_bridge.operator.reader import GrouplessReader
from kafka_bridge.operator.selection import REASONS, Notification, Rejected, Selection
from kafka_bridge.operator.window import OffsetRange, Window

#: longest one fetch waits, so an interrupt is seen promptly
FETCH_WAIT = 0.5

#: marks a position file (and its format version)
POSITION_FORMAT = "kafka-bridge-replay-positions/1"


@dataclasses.dataclass
class TopicCounts:
    """What a replay did with one topic's records."""

    read: int = 0
    matched: int = 0
    confirmed: int = 0
    skipped: dict[str, int] = dataclasses.field(
        default_factory=lambda: {reason: 0 for reason in REASONS})


@dataclasses.dataclass
class Positions:
    """Where a replay is: per partition, the next offset to deliver and the range end."""

    window: Window
    ranges: dict[TopicPartition, OffsetRange]

    def remaining(self) -> int:
        return sum(r.size for r in self.ranges.values())

    def save(self, path: Path) -> None:
        """Write the positions as JSON (atomically: a temporary file renamed)."""
        data = {"format": POSITION_FORMAT,
                "window": {"from_ms": self.window.start_ms, "until_ms": self.window.end_ms},
                "partitions": [{"topic": tp.topic, "partition": tp.partition,
                                "next": r.start, "end": r.end}
                               for tp, r in sorted(self.ranges.items())]}
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> Positions:
        """Positions saved by save(); raises ValueError saying what is wrong with the file."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != POSITION_FORMAT:
                raise ValueError(f"not a replay position file ({POSITION_FORMAT})")
            window = Window(int(data["window"]["from_ms"]),
                            None if data["window"]["until_ms"] is None
                            else int(data["window"]["until_ms"]))
            ranges = {TopicPartition(str(p["topic"]), int(p["partition"])):
                      OffsetRange(int(p["next"]), int(p["end"])) for p in data["partitions"]}
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path} is not a usable replay position file: {exc}") from None
        return cls(window, ranges)


@dataclasses.dataclass
class ReplayResult:
    """How a replay ended: complete, or interrupted with positions to resume from."""

    complete: bool
    counts: dict[str, TopicCounts]
    positions: Positions

    def summary(self, verb: str) -> str:
        """A table: per topic read, matched, confirmed (named verb) and skipped by reason."""
        columns = ["topic", "read", "matched", verb, *REASONS]
        numbers = {topic: [c.read, c.matched, c.confirmed, *(c.skipped[r] for r in REASONS)]
                   for topic, c in sorted(self.counts.items())}
        numbers["total"] = [sum(column) for column in zip(*numbers.values())] or [0] * (
            len(columns) - 1)
        rows = [[topic, *(f"{n:,}" for n in values)] for topic, values in numbers.items()]
        widths = [max(len(columns[i]), *(len(row[i]) for row in rows))
                  for i in range(len(columns))]
        lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                           for i, (cell, w) in enumerate(zip(row, widths)))
                 for row in [columns, *rows]]
        return "\n".join(lines)


class Replay:
    """Reads each partition's offset range once and hands selected records on.

    run() returns when every range is done, or soon after stop() (from any
    thread, e.g. a SIGINT handler): the batch in hand is settled first.
    """

    def __init__(self, reader: GrouplessReader, positions: Positions, selection: Selection,
                 destination: Destination, progress: Progress | None = None,
                 batch_size: int = 500, max_rate: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._reader = reader
        self._window = positions.window
        self._ranges = dict(positions.ranges)
        self._next = {tp: r.start for tp, r in self._ranges.items()}
        self._selection = selection
        self._destination = destination
        self._progress = progress
        self._max_rate = max_rate
        self._batch_size = batch_size if not max_rate else max(
            1, min(batch_size, int(max_rate // 10)))
        self._clock = clock
        self._stopping = threading.Event()
        self.counts: dict[str, TopicCounts] = {tp.topic: TopicCounts() for tp in self._ranges}

    def stop(self) -> None:
        """Finish the batch in hand and return; thread-safe."""
        self._stopping.set()
        self._destination.stop()

    def run(self) -> ReplayResult:
        pending = {tp for tp, r in self._ranges.items() if r.size > 0}
        if pending:
            self._reader.seek({tp: self._next[tp] for tp in pending})
        began, sent = self._clock(), 0
        while pending and not self._stopping.is_set():
            batch = self._in_range(self._reader.fetch(FETCH_WAIT, self._batch_size), pending)
            if not batch:
                self._finish_caught_up(pending)
                continue
            sent += self._handle(batch)
            for tp in {d.partition for d in batch}:
                if self._next[tp] >= self._ranges[tp].end:
                    self._finished(tp, pending)
            if self._progress is not None:
                self._progress.update(self._done())
            if self._max_rate and sent:
                self._stopping.wait(max(0.0, began + sent / self._max_rate - self._clock()))
        if self._progress is not None:
            self._progress.finish()
        return self.result()

    def result(self) -> ReplayResult:
        """Where the replay is now: exact between batches, and after run() returned
        or was interrupted (positions advance only once a batch is settled)."""
        remaining = {tp: OffsetRange(self._next[tp], r.end) for tp, r in self._ranges.items()
                     if self._next[tp] < r.end}
        return ReplayResult(not remaining, self.counts, Positions(self._window, remaining))

    def _in_range(self, batch: list[Delivery], pending: set[TopicPartition]) -> list[Delivery]:
        """Records of the ranges still being read; a partition past its end is done."""
        kept = []
        for delivery in batch:
            tp = delivery.partition
            if tp not in pending:
                continue
            if delivery.offset >= self._ranges[tp].end:
                self._next[tp] = self._ranges[tp].end
                self._finished(tp, pending)
                continue
            kept.append(delivery)
        return kept

    def _finish_caught_up(self, pending: set[TopicPartition]) -> None:
        # No record came: a range may end in a gap (compaction, transaction
        # markers) that no record will ever fill.
        for tp in list(pending):
            if self._reader.position(tp) >= self._ranges[tp].end:
                self._next[tp] = self._ranges[tp].end
                self._finished(tp, pending)

    def _finished(self, tp: TopicPartition, pending: set[TopicPartition]) -> None:
        if tp in pending:
            pending.discard(tp)
            self._reader.done_with(tp)

    def _handle(self, batch: list[Delivery]) -> int:
        """Select, deliver and advance positions; returns how many were delivered."""
        selected: list[Notification] = []
        for delivery in batch:
            counts = self.counts[delivery.partition.topic]
            counts.read += 1
            try:
                selected.append(self._selection.select(delivery))
            except Rejected as rejected:
                counts.skipped[rejected.reason] += 1
                continue
            counts.matched += 1
        outcomes = dict(zip(((n.delivery.partition, n.delivery.offset) for n in selected),
                            self._destination.deliver(selected)))
        blocked: set[TopicPartition] = set()
        for delivery in batch:
            tp = delivery.partition
            if tp in blocked:
                continue
            confirmed = outcomes.get((tp, delivery.offset))
            if confirmed is False:
                # Not confirmed (interrupted): resume delivers it, and what follows.
                blocked.add(tp)
                continue
            if confirmed:
                self.counts[tp.topic].confirmed += 1
            self._next[tp] = delivery.offset + 1
        return sum(1 for ok in outcomes.values() if ok)

    def _done(self) -> int:
        return sum(self._next[tp] - r.start for tp, r in self._ranges.items())


def write_summary(result: ReplayResult, verb: str, stream: TextIO) -> None:
    """The summary table, after one line saying how the replay ended."""
    state = "complete" if result.complete else (
        f"interrupted, {result.positions.remaining():,} records of the window not done")
    stream.write(f"replay of {result.positions.window.describe()}: {state}\n")
    stream.write(result.summary(verb) + "\n")
    stream.flush()
