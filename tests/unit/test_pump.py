"""The pump and the retry loop, with a fake route, sink and source messages: no brokers."""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from kafka_bridge import retry
from kafka_bridge.errors import DeliveryFailure
from kafka_bridge.pump import Poison, Pump, PumpStats, Skip, SkipReason
from kafka_bridge.retry import attempts_allowed, backoff, deliver

JOIN = 5.0  # upper bound for a thread to finish; never used as synchronisation


SinkError = DeliveryFailure


class FakeMessage:
    """A source message recording how it was settled, in a shared event log."""

    def __init__(self, ident: str, kind: str = "ok", log: list | None = None) -> None:
        self.ident = ident
        self.kind = kind  # "ok", "skip:<counter>", "poison"
        self.log = log if log is not None else []
        self.settlements: list[str] = []

    def ack(self) -> None:
        self.settlements.append("ack")
        self.log.append(("ack", self.ident))

    def nack(self) -> None:
        self.settlements.append("nack")
        self.log.append(("nack", self.ident))


class FakeRoute:
    """Records are ("rec", id); dead letters ("dead", id, reason), or None (reverse style)."""

    def __init__(self, dead_letters: bool = True) -> None:
        self.dead_letters = dead_letters
        self.dead_letter_calls: list[tuple[str, str]] = []

    def record_for(self, message: FakeMessage) -> tuple:
        if message.kind.startswith("skip:"):
            raise Skip(SkipReason(message.kind.split(":", 1)[1]))
        if message.kind == "poison":
            raise Poison(f"cannot map {message.ident}")
        return ("rec", message.ident)

    def dead_letter(self, message: FakeMessage, reason: str) -> tuple | None:
        self.dead_letter_calls.append((message.ident, reason))
        if not self.dead_letters:
            return None
        return ("dead", message.ident, reason)


class FakeSink:
    """One attempt per call. Fails everything retriably for the first
    ``retriable_failures`` attempts (or forever), and for good the records
    whose id is in ``refuse``."""

    def __init__(self, log: list | None = None, retriable_failures: float = 0,
                 refuse: Sequence[str] = (), refuse_dead: bool = False,
                 pump: Pump | None = None) -> None:
        self.log = log if log is not None else []
        self.retriable_failures = retriable_failures
        self.refuse = set(refuse)
        self.refuse_dead = refuse_dead
        self.attempts: list[list[tuple]] = []
        self.pump = pump
        self.backpressure_seen: list[bool] = []
        self.attempted = threading.Event()
        self.cancels: list[threading.Event | None] = []

    def attempt(self, records: Sequence[tuple],
                cancel: threading.Event | None = None) -> list[BaseException | None]:
        self.attempts.append(list(records))
        self.cancels.append(cancel)
        self.log.append(("attempt", [r[1] for r in records]))
        if self.pump is not None:
            self.backpressure_seen.append(self.pump.stats.backpressure)
        self.attempted.set()
        if len(self.attempts) <= self.retriable_failures:
            return [SinkError("destination down", retriable=True) for _ in records]
        outcomes: list[BaseException | None] = []
        for record in records:
            if record[0] == "rec" and record[1] in self.refuse:
                outcomes.append(SinkError(f"refused {record[1]}", retriable=False))
            elif record[0] == "dead" and self.refuse_dead:
                outcomes.append(SinkError("dead letter refused", retriable=False))
            else:
                outcomes.append(None)
        return outcomes

    @property
    def sent(self) -> list[tuple]:
        return [record for attempt in self.attempts for record in attempt]


def messages(*kinds: str, log: list | None = None) -> list[FakeMessage]:
    log = log if log is not None else []
    return [FakeMessage(f"m{i}", kind, log) for i, kind in enumerate(kinds)]


