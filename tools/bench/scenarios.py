"""The measurements, each applied identically to kafka-bridge and what it is compared with.

Throughput is counted from the first arrival to the N-th distinct one
(``probes.span_rate``), so process start-up is left out for both sides;
the seconds from process start are kept beside it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import oslo_messaging
from oslo_config import cfg
from oslo_context.context import RequestContext

from kafka_bridge_devenv.brokers import Brokers
from kafka_bridge_devenv.traffic import BridgeProcess, create_topic, in_threads, publish

from bench import probes

#: oslo.messaging's kafka:// listener drops one record: its constructor polls once
#: (``KafkaListener.__init__``: ``self.poll(5)``) and discards what that returns.
#: Whatever listens through kafka:// is therefore waited for until N - 1.
KAFKA_LISTENER_LOSS = 1


@dataclasses.dataclass
class Bench:
    brokers: Brokers
    directory: Path
    count: int
    runs: int
    latency_seconds: float
    latency_rate: int = 1000
    log: callable = print

    def __post_init__(self) -> None:
        self.rabbit = transport(self.brokers.rabbit_url)
        #: the broker processes whose CPU is measured beside the bridges'
        self.broker_pids = probes.broker_pids(self.brokers)

    @property
    def kafka_url(self) -> str:
        """oslo.messaging's own kafka:// driver on the same cluster."""
        return f"kafka://{self.brokers.kafka_bootstrap}/"

    def close(self) -> None:
        self.rabbit.cleanup()


def transport(url: str) -> oslo_messaging.Transport:
    conf = cfg.ConfigOpts()
    conf([])
    return oslo_messaging.get_notification_transport(conf, url=url)


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _forward_bridge(bench: Bench, topic: str, pool: str, workers: int = 1) -> BridgeProcess:
    return BridgeProcess(bench.directory / name("bridge-fwd"), bench.brokers, {
        "kafka_bridge": {"mode": "forward", "workers": workers},
        "forward": {"topics": topic, "pool": pool, "exchanges": "openstack",
                    "priorities": "info"}})


#: the throughput sides: kafka-bridge with 1 and 2 worker processes, and the naive bridge
BRIDGE, BRIDGE_2W, NAIVE = "kafka-bridge", "kafka-bridge workers=2", "naive"
SIDE_WORKERS = {BRIDGE: 1, BRIDGE_2W: 2}
#: each side's part of the topic, queue and group names
SIDE_SLUGS = {BRIDGE: "kb", BRIDGE_2W: "kb2w", NAIVE: "naive"}


def _drain_cpu(arrived: Callable[[], int], wait_for: Callable[[int, float], None], count: int,
               pids: dict[str, int]) -> tuple[dict[str, float], dict[str, float]]:
    """CPU us per notification of each process tree of pids while a side drains count
    notifications: from the first arrival to the count-th, the window the rate is taken
    over (what arrived by the first poll is not counted); and from the side's readiness,
    start-up work after it included (also the first figure when the window is too short
    to meter). arrived() counts what arrived so far."""
    from_ready = probes.CpuMeter(pids)
    wait_for(1, 300)
    meter = probes.CpuMeter(pids)
    before = arrived()
    wait_for(count, 300)
    after = arrived()
    cpu, cpu_from_ready = meter.stop(), from_ready.stop()
    from_ready_us = _cpu_per_notification(cpu_from_ready, after)
    if after - before < count // 2 or min(cpu.values()) <= 0:
        # too short to meter (--quick's few): most had arrived by the first poll, or a
        # process got no clock tick (10 ms) in it
        return from_ready_us, from_ready_us
    return _cpu_per_notification(cpu, after - before), from_ready_us


def _cpu_per_notification(cpu: dict[str, float], count: int) -> dict[str, float]:
    """CPU seconds per process over a drain, as microseconds per notification."""
    return {process: 1e6 * seconds / count for process, seconds in cpu.items()}


def _drain_log(bench: Bench, what: str, result: dict) -> None:
    cpu = ", ".join(f"{p} {us:,.0f}" for p, us in result["cpu_us"].items())
    bench.log(f"  {what}: {result['rate']:,.0f}/s; CPU us per notification: {cpu}")


