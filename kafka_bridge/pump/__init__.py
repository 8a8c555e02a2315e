"""The pump: take a batch from a source, hand it to a sink, acknowledge after confirmation.

``core`` holds the pump; ``protocols`` what it asks of a ``Source``, a
``Route`` and a ``Sink``. The implementations are modules of their own:
``sources`` (``rabbit``: forward, ``kafka``: reverse), ``routes``
(``forward``, ``reverse``) and ``sinks`` (``kafka``: forward, ``rabbit``:
reverse).
"""

from kafka_bridge.pump.core import Pump, PumpStats
from kafka_bridge.pump.protocols import (BatchHandler, Poison, Route, Sink, Skip, SkipReason,
                                         Source, SourceMessage)

__all__ = ["BatchHandler", "Poison", "Pump", "PumpStats", "Route", "Sink", "Skip", "SkipReason",
           "Source", "SourceMessage"]
