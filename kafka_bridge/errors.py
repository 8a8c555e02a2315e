"""The one failure type both sinks report, whatever the transport.

A sink reports, per record, ``None`` (confirmed) or a ``DeliveryFailure``.
The pump, the retry loop and the driver decide on ``retriable`` alone, never
on the message text or the concrete class.
"""

from __future__ import annotations


class DeliveryFailure(Exception):
    """A record was not confirmed by its destination.

    ``retriable`` is true when the same record may be confirmed if tried
    again (a broker unavailable, a confirm that did not come in time); false
    when no retry can help (too large, not authorized, not serializable).
    Subclasses set a class default; an instance may override it.
    """

    retriable: bool = False

    def __init__(self, text: str, retriable: bool | None = None) -> None:
        super().__init__(text)
        if retriable is not None:
            self.retriable = retriable


def is_retriable(outcome: DeliveryFailure | None) -> bool:
    """True for a failure that trying again may fix; False for success or a final failure."""
    return outcome is not None and outcome.retriable
