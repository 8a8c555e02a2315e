"""What kafka-bridge relies on of an oslo notification: priorities, routing keys, timestamps."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Mapping
from typing import Any

PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")


def split_routing_key(routing_key: str) -> tuple[str, str | None]:
    """``notifications.info`` -> (``notifications``, ``info``); no known priority -> None."""
    topic, _, last = routing_key.rpartition(".")
    if topic and last.lower() in PRIORITIES:
        return topic, last.lower()
    return routing_key, None


def parse_time(value: str) -> datetime.datetime:
    """An ISO 8601 time (``Z`` allowed; UTC when no zone is given); ValueError if not one."""
    moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


def notification_time(message: Any) -> float | None:
    """Epoch seconds of an oslo notification's ``timestamp`` (UTC), None if unreadable."""
    stamp = message.get("timestamp") if isinstance(message, Mapping) else None
    if not isinstance(stamp, str):
        return None
    fraction = stamp[20:]
    if len(stamp) == 26 and stamp[19] == "." and fraction.isascii() and fraction.isdigit():
        # oslo's own form, str(timeutils.utcnow()): 2026-12-01 07:00:00.123456,
        # whose second many notifications share
        second = _seconds(stamp[:19])
        return None if second is None else second + int(fraction) / 1e6
    try:
        return parse_time(stamp).timestamp()
    except ValueError:
        return None


@functools.lru_cache(maxsize=256)
def _seconds(stamp: str) -> float | None:
    """Epoch seconds of a time to the second (UTC), None if unreadable."""
    try:
        return parse_time(stamp).timestamp()
    except ValueError:
        return None