def forward(bench: Bench, size: int, sides: tuple[str, ...]) -> dict[str, list[dict]]:
    """Pre-load N in each side's own RabbitMQ queue, start it, until N are appended in Kafka.

    While it drains nothing else reads: the end offsets are polled, the records are read
    afterwards and the rate is taken from their append times. CPU of the bridge's processes
    and of each broker over the drain, from /proc.
    """
    out: dict[str, list[dict]] = {side: [] for side in sides}
    processes = {}
    for side in sides:
        topic, pool = name(f"fwd-{SIDE_SLUGS[side]}-{size}"), name("pool")
        if side == NAIVE:
            process = probes.NaiveProcess(bench.directory / "naive", "forward",
                                          bench.brokers.rabbit_url, bench.kafka_url, topic, pool)
        else:
            process = _forward_bridge(bench, topic, pool, SIDE_WORKERS[side])
        processes[side] = (topic, pool, process)
    try:
        for topic, _, process in processes.values():
            create_topic(bench.brokers, f"{topic}.info", configs=probes.LOG_APPEND_TIME)
            process.start()  # declares its queue, then stops: the queue keeps what comes
            process.terminate()
        for run in range(bench.runs):
            for side, (topic, pool, process) in processes.items():
                publish(bench.rabbit, topic, range(bench.count), text=probes.text_of(size))
                drain = probes.KafkaDrain(bench.brokers, f"{topic}.info")
                try:
                    began = time.monotonic()
                    process.start()
                    pid = process.proc.pid
                    sampler = probes.UsageSampler(pid)
                    cpu_us, cpu_us_from_ready = _drain_cpu(
                        drain.appended, drain.wait_for, bench.count,
                        {"bridge": pid, **bench.broker_pids})
                    first, records = drain.read()
                    while len(first) < bench.count:  # duplicates reached the count first
                        drain.wait_for(records + bench.count - len(first), 300)
                        first, records = drain.read()
                    done = time.monotonic()
                    use = sampler.stop()
                    process.terminate()
                finally:
                    drain.close()
                if len(first) < bench.count:
                    raise RuntimeError(f"{side}: {bench.count - len(first)} notifications "
                                       f"missing from {topic}.info")
                left = probes.queue_depth(bench.brokers.rabbit_url, pool)
                rate, seconds = probes.span_rate(first, bench.count)
                result = {"rate": rate, "seconds": seconds,
                          "seconds_from_process_start": done - began,
                          "records": records, "left_in_queue": left,
                          "cpu_us": cpu_us, "cpu_us_from_ready": cpu_us_from_ready,
                          "cpu_percent": use["cpu_percent"], "rss_mb": use["rss_mb"]}
                out[side].append(result)
                _drain_log(bench, f"forward {size} B {side} run {run + 1}", result)
    finally:
        for _, _, process in processes.values():
            process.close()
    return out


