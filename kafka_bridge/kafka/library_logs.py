"""kafka-python's loggers: quiet by default, silent where kafka-bridge reports the outcome.

kafka-python logs every connection, metadata refresh and rebalance at INFO
(about a hundred lines per run of a service), and every failed connection at
ERROR. kafka-bridge says itself, once per change of cause, why Kafka cannot
be used, so the library's lines are noise by default.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

#: the parent of every kafka-python logger
LIBRARY_LOGGER = "kafka"

_silenced = threading.local()


def default_to_warning() -> None:
    """Set kafka-python's loggers to WARNING unless something configured their level
    already (oslo.log's default_log_levels or log_config_append set it when they name
    ``kafka``)."""
    library = logging.getLogger(LIBRARY_LOGGER)
    if library.level == logging.NOTSET:
        library.setLevel(logging.WARNING)


class _SilencedThreadFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_silenced, "active", False)


_FILTER = _SilencedThreadFilter()


@contextlib.contextmanager
def silenced_on_this_thread() -> Iterator[None]:
    """Drop what kafka-python logs on the calling thread meanwhile; other threads'
    clients log as usual. For a probe whose outcome the caller reports itself."""
    # A logger's filters see only its own records, not its children's: each
    # kafka-python logger gets the filter (they exist once kafka is imported).
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if (name == LIBRARY_LOGGER or name.startswith(LIBRARY_LOGGER + ".")) and isinstance(
                logger, logging.Logger) and _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    _silenced.active = True
    try:
        yield
    finally:
        _silenced.active = False
