"""finish_within: a stop never waits for a call longer than its deadline."""

from __future__ import annotations

import threading
import time

import pytest

from kafka_bridge.daemon.shutdown import finish_within


def test_calls_run_at_once_and_a_stuck_one_is_left_behind_at_the_deadline(
        caplog: pytest.LogCaptureFixture) -> None:
    stuck = threading.Event()
    done: list[str] = []
    began = time.monotonic()
    late = finish_within([("stuck", lambda: stuck.wait(30)),
                          ("quick", lambda: done.append("quick")),
                          ("slowish", lambda: (time.sleep(0.2), done.append("slowish")))],
                         0.5)
    elapsed = time.monotonic() - began
    stuck.set()
    assert late == ["stuck"]
    assert sorted(done) == ["quick", "slowish"]
    assert 0.5 <= elapsed < 1.0  # the calls ran side by side, not one after another
    assert "not waiting any longer (0.5 s) for: stuck" in caplog.text


def test_a_call_that_raises_is_logged_and_counts_as_finished(
        caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise RuntimeError("boom")

    assert finish_within([("broken", broken)], 1.0) == []
    assert "broken failed" in caplog.text and "boom" in caplog.text


def test_no_time_left_waits_for_nothing() -> None:
    stuck = threading.Event()
    began = time.monotonic()
    assert finish_within([("stuck", lambda: stuck.wait(30))], 0.0) == ["stuck"]
    stuck.set()
    assert time.monotonic() - began < 0.2