def reverse(bench: Bench, size: int, sides: tuple[str, ...]) -> dict[str, list[dict]]:
    """Pre-load N records in Kafka, start a side, until N are in the RabbitMQ queue an oslo
    listener would read. Nothing consumes that queue while it fills: its depth is polled
    (the rate is taken from those polls) and it is emptied and checked afterwards."""
    out: dict[str, list[dict]] = {side: [] for side in sides}
    for run in range(bench.runs):
        for side in sides:
            topic, group = name(f"rev-{SIDE_SLUGS[side]}-{size}"), name("group")
            probes.preload_kafka(bench.brokers, f"{topic}.info", bench.count, size)
            drain = probes.RabbitDrain(bench.brokers.rabbit_url, topic)
            # Every side starts from the group's committed offset 0. (start_from =
            # earliest would apply in each worker the first time it is assigned a
            # partition: a second worker joining would rewind what the first had done.)
            probes.commit_start(bench.brokers, group, f"{topic}.info")
            if side == NAIVE:
                process = probes.NaiveProcess(bench.directory / "naive", "reverse",
                                              bench.brokers.rabbit_url, bench.kafka_url,
                                              topic, group)
            else:
                process = BridgeProcess(bench.directory / name("bridge-rev"), bench.brokers, {
                    "kafka_bridge": {"mode": "reverse", "workers": SIDE_WORKERS[side]},
                    "reverse": {"kafka_topics": f"{topic}.info", "group": group}})
            expected = bench.count - (KAFKA_LISTENER_LOSS if side == NAIVE else 0)
            try:
                began = time.monotonic()
                process.start()
                cpu_us, cpu_us_from_ready = _drain_cpu(
                    drain.depth, drain.wait_for, expected,
                    {"bridge": process.proc.pid, **bench.broker_pids})
                done = time.monotonic()
                # emptied while the side still runs: if duplicates made up part of the
                # count, the rest still comes
                delivered, messages = drain.take_all()
                process.terminate()
            finally:
                process.close()
                drain.close()
            if len(delivered) < expected:
                raise RuntimeError(f"{side}: {expected - len(delivered)} notifications "
                                   f"missing from {topic}.info in RabbitMQ")
            rate, seconds = drain.rate(expected)
            result = {"rate": rate, "seconds": seconds,
                      "seconds_from_process_start": done - began,
                      "delivered": len(delivered), "messages": messages,
                      "cpu_us": cpu_us, "cpu_us_from_ready": cpu_us_from_ready}
            out[side].append(result)
            _drain_log(bench, f"reverse {size} B {side} run {run + 1}", result)
    return out


#: threads of the paced publisher
PACED_THREADS = 4

#: in the paced-publisher process, its transport per RabbitMQ URL
_PUBLISHER_TRANSPORTS: dict[str, oslo_messaging.Transport] = {}


def _publisher_transport(rabbit_url: str) -> oslo_messaging.Transport:
    if rabbit_url not in _PUBLISHER_TRANSPORTS:
        _PUBLISHER_TRANSPORTS[rabbit_url] = transport(rabbit_url)
    return _PUBLISHER_TRANSPORTS[rabbit_url]


def _connect_publisher(rabbit_url: str) -> None:
    """Open the pooled connections the publishing threads will take, so that no
    notification of a timed run waits for a connection to RabbitMQ."""
    driver = _publisher_transport(rabbit_url)._driver
    with contextlib.ExitStack() as held:
        for _ in range(PACED_THREADS):
            held.enter_context(driver._get_connection())


def paced_publish(rabbit_url: str, topic: str, ids: range, rate: float, size: int) -> float:
    """Send ids at rate/s (payload carries the wall-clock send time); the rate achieved.

    Run in a process of its own (``publisher_process``), so that the publishing
    threads and the measuring consumers do not wait for each other's GIL.
    """
    notifier = oslo_messaging.Notifier(_publisher_transport(rabbit_url),
                                       publisher_id="bench.publisher",
                                       driver="messagingv2", topics=[topic])
    text = probes.text_of(size)
    start = time.monotonic() + 0.2

    def send(offset: int) -> None:
        for i in range(offset, len(ids), PACED_THREADS):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            notifier.info(RequestContext(), "bench.event",
                          {"n": ids[i], "sent": time.time(), "text": text})

    in_threads(send, PACED_THREADS)
    return len(ids) / (time.monotonic() - start)


def publisher_process(rabbit_url: str) -> concurrent.futures.ProcessPoolExecutor:
    """A started process (spawned, not forked from this threaded one) for paced_publish,
    its imports done and its connections open before any timing."""
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    pool.submit(_connect_publisher, rabbit_url).result()
    return pool


def _percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"p50_ms": 1000 * ordered[len(ordered) // 2],
            "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
            "max_ms": 1000 * ordered[-1]}


