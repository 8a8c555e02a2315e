"""Progress of a long run: a bar redrawn in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Callable
from typing import TextIO

#: seconds between redraws of the bar on a terminal
TTY_INTERVAL = 0.2

#: seconds between plain progress lines when the stream is not a terminal
PLAIN_INTERVAL = 10.0


def format_duration(seconds: float) -> str:
    """H:MM:SS, or M:SS under an hour."""
    whole = max(0, int(round(seconds)))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def figures(done: int, total: int, elapsed: float) -> str:
    """'4,321/10,000 43% 2,104/s ETA 0:03' (rate and ETA once there is a rate)."""
    percent = 100 if total <= 0 else min(100, done * 100 // total)
    text = f"{done:,}/{total:,} {percent}%"
    if elapsed > 0 and done > 0:
        rate = done / elapsed
        text += f" {rate:,.0f}/s ETA {format_duration(max(0, total - done) / rate)}"
    return text


def render_bar(label: str, done: int, total: int, elapsed: float, width: int) -> str:
    """One terminal line of at most width characters: label, bar, figures."""
    numbers = figures(done, total, elapsed)
    room = width - len(label) - len(numbers) - 4
    if room < 10:
        return f"{label} {numbers}"[:width]
    filled = room if total <= 0 else min(room, room * done // total)
    return f"{label} [{'#' * filled}{'.' * (room - filled)}] {numbers}"


class Progress:
    """Reports records done of a known total on stream.

    On a terminal (stream.isatty(), unless tty says otherwise) a bar is
    redrawn in place at most every TTY_INTERVAL seconds; otherwise a plain
    line is written every interval seconds. finish() writes the final state.
    """

    def __init__(self, label: str, total: int, stream: TextIO, tty: bool | None = None,
                 interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._label = label
        self.total = total
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._interval = interval if interval is not None else (
            TTY_INTERVAL if self._tty else PLAIN_INTERVAL)
        self._clock = clock
        self._began = clock()
        self._shown = self._began
        self._drawn = False
        self.done = 0

    def update(self, done: int) -> None:
        """done records so far; writes when the interval has passed."""
        self.done = done
        now = self._clock()
        if now - self._shown >= self._interval:
            self._shown = now
            self._write(now)

    def finish(self) -> None:
        """Write the last state (and end the bar's line)."""
        self._write(self._clock())
        if self._tty and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False

    def clear(self) -> None:
        """Take the bar off the terminal line, for other output to be written there."""
        if self._tty and self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._drawn = False

    def _columns(self) -> int:
        try:
            return os.get_terminal_size(self._stream.fileno()).columns
        except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
            return shutil.get_terminal_size().columns

    def _write(self, now: float) -> None:
        elapsed = now - self._began
        if self._tty:
            width = self._columns() - 1
            self._stream.write("\r" + render_bar(self._label, self.done, self.total, elapsed,
                                                 width) + "\x1b[K")
            self._drawn = True
        else:
            self._stream.write(f"{self._label}: {figures(self.done, self.total, elapsed)}\n")
        self._stream.flush()
