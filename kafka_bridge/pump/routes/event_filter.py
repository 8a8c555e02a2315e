"""Which event types a direction forwards."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence

#: the pattern that matches every event type
EVERYTHING = "*"


class EventFilter:
    """include/exclude shell patterns on event types (fnmatch, case-sensitive)."""

    def __init__(self, include: Sequence[str], exclude: Sequence[str]) -> None:
        self._include = _matcher(list(include) or [EVERYTHING])
        self._exclude = _matcher(list(exclude))

    def accepts(self, event_type: str) -> bool:
        """Whether event_type matches an include pattern and no exclude pattern."""
        return self._include(event_type) and not self._exclude(event_type)


def _matcher(patterns: list[str]) -> Callable[[str], bool]:
    """Whether a text matches one of patterns, with one compiled expression for all."""
    if EVERYTHING in patterns:
        return lambda text: True
    if not patterns:
        return lambda text: False
    match = re.compile("|".join(fnmatch.translate(p) for p in patterns)).match
    return lambda text: match(text) is not None