def latency(bench: Bench, size: int = 1024) -> dict[str, object]:
    """kafka-bridge forward at a fixed offered rate: publish on RabbitMQ to readable in
    Kafka; beside it, in the same run, publish to received by a plain RabbitMQ consumer
    (the floor this machine sets); the bridge's CPU and RSS at idle and under that load."""
    topic, pool = name("lat"), name("pool-lat")
    create_topic(bench.brokers, f"{topic}.info", configs=probes.LOG_APPEND_TIME)
    bridge = _forward_bridge(bench, topic, pool)
    runs, idle, load = [], [], []
    count = int(bench.latency_rate * bench.latency_seconds)
    direct = probes.RabbitTimer(bench.brokers.rabbit_url, topic)  # a copy of each message
    publisher = publisher_process(bench.brokers.rabbit_url)
    try:
        bridge.start()
        time.sleep(2)
        for run in range(bench.runs):
            sampler = probes.UsageSampler(bridge.proc.pid)
            time.sleep(5 if bench.runs > 1 else 2)
            idle.append(sampler.stop())
            timer = probes.KafkaTimer(bench.brokers, f"{topic}.info", from_end=True)
            direct.latencies.clear()
            try:
                sampler = probes.UsageSampler(bridge.proc.pid)
                offered = publisher.submit(paced_publish, bench.brokers.rabbit_url, topic,
                                           range(run * count, (run + 1) * count),
                                           bench.latency_rate, size).result()
                load.append(sampler.stop())
                timer.wait_for(count, 120)
                direct.wait_for((run + 1) * count, 120)
            finally:
                timer.close()
            if len(timer.latencies) < count:
                raise RuntimeError(f"{topic}.info: {count - len(timer.latencies)} records "
                                   f"without the broker's append time")
            result = {"offered_rate": offered, "count": len(timer.latencies),
                      **_percentiles(timer.latencies),
                      "read_here": _percentiles(timer.read_latencies),
                      "rabbitmq_alone": _percentiles(direct.latencies)}
            runs.append(result)
            bench.log(f"  latency run {run + 1}: p50 {result['p50_ms']:.1f} ms, "
                      f"p99 {result['p99_ms']:.1f} ms at {offered:,.0f}/s offered "
                      f"(RabbitMQ alone: p50 {result['rabbitmq_alone']['p50_ms']:.1f} ms, "
                      f"p99 {result['rabbitmq_alone']['p99_ms']:.1f} ms; read here: "
                      f"p50 {result['read_here']['p50_ms']:.1f} ms, "
                      f"p99 {result['read_here']['p99_ms']:.1f} ms)")
        bridge.terminate()
    finally:
        publisher.shutdown()
        direct.close()
        bridge.close()
    return {"runs": runs, "idle": idle, "load": load}


DRIVERS = ("kafka-notify", "kafka", "fake")
#: beside the drivers' publish: kafka-python itself, each send acknowledged before the next
ACKED_CEILING = "kafka-python acked"


def _driver_url(bench: Bench, driver: str) -> str:
    return {"kafka-notify": bench.brokers.kafka_url, "kafka": bench.kafka_url,
            "fake": "fake://"}[driver]


def driver(bench: Bench, size: int, threads: int = 8) -> dict[str, dict[str, list[dict]]]:
    """Notifier publish (N from `threads` threads, then the transport's flush) and listener
    consumption per driver. The Kafka drivers consume the same pre-loaded records (N, written
    as kafka:// writes them) in a new group positioned at offset 0, so both read identical
    record batches; fake:// consumes what its Notifier published in memory. Beside them,
    kafka-python alone sending as many records, each acknowledged before the thread's next."""
    out = {d: {"publish": [], "consume": []} for d in DRIVERS}
    out[ACKED_CEILING] = {"publish": []}
    for run in range(bench.runs):
        preloaded = name(f"drv-preload-{size}")
        probes.preload_kafka(bench.brokers, f"{preloaded}.info", bench.count, size)
        for drv in DRIVERS:
            url = _driver_url(bench, drv)
            topic = name(f"drv-{drv}-{size}")
            if drv != "fake":
                create_topic(bench.brokers, f"{topic}.info")
            sender = transport(url)
            notifier = oslo_messaging.Notifier(sender, publisher_id="bench.publisher",
                                               driver="messagingv2", topics=[topic])
            # warm-up (connection, metadata) outside the timing
            notifier.info(RequestContext(), "bench.event",
                          {"n": bench.count, "text": probes.text_of(size)})
            began = time.monotonic()
            publish(sender, topic, range(bench.count), threads=threads,
                    text=probes.text_of(size))
            if drv != "fake":
                sender.cleanup()  # kafka:// only flushes its producer here
            published = time.monotonic() - began
            out[drv]["publish"].append({"rate": bench.count / published,
                                        "seconds": published})
            rate, seconds = _consume(bench, drv, sender if drv == "fake" else None,
                                     topic if drv == "fake" else preloaded)
            out[drv]["consume"].append({"rate": rate, "seconds": seconds})
            bench.log(f"  driver {size} B {drv} run {run + 1}: publish "
                      f"{bench.count / published:,.0f}/s, consume {rate:,.0f}/s")
        ceiling = probes.acked_send_rate(bench.brokers, name(f"drv-acked-{size}") + ".info",
                                         bench.count, size, threads)
        out[ACKED_CEILING]["publish"].append({"rate": ceiling})
        bench.log(f"  driver {size} B kafka-python acknowledged sends run {run + 1}: "
                  f"{ceiling:,.0f}/s")
    return out


