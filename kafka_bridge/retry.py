"""Delivering a batch with retries: the one retry loop of kafka-bridge.

Both the ``kafka-notify://`` driver (oslo's ``retry`` argument) and the
daemon's pump (retry until confirmed or shutting down) use ``deliver``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from kafka_bridge.errors import DeliveryFailure, is_retriable

Item = TypeVar("Item")

MAX_BACKOFF = 5.0

#: one attempt: an outcome per item, None for "confirmed", else the failure;
#: a retriable failure may succeed when tried again
Attempt = Callable[[Sequence[Item]], Sequence[DeliveryFailure | None]]
#: told before each wait: (attempt number, items still failing, first failure, delay)
OnRetry = Callable[[int, int, DeliveryFailure, float], None]


def attempts_allowed(retry: int | None) -> float:
    """Delivery attempts oslo's retry argument allows: None or -1 mean forever."""
    if retry is None or retry < 0:
        return float("inf")
    return retry + 1


def backoff(attempt: int) -> float:
    """Seconds to wait after the attempt-th failed attempt: 0.2 s doubling to 5 s."""
    return min(MAX_BACKOFF, 0.2 * 2 ** (attempt - 1))


def deliver(items: Sequence[Item], attempt: Attempt, retry: int | None = None,
            cancel: threading.Event | None = None,
            on_retry: OnRetry | None = None) -> tuple[list[DeliveryFailure | None], int]:
    """Attempt items, then again the ones that failed retriably, with backoff.

    Stops when every item is confirmed or failed for good, when ``retry``
    (oslo semantics) is used up, or when ``cancel`` is set (checked between
    attempts, and it cuts a backoff wait short). Returns one outcome per item
    (None: confirmed; else the last error) and the number of attempts made.
    """
    outcomes: list[DeliveryFailure | None] = [None] * len(items)
    pending = list(range(len(items)))
    allowed = attempts_allowed(retry)
    attempts = 0
    while pending:
        attempts += 1
        for index, outcome in zip(pending, attempt([items[i] for i in pending])):
            outcomes[index] = outcome
        pending = [i for i in pending if is_retriable(outcomes[i])]
        if not pending or attempts >= allowed or (cancel is not None and cancel.is_set()):
            break
        delay = backoff(attempts)
        first = outcomes[pending[0]]
        assert first is not None
        if on_retry is not None:
            on_retry(attempts, len(pending), first, delay)
        if cancel is not None:
            if cancel.wait(delay):
                break
        else:
            time.sleep(delay)
    return outcomes, attempts
