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
import time
from collections.abc import Callable, Iterator

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


#: seconds during which a kafka-python line repeating the same message is shown once
REPEAT_INTERVAL = 60.0


class RepeatFilter(logging.Filter):
    """Lets a kafka-python message through once per ``interval`` seconds.

    While a broker is down kafka-python logs the same ERROR every ~100 ms
    (a reconnect each time); kafka-bridge reports the outage itself. Lines
    with the same logger and message template count as one; the next one let
    through says how many were held back. Other loggers pass untouched.
    """

    def __init__(self, interval: float = REPEAT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # -> (shown at, held back)

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.name == LIBRARY_LOGGER or record.name.startswith(LIBRARY_LOGGER + ".")):
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        with self._lock:
            shown, held = self._seen.get(key, (None, 0))
            if shown is not None and now - shown < self._interval:
                self._seen[key] = (shown, held + 1)
                return False
            self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} (and {held} similar line(s) in the last " \
                         f"{self._interval:g} s)"
        return True


def limit_repeats(logger: logging.Logger) -> None:
    """Put a RepeatFilter on every handler of logger (the root logger: every line)."""
    repeat = RepeatFilter()
    for handler in logger.handlers:
        handler.addFilter(repeat)