def _consume(bench: Bench, drv: str, receiver: oslo_messaging.Transport | None,
             topic: str) -> tuple[float, float]:
    """(rate, seconds) of a new listener reading topic's N notifications (fake://: N + 1,
    its warm-up included)."""
    group = name("group")
    if receiver is None:
        receiver = transport(_driver_url(bench, drv))
        probes.commit_start(bench.brokers, group, f"{topic}.info")
        expected = bench.count - (KAFKA_LISTENER_LOSS if drv == "kafka" else 0)
    else:
        expected = bench.count + 1
    listener = probes.ListenerTimer(receiver, topic, pool=group)
    try:
        listener.start()
        listener.wait_for(expected, 300)
    finally:
        listener.close()
        receiver.cleanup()
    return probes.span_rate(listener.first, expected)


def listener_ready(bench: Bench) -> dict[str, list[dict]]:
    """Seconds from creating a listener to the point from which it receives everything:
    the later of start() returning and the first probe of the fully delivered tail
    (probes go out every 20 ms from the moment the listener is created)."""
    out: dict[str, list[dict]] = {"kafka-notify": [], "kafka": []}
    probe_transport = transport(bench.brokers.kafka_url)
    try:
        for run in range(bench.runs):
            for drv in out:
                topic, group = name(f"ready-{drv}"), name("group")
                create_topic(bench.brokers, f"{topic}.info")
                notifier = oslo_messaging.Notifier(probe_transport, driver="messagingv2",
                                                   publisher_id="bench.probe",
                                                   topics=[topic])
                notifier.info(RequestContext(), "bench.warmup", {"n": -1})
                sent: list[float] = []
                stop = threading.Event()

                def probe() -> None:
                    while not stop.is_set():
                        sent.append(time.monotonic())
                        notifier.info(RequestContext(), "bench.probe", {"n": len(sent) - 1})
                        stop.wait(0.02)

                receiver = transport(_driver_url(bench, drv))
                t0 = time.monotonic()
                prober = threading.Thread(target=probe)
                prober.start()
                listener = probes.ListenerTimer(receiver, topic, pool=group)
                try:
                    listener.start()
                    started = time.monotonic()
                    deadline = started + 30
                    while time.monotonic() < deadline and not any(
                            n >= 0 for n in listener.first):
                        time.sleep(0.01)
                    time.sleep(1.0)
                    stop.set()
                    prober.join()
                    time.sleep(1.5)
                finally:
                    stop.set()
                    listener.close()
                    receiver.cleanup()
                got = set(listener.first)
                first_of_tail = len(sent)
                while first_of_tail > 0 and (first_of_tail - 1) in got:
                    first_of_tail -= 1
                ready_at = sent[first_of_tail] if first_of_tail < len(sent) else float("inf")
                ready = max(started, ready_at) - t0
                out[drv].append({"seconds": ready, "start_returned": started - t0,
                                 "probes_sent": len(sent), "probes_lost": first_of_tail})
                bench.log(f"  listener ready {drv} run {run + 1}: {ready:.2f}s "
                          f"(start() returned after {started - t0:.2f}s)")
    finally:
        probe_transport.cleanup()
    return out
