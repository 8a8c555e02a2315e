"""Which event types a direction forwards."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence


class EventFilter:
    """include/exclude shell patterns on event types."""

    def __init__(self, include: Sequence[str], exclude: Sequence[str]) -> None:
        self._include = list(include) or ["*"]
        self._exclude = list(exclude)

    def accepts(self, event_type: str) -> bool:
        return (any(fnmatch.fnmatchcase(event_type, p) for p in self._include)
                and not any(fnmatch.fnmatchcase(event_type, p) for p in self._exclude))
