"""What the pump asks of a source, a route and a sink.

A source receives messages on one transport and hands them to the pump in
batches; a route maps each message to a record (or says why not); a sink
delivers records to the other transport and reports, per record, whether
the destination confirmed it. The pump knows no transport: only these.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from kafka_bridge.errors import DeliveryFailure

MessageIn = TypeVar("MessageIn", contravariant=True)
RecordIn = TypeVar("RecordIn", contravariant=True)
RecordOut = TypeVar("RecordOut", covariant=True)


class SourceMessage(Protocol):
    """One message taken from a source, settled exactly once by ack or nack."""

    #: when the message was created at its origin (epoch seconds), if known
    created: float | None

    def ack(self) -> None:
        """Done with it: the source may forget it."""

    def nack(self) -> None:
        """Not delivered: the source must deliver it again."""


Message = TypeVar("Message", bound=SourceMessage)
MessageOut = TypeVar("MessageOut", bound=SourceMessage, covariant=True)
Record = TypeVar("Record")

#: a source delivers batches to a handler from its own thread(s); the
#: handler returns once every message of the batch is settled
BatchHandler = Callable[[Sequence[Message]], None]


class Source(Protocol[MessageOut]):
    """Receives messages and hands them to a handler, a batch at a time.

    ``start`` returns once the source is connected; batches are handed over
    from the source's own thread, and it takes no more while the handler
    runs (that is the backpressure). ``stop`` returns once the batch in hand
    is settled and no more will come; ``cleanup`` releases the connection,
    and whatever was received but not handed over goes back to the broker.
    """

    def start(self, handler: Callable[[Sequence[MessageOut]], None]) -> None:
        """Connect and start handing batches to handler."""

    def stop(self) -> None:
        """Stop taking messages; return once the batch in hand is settled."""

    def cleanup(self) -> None:
        """Release the connection; unsettled messages return to the broker."""


class SkipReason(enum.Enum):
    """Why a message is deliberately not forwarded; the value is its PumpStats counter."""

    FILTERED = "filtered"
    LOOP = "loop_suppressed"


class Skip(Exception):
    """A message deliberately not forwarded, for ``reason``."""

    def __init__(self, reason: SkipReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


class Poison(Exception):
    """A message that cannot be decoded or mapped; the reason is the message."""


class Sink(Protocol[RecordIn]):
    """The destination: one attempt per call, an outcome per record."""

    def attempt(self, records: Sequence[RecordIn],
                cancel: threading.Event | None = None) -> Sequence[DeliveryFailure | None]:
        """None where the destination confirmed the record, else why not.

        Tries once (no retries); stops waiting soon after cancel is set.
        """


class Route(Protocol[MessageIn, RecordOut]):
    """What the pump does with each message of one direction."""

    def record_for(self, message: MessageIn) -> RecordOut:
        """The record to send; raises Skip or Poison."""

    def dead_letter(self, message: MessageIn, reason: str) -> RecordOut | None:
        """A record for the dead-letter destination, or None when the
        direction only logs and counts."""
