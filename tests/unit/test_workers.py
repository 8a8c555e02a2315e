"""The parent's view of the workers: reports, readiness, metrics summed across workers."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator

import pytest
from oslo_config import cfg
from prometheus_client import CollectorRegistry, generate_latest

from kafka_bridge.daemon import options
from kafka_bridge.daemon.config import BridgeConfigError, worker_count
from kafka_bridge.daemon.metrics import compact, merge
from kafka_bridge.daemon.workers import RUNNING, STARTING, STOPPED, WorkerRegistry
from kafka_bridge_devenv.traffic import wait_until

FORK = multiprocessing.get_context("fork")


def exposition(confirmed: float, in_flight: float, backpressure: float,
               latency_count: float) -> str:
    return (
        "# HELP kafka_bridge_notifications_total Notifications.\n"
        "# TYPE kafka_bridge_notifications_total counter\n"
        f'kafka_bridge_notifications_total{{direction="forward",event="confirmed"}} {confirmed}\n'
        "# HELP kafka_bridge_in_flight In flight.\n"
        "# TYPE kafka_bridge_in_flight gauge\n"
        f'kafka_bridge_in_flight{{direction="forward"}} {in_flight}\n'
        "# HELP kafka_bridge_backpressure Backpressure.\n"
        "# TYPE kafka_bridge_backpressure gauge\n"
        f'kafka_bridge_backpressure{{direction="forward"}} {backpressure}\n'
        "# HELP kafka_bridge_latency_seconds Latency.\n"
        "# TYPE kafka_bridge_latency_seconds histogram\n"
        f'kafka_bridge_latency_seconds_bucket{{direction="forward",le="+Inf"}} {latency_count}\n'
        f'kafka_bridge_latency_seconds_count{{direction="forward"}} {latency_count}\n'
        f'kafka_bridge_latency_seconds_sum{{direction="forward"}} 1.5\n'
        "# HELP kafka_bridge_latency_seconds_created Created.\n"
        "# TYPE kafka_bridge_latency_seconds_created gauge\n"
        'kafka_bridge_latency_seconds_created{direction="forward"} 1.7e9\n')


def values(families) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in families for s in family.samples}


FWD = (("direction", "forward"),)
CONFIRMED = ("kafka_bridge_notifications_total", (("direction", "forward"),
                                                  ("event", "confirmed")))


def test_counters_and_histograms_add_up_over_live_and_gone_workers() -> None:
    merged = values(merge([(exposition(10, 3, 0, 10), False), (exposition(5, 2, 1, 5), False),
                           (exposition(7, 9, 1, 7), True)]))
    assert merged[CONFIRMED] == 22
    assert merged[("kafka_bridge_latency_seconds_count", FWD)] == 22
    assert merged[("kafka_bridge_latency_seconds_sum", FWD)] == 4.5
    # gauges: only the live workers; in flight adds up, backpressure is any of them
    assert merged[("kafka_bridge_in_flight", FWD)] == 5
    assert merged[("kafka_bridge_backpressure", FWD)] == 1
    assert not any(name.endswith("_created") for name, _ in merged)


def test_gone_workers_compact_into_their_counters() -> None:
    text = compact([exposition(10, 3, 1, 10), exposition(5, 2, 0, 5)])
    merged = values(merge([(text, True)]))
    assert merged[CONFIRMED] == 15
    assert ("kafka_bridge_in_flight", FWD) not in merged


def test_merged_families_render_as_prometheus_text() -> None:
    registry = CollectorRegistry(auto_describe=False)

    class Merged:
        def collect(self):
            return iter(merge([(exposition(1, 0, 0, 1), False)] * 2))

    registry.register(Merged())
    text = generate_latest(registry).decode()
    assert 'kafka_bridge_notifications_total{direction="forward",event="confirmed"} 2.0' in text
    assert "# TYPE kafka_bridge_latency_seconds histogram" in text


def _worker(registry: WorkerRegistry, reports: list[tuple[str, str | None]], sent,
            stop) -> None:
    for state, metrics in reports:
        registry.reporter().report(state, None, metrics)
    sent.set()
    stop.wait(30)
    os._exit(0)


@pytest.fixture
def workers() -> Iterator[tuple[WorkerRegistry, list]]:
    registry = WorkerRegistry(expected=2)
    registry.start()
    started: list = []
    yield registry, started
    for stop, process in started:
        stop.set()
        process.join(10)


def spawn(registry: WorkerRegistry, started: list, *reports: tuple[str, str | None]):
    """A process that reports as a worker would, then waits until stopped."""
    stop, sent = FORK.Event(), FORK.Event()
    process = FORK.Process(target=_worker, args=(registry, list(reports), sent, stop))
    process.start()
    started.append((stop, process))
    assert sent.wait(10), "the worker did not report"
    return stop, process


def test_ready_only_once_every_configured_worker_runs(workers) -> None:
    registry, started = workers
    spawn(registry, started, (RUNNING, None))
    spawn(registry, started, (STARTING, None))
    wait_until(lambda: registry.running() == 1, 10, "the first worker's report")
    assert not registry.ready()
    spawn(registry, started, (RUNNING, None))
    wait_until(registry.ready, 10, "readiness with two running workers")
    # a worker that dies without a word no longer counts
    stop, process = started[0]
    stop.set()
    process.join(10)
    wait_until(lambda: not registry.ready(), 10, "unreadiness after a worker died")


def test_a_stopped_worker_s_final_metrics_count_once(workers) -> None:
    registry, started = workers
    final = exposition(4, 0, 0, 4)
    # its final report arriving twice (stop() called twice) is not counted twice;
    # the second worker reports after it (one socket: reports are read in order)
    spawn(registry, started, (STARTING, None), (STOPPED, final), (STOPPED, final))
    spawn(registry, started, (STARTING, None), (STOPPED, final))
    wait_until(lambda: values(merge(registry.expositions())).get(CONFIRMED) == 8, 10,
               "the stopped workers' counters")
    assert values(merge(registry.expositions()))[CONFIRMED] == 8


@pytest.mark.parametrize("value, expected", [("1", 1), ("3", 3), (" auto ", None)])
def test_workers_accepts_a_number_or_auto(value: str, expected: int | None) -> None:
    conf = cfg.ConfigOpts()
    options.register(conf)
    conf([])
    conf.set_override("workers", value, group="kafka_bridge")
    assert worker_count(conf) == (expected or len(os.sched_getaffinity(0)))


@pytest.mark.parametrize("value", ["0", "-1", "two", ""])
def test_workers_refuses_anything_else_naming_the_option(value: str) -> None:
    conf = cfg.ConfigOpts()
    options.register(conf)
    conf([])
    conf.set_override("workers", value, group="kafka_bridge")
    with pytest.raises(BridgeConfigError, match=r"\[kafka_bridge\] workers=.*auto"):
        worker_count(conf)