def assert_settled_once(batch: Sequence[FakeMessage]) -> None:
    for message in batch:
        assert len(message.settlements) == 1, (message.ident, message.settlements)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Backoff of 0 s; returns the attempt numbers backoff was asked about."""
    asked: list[int] = []

    def quick(attempt: int) -> float:
        asked.append(attempt)
        return 0.0

    monkeypatch.setattr(retry, "backoff", quick)
    return asked


# the pump: settling ------------------------------------------------------------------


def test_confirmed_batch_is_acked_once_after_the_sink_confirmed() -> None:
    log: list = []
    batch = messages("ok", "ok", "ok", log=log)
    sink = FakeSink(log)
    pump = Pump("t", FakeRoute(), sink)
    pump.handle(batch)
    assert_settled_once(batch)
    assert [m.settlements for m in batch] == [["ack"]] * 3
    assert sink.attempts == [[("rec", "m0"), ("rec", "m1"), ("rec", "m2")]]
    # every ack comes after the attempt that confirmed it
    assert log[0] == ("attempt", ["m0", "m1", "m2"])
    assert sorted(log[1:]) == [("ack", "m0"), ("ack", "m1"), ("ack", "m2")]
    stats = pump.stats
    assert (stats.received, stats.published, stats.confirmed) == (3, 3, 3)
    assert (stats.failed, stats.requeued, stats.filtered, stats.dead_lettered,
            stats.loop_suppressed, stats.in_flight) == (0, 0, 0, 0, 0, 0)
    assert stats.backpressure is False


def test_no_ack_before_the_sink_confirmed() -> None:
    log: list = []
    batch = messages("ok", "ok", log=log)

    class CheckingSink(FakeSink):
        def attempt(self, records: Sequence[tuple],
                    cancel: threading.Event | None = None) -> list[BaseException | None]:
            # at the moment of every attempt, nothing has been acknowledged yet
            assert all(m.settlements == [] for m in batch)
            return super().attempt(records, cancel)

    sink = CheckingSink(log, retriable_failures=1)
    Pump("t", FakeRoute(), sink).handle(batch)
    assert len(sink.attempts) == 2
    assert [m.settlements for m in batch] == [["ack"], ["ack"]]
    last_attempt = max(i for i, e in enumerate(log) if e[0] == "attempt")
    assert all(i > last_attempt for i, e in enumerate(log) if e[0] == "ack")


@pytest.mark.parametrize("counter", ["filtered", "loop_suppressed"])
def test_skip_acks_and_counts_without_sending(counter: str) -> None:
    batch = messages(f"skip:{counter}", "ok")
    sink = FakeSink()
    pump = Pump("t", FakeRoute(), sink)
    pump.handle(batch)
    assert_settled_once(batch)
    assert batch[0].settlements == ["ack"]
    assert sink.sent == [("rec", "m1")]  # the skipped message never reaches the sink
    assert getattr(pump.stats, counter) == 1
    other = {"filtered", "loop_suppressed"} - {counter}
    assert getattr(pump.stats, other.pop()) == 0
    assert (pump.stats.received, pump.stats.published, pump.stats.confirmed) == (2, 1, 1)
    assert pump.stats.in_flight == 0


def test_all_skipped_batch_makes_no_sink_attempt() -> None:
    batch = messages("skip:filtered", "skip:filtered")
    sink = FakeSink()
    pump = Pump("t", FakeRoute(), sink)
    pump.handle(batch)
    assert sink.attempts == []
    assert [m.settlements for m in batch] == [["ack"], ["ack"]]
    assert pump.stats.filtered == 2
    assert pump.stats.published == 0


def test_poison_sends_the_dead_letter_then_acks() -> None:
    log: list = []
    batch = messages("poison", "ok", log=log)
    route = FakeRoute()
    sink = FakeSink(log)
    pump = Pump("t", route, sink)
    pump.handle(batch)
    assert_settled_once(batch)
    assert route.dead_letter_calls == [("m0", "cannot map m0")]
    assert sink.attempts == [[("dead", "m0", "cannot map m0"), ("rec", "m1")]]
    assert batch[0].settlements == ["ack"]
    assert log.index(("ack", "m0")) > log.index(("attempt", ["m0", "m1"]))
    assert pump.stats.dead_lettered == 1
    assert pump.stats.confirmed == 2
    assert pump.stats.failed == 0


def test_poison_whose_dead_letter_is_refused_goes_back_to_the_source() -> None:
    batch = messages("poison")
    sink = FakeSink(refuse_dead=True)
    pump = Pump("t", FakeRoute(), sink)
    pump.handle(batch)
    assert batch[0].settlements == ["nack"]
    assert pump.stats.requeued == 1
    assert pump.stats.dead_lettered == 0


def test_poison_without_dead_letter_destination_is_acked_without_a_sink_call() -> None:
    batch = messages("poison", "poison")
    route = FakeRoute(dead_letters=False)
    sink = FakeSink()
    pump = Pump("t", route, sink)
    pump.handle(batch)
    assert sink.attempts == []
    assert [m.settlements for m in batch] == [["ack"], ["ack"]]
    assert [ident for ident, _ in route.dead_letter_calls] == ["m0", "m1"]
    assert pump.stats.published == 0
    assert pump.stats.in_flight == 0


def test_retriable_outage_is_retried_until_it_succeeds() -> None:
    # two failed attempts: the real backoff waits 0.2 s + 0.4 s
    batch = messages("ok", "ok")
    sink = FakeSink(retriable_failures=2)
    pump = Pump("t", FakeRoute(), sink)
    sink.pump = pump
    pump.handle(batch)
    assert len(sink.attempts) == 3
    assert all(a == [("rec", "m0"), ("rec", "m1")] for a in sink.attempts)
    # backpressure on from the first failure until the destination came back
    assert sink.backpressure_seen == [False, True, True]
    assert pump.stats.backpressure is False
    assert [m.settlements for m in batch] == [["ack"], ["ack"]]
    assert pump.stats.confirmed == 2
    assert pump.stats.published == 2  # a retry is not a new publication
    assert pump.stats.requeued == 0


def test_stop_during_an_outage_ends_handle_and_nacks(monkeypatch: pytest.MonkeyPatch) -> None:
    # a backoff far longer than the test: only stop() can end the wait
    monkeypatch.setattr(retry, "backoff", lambda attempt: 3600.0)
    batch = messages("ok", "ok", "skip:filtered")
    sink = FakeSink(retriable_failures=math.inf)
    pump = Pump("t", FakeRoute(), sink)
    thread = threading.Thread(target=pump.handle, args=(batch,), daemon=True)
    thread.start()
    assert sink.attempted.wait(JOIN)
    assert pump.stats.in_flight == 3
    assert batch[0].settlements == [] and batch[1].settlements == []
    started = time.monotonic()
    pump.stop()
    thread.join(JOIN)
    assert not thread.is_alive(), "handle() did not return after stop()"
    assert time.monotonic() - started < JOIN
    assert_settled_once(batch)
    assert [m.settlements for m in batch] == [["nack"], ["nack"], ["ack"]]
    assert pump.stats.requeued == 2
    assert pump.stats.confirmed == 0
    assert pump.stats.in_flight == 0
    # the sink was handed the pump's cancel event, so it too can stop waiting
    assert sink.cancels and all(c is not None and c.is_set() for c in sink.cancels)


def test_non_retriable_failure_sends_a_dead_letter_and_acks() -> None:
    log: list = []
    batch = messages("ok", "ok", log=log)
    route = FakeRoute()
    sink = FakeSink(log, refuse=["m1"])
    pump = Pump("t", route, sink)
    pump.handle(batch)
    assert_settled_once(batch)
    assert [m.settlements for m in batch] == [["ack"], ["ack"]]
    assert route.dead_letter_calls == [("m1", "refused m1")]
    assert sink.attempts == [[("rec", "m0"), ("rec", "m1")], [("dead", "m1", "refused m1")]]
    # m1 is acked only after its dead letter was attempted
    assert log.index(("ack", "m1")) > log.index(("attempt", ["m1"]))
    stats = pump.stats
    assert (stats.confirmed, stats.failed, stats.dead_lettered, stats.requeued) == (1, 1, 1, 0)


def test_non_retriable_failure_with_refused_dead_letter_is_nacked() -> None:
    batch = messages("ok")
    sink = FakeSink(refuse=["m0"], refuse_dead=True)
    pump = Pump("t", FakeRoute(), sink)
    pump.handle(batch)
    assert batch[0].settlements == ["nack"]
    assert (pump.stats.failed, pump.stats.requeued, pump.stats.dead_lettered) == (1, 1, 0)


def test_non_retriable_failure_without_dead_letter_destination_is_acked() -> None:
    batch = messages("ok")
    route = FakeRoute(dead_letters=False)
    sink = FakeSink(refuse=["m0"])
    pump = Pump("t", route, sink)
    pump.handle(batch)
    assert batch[0].settlements == ["ack"]
    assert len(sink.attempts) == 1
    assert route.dead_letter_calls == [("m0", "refused m0")]
    assert (pump.stats.failed, pump.stats.dead_lettered) == (1, 1)


def test_mixed_batch_counters() -> None:
    batch = messages("ok", "skip:filtered", "skip:loop_suppressed", "poison", "ok", "ok")
    sink = FakeSink(refuse=["m5"])
    pump = Pump("t", FakeRoute(), sink)
    pump.handle(batch)
    assert_settled_once(batch)
    assert all(m.settlements == ["ack"] for m in batch)
    stats = pump.stats
    assert stats.received == 6
    assert stats.published == 4  # m0, m3's dead letter, m4, m5
    assert stats.confirmed == 3  # m0, m3's dead letter, m4
    assert stats.filtered == 1
    assert stats.loop_suppressed == 1
    assert stats.failed == 1
    assert stats.dead_lettered == 2  # m3 (poison) and m5 (refused)
    assert stats.requeued == 0
    assert stats.in_flight == 0
    assert stats.backpressure is False


def test_concurrent_batches_all_settled_and_counted() -> None:
    sink = FakeSink()
    pump = Pump("t", FakeRoute(), sink)
    batches = [[FakeMessage(f"b{b}m{i}") for i in range(50)] for b in range(8)]
    threads = [threading.Thread(target=pump.handle, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN)
        assert not thread.is_alive()
    for batch in batches:
        assert all(m.settlements == ["ack"] for m in batch)
    assert (pump.stats.received, pump.stats.published, pump.stats.confirmed) == (400, 400, 400)
    assert pump.stats.in_flight == 0


# retry.deliver -----------------------------------------------------------------------


class CountingAttempt:
    """Fails every item retriably for the first ``failures`` calls."""

    def __init__(self, failures: float, on_call: Any = None) -> None:
        self.failures = failures
        self.calls: list[list[Any]] = []
        self.on_call = on_call

    def __call__(self, items: Sequence[Any]) -> list[BaseException | None]:
        self.calls.append(list(items))
        if self.on_call is not None:
            self.on_call()
        if len(self.calls) <= self.failures:
            return [SinkError("down", retriable=True) for _ in items]
        return [None] * len(items)


@pytest.mark.parametrize("retry_arg, expected", [(0, 1), (2, 3)])
def test_deliver_retry_bounds_the_attempts(retry_arg: int, expected: int,
                                           fast_backoff: list[int]) -> None:
    attempt = CountingAttempt(failures=math.inf)
    outcomes, attempts = deliver(["a", "b"], attempt, retry=retry_arg)
    assert attempts == expected
    assert len(attempt.calls) == expected
    assert all(isinstance(o, SinkError) and o.retriable for o in outcomes)
    assert fast_backoff == list(range(1, expected))  # a wait between attempts, none after


def test_deliver_without_retry_limit_keeps_going_until_success(
        fast_backoff: list[int]) -> None:
    attempt = CountingAttempt(failures=7)
    outcomes, attempts = deliver(["a", "b"], attempt, retry=None)
    assert outcomes == [None, None]
    assert attempts == 8
    assert fast_backoff == list(range(1, 8))


def test_deliver_retries_only_the_retriable_failures(fast_backoff: list[int]) -> None:
    calls: list[list[str]] = []
    refused = SinkError("too large", retriable=False)

    def attempt(items: Sequence[str]) -> list[BaseException | None]:
        calls.append(list(items))
        if len(calls) == 1:
            return [None, SinkError("down", retriable=True), refused]
        return [None] * len(items)

    outcomes, attempts = deliver(["ok", "later", "never"], attempt, retry=None)
    assert calls == [["ok", "later", "never"], ["later"]]
    assert outcomes == [None, None, refused]
    assert attempts == 2


def test_deliver_cancel_set_during_an_attempt_stops_before_the_next(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "backoff", lambda attempt: 3600.0)
    cancel = threading.Event()
    attempt = CountingAttempt(failures=math.inf, on_call=cancel.set)
    outcomes, attempts = deliver(["a"], attempt, retry=None, cancel=cancel)
    assert attempts == 1
    assert len(attempt.calls) == 1
    assert isinstance(outcomes[0], SinkError)


def test_deliver_cancel_cuts_a_backoff_wait_short(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "backoff", lambda attempt: 3600.0)
    cancel = threading.Event()
    waiting = threading.Event()
    result: list = []
    attempt = CountingAttempt(failures=math.inf)
    thread = threading.Thread(target=lambda: result.append(deliver(
        ["a"], attempt, retry=None, cancel=cancel,
        on_retry=lambda *args: waiting.set())), daemon=True)
    thread.start()
    assert waiting.wait(JOIN)  # told about the retry: about to wait an hour
    cancel.set()
    thread.join(JOIN)
    assert not thread.is_alive()
    outcomes, attempts = result[0]
    assert attempts == 1
    assert isinstance(outcomes[0], SinkError)


def test_deliver_already_cancelled_still_makes_one_attempt() -> None:
    cancel = threading.Event()
    cancel.set()
    attempt = CountingAttempt(failures=0)
    outcomes, attempts = deliver(["a"], attempt, retry=None, cancel=cancel)
    assert (outcomes, attempts) == ([None], 1)


def test_deliver_reports_each_retry_with_the_real_backoff() -> None:
    told: list[tuple] = []
    attempt = CountingAttempt(failures=1)
    outcomes, attempts = deliver(["a", "b", "c"], attempt, retry=None,
                                 on_retry=lambda *args: told.append(args))
    assert outcomes == [None, None, None]
    assert attempts == 2
    assert len(told) == 1
    number, failing, error, delay = told[0]
    assert (number, failing, delay) == (1, 3, 0.2)
    assert isinstance(error, SinkError) and str(error) == "down"


def test_deliver_of_nothing_makes_no_attempt() -> None:
    attempt = CountingAttempt(failures=0)
    assert deliver([], attempt) == ([], 0)
    assert attempt.calls == []


@pytest.mark.parametrize("retry_arg, allowed", [
    (None, math.inf), (-1, math.inf), (0, 1), (1, 2), (2, 3)])
def test_attempts_allowed(retry_arg: int | None, allowed: float) -> None:
    assert attempts_allowed(retry_arg) == allowed


@pytest.mark.parametrize("attempt, delay", [
    (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.6), (5, 3.2), (6, 5.0), (7, 5.0), (50, 5.0)])
def test_backoff_doubles_from_0_2_up_to_5_seconds(attempt: int, delay: float) -> None:
    assert backoff(attempt) == pytest.approx(delay)


def test_every_skip_reason_is_a_pump_counter() -> None:
    fields = {f.name for f in dataclasses.fields(PumpStats)}
    assert {reason.value for reason in SkipReason} <= fields
