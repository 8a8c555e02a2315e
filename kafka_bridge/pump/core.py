"""The pump: take a batch from a source, hand it to a sink, acknowledge after confirmation.

The pump knows neither transport. A source hands it ``SourceMessage`` batches
(from the thread that received them) and a ``Route`` says, per message,
where it goes. A message is acknowledged at its source only once the sink
confirmed it, was deliberately not forwarded (filtered, loop), or went to
the dead letter; if the sink cannot confirm before shutdown it goes back to
its source (nack) to be delivered again. While the sink is down, ``handle``
keeps retrying with backoff and does not return, so the source stops
taking messages: that is the backpressure.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic

from kafka_bridge.errors import DeliveryFailure
from kafka_bridge.pump.protocols import Message, Poison, Record, Route, Sink, Skip
from kafka_bridge.retry import deliver

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class PumpStats:
    """Counters of one pump (direction); read by metrics and tests."""

    received: int = 0
    published: int = 0
    confirmed: int = 0
    failed: int = 0
    requeued: int = 0
    filtered: int = 0
    dead_lettered: int = 0
    loop_suppressed: int = 0
    in_flight: int = 0
    backpressure: bool = False


class Pump(Generic[Message, Record]):
    """Moves batches from one source to one sink, at least once.

    ``handle`` may be called from several source threads at once.
    """

    def __init__(self, name: str, route: Route[Message, Record], sink: Sink[Record],
                 latency: Callable[[float], None] | None = None) -> None:
        """latency, if given, is told each confirmed message's seconds since creation."""
        self.name = name
        self._latency = latency
        self.stats = PumpStats()
        self._route = route
        self._sink = sink
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Stop retrying: batches still unconfirmed go back to their sources."""
        self._stopping.set()

    def handle(self, batch: Sequence[Message]) -> None:
        """Forward a batch and settle every message of it. Never raises."""
        self._count(received=len(batch), in_flight=len(batch))
        try:
            self._forward(batch)
        finally:
            self._count(in_flight=-len(batch))

    def _forward(self, batch: Sequence[Message]) -> None:
        records: list[Record] = []
        senders: list[Message] = []
        dead: list[bool] = []
        for message in batch:
            try:
                records.append(self._route.record_for(message))
                dead.append(False)
            except Skip as skip:
                self._count(**{skip.reason.value: 1})
                message.ack()
                continue
            except Exception as error:  # noqa: BLE001 - Poison, or a mapping bug: same fate
                reason = str(error) if isinstance(error, Poison) else f"cannot map: {error!r}"
                letter = self._dead_letter(message, reason)
                if letter is None:
                    message.ack()
                    continue
                records.append(letter)
                dead.append(True)
            senders.append(message)
        if not records:
            return
        self._count(published=len(records))
        outcomes, _ = deliver(records, self._attempt, retry=None, cancel=self._stopping,
                              on_retry=self._blocked)
        if self.stats.backpressure and any(o is None for o in outcomes):
            self._set_backpressure(False, None)
        if outcomes.count(None) == len(outcomes):  # the usual case, settled as a whole
            self._confirmed(senders, sum(dead))
            return
        for message, outcome, is_dead in zip(senders, outcomes, dead):
            self._settle(message, outcome, is_dead)

    def _confirmed(self, messages: Sequence[Message], dead_letters: int) -> None:
        """Acknowledge messages the sink confirmed, dead_letters of them dead letters."""
        self._count(confirmed=len(messages), dead_lettered=dead_letters)
        now = time.time()
        for message in messages:
            message.ack()
            if self._latency is not None and message.created is not None:
                self._latency(max(0.0, now - message.created))

    def _settle(self, message: Message, outcome: DeliveryFailure | None,
                is_dead: bool) -> None:
        if outcome is None:
            self._confirmed((message,), 1 if is_dead else 0)
        elif outcome.retriable or is_dead:
            # Shutting down (or the dead letter itself failed): the source
            # keeps the message and delivers it again.
            self._count(requeued=1)
            message.nack()
        else:
            self._count(failed=1)
            letter = self._dead_letter(message, str(outcome))
            if letter is not None and deliver([letter], self._attempt, retry=None,
                                              cancel=self._stopping)[0][0] is not None:
                self._count(requeued=1)
                message.nack()
                return
            self._count(dead_lettered=1)
            message.ack()

    def _attempt(self, records: Sequence[Record]) -> Sequence[DeliveryFailure | None]:
        try:
            return self._sink.attempt(records, self._stopping)
        except Exception as error:  # noqa: BLE001 - a sink bug must not leave a batch unsettled
            LOG.exception("%s: the destination raised", self.name)
            return [DeliveryFailure(f"destination raised {error!r}", retriable=True)] * len(records)

    def _dead_letter(self, message: Message, reason: str) -> Record | None:
        return self._route.dead_letter(message, reason)

    def _blocked(self, attempt: int, failing: int, error: DeliveryFailure, delay: float) -> None:
        if not self.stats.backpressure:
            self._set_backpressure(True, error)

    def _set_backpressure(self, on: bool, error: DeliveryFailure | None) -> None:
        with self._lock:
            if self.stats.backpressure == on:
                return
            self.stats.backpressure = on
        if on:
            LOG.warning("%s: destination unavailable (%s); holding the source and retrying "
                        "with backoff", self.name, error)
        else:
            LOG.info("%s: destination available again; resuming", self.name)

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)
