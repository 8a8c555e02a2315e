"""Deadline: the one bounded-wait helper."""

from __future__ import annotations

import threading

from kafka_bridge.deadline import Deadline


def test_no_deadline_never_passes_and_slices_are_the_caller_s() -> None:
    deadline = Deadline(None)
    assert deadline.left() is None
    assert not deadline.passed()
    assert deadline.slice(0.25) == 0.25


def test_a_passed_deadline_has_nothing_left_and_no_slice() -> None:
    deadline = Deadline(0.0)
    assert deadline.passed()
    assert deadline.left() == 0.0
    assert deadline.slice(0.25) == 0.0


def test_slices_never_reach_past_the_deadline() -> None:
    deadline = Deadline(0.1)
    assert 0 < deadline.slice(5.0) <= 0.1
    assert deadline.slice(0.01) == 0.01


def test_over_once_cancelled_even_with_time_left() -> None:
    cancel = threading.Event()
    deadline = Deadline(60.0)
    assert not deadline.over(cancel)
    cancel.set()
    assert deadline.over(cancel)
