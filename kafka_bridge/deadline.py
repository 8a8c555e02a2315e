"""The one way kafka-bridge bounds a wait: a Deadline on the monotonic clock."""

from __future__ import annotations

import threading
import time


class Deadline:
    """A moment ``seconds`` from now (None: never).

    Waits are cut in slices no longer than a caller's ``slice`` so that a
    cancellation Event is noticed promptly; ``left`` never goes below 0.
    """

    __slots__ = ("_at",)

    def __init__(self, seconds: float | None) -> None:
        self._at = None if seconds is None else time.monotonic() + seconds

    def left(self) -> float | None:
        """Seconds until the deadline (0 once passed); None if there is none."""
        return None if self._at is None else max(0.0, self._at - time.monotonic())

    def passed(self) -> bool:
        """True once the deadline is reached."""
        return self._at is not None and time.monotonic() >= self._at

    def slice(self, most: float) -> float:
        """The next wait: at most ``most`` seconds, and not past the deadline."""
        left = self.left()
        return most if left is None else min(most, left)

    def over(self, cancel: threading.Event | None = None) -> bool:
        """True once the deadline passed or cancel is set: time to stop waiting."""
        return self.passed() or (cancel is not None and cancel.is_set())
