"""Stopping within a deadline, whatever the libraries called meanwhile do.

A library call that cannot be interrupted (a RabbitMQ connection retrying
inside kombu, a Kafka commit or flush waiting for a broker that is down) must
not hold the daemon's exit. ``finish_within`` runs such calls on daemon
threads and waits for them only until a deadline: what is still running then
is left behind, and ends with the process. Nothing is lost by leaving it: a
RabbitMQ message not acknowledged returns to its queue when the connection
closes with the process, and a Kafka offset not committed is read again by
the group.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from kafka_bridge.deadline import Deadline

LOG = logging.getLogger(__name__)


def finish_within(calls: Sequence[tuple[str, Callable[[], None]]], seconds: float) -> list[str]:
    """Run each (name, call) on a daemon thread of its own, all at once; wait for them
    at most seconds in all. Returns the names of the calls still running then, each
    logged once. A call that raises is logged and counts as finished."""
    deadline = Deadline(max(0.0, seconds))
    threads = []
    for name, call in calls:
        thread = threading.Thread(target=_logged, args=(name, call),
                                  name=f"kafka-bridge-stop: {name}", daemon=True)
        thread.start()
        threads.append((name, thread))
    late = []
    for name, thread in threads:
        thread.join(deadline.left())
        if thread.is_alive():
            late.append(name)
    if late:
        LOG.warning("not waiting any longer (%.1f s) for: %s; what they held that was not "
                    "confirmed returns to its source", seconds, ", ".join(late))
    return late


def _logged(name: str, call: Callable[[], None]) -> None:
    try:
        call()
    except Exception:  # noqa: BLE001 - one failing release must not stop the others
        LOG.exception("%s failed", name)
