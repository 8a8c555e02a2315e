"""What the scenarios measure with: timed collectors on both sides, pre-loading,
queue depths, consumer-group offsets, the naive bridge process and /proc usage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

import amqp
import oslo_messaging
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from kafka_bridge_devenv.brokers import Brokers
from kafka_bridge_devenv.traffic import create_topic, in_threads, wait_until
from kafka_bridge.kafka.envelope import encode

NAIVE_SCRIPT = Path(__file__).with_name("naive.py")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def text_of(size: int) -> str:
    """The payload padding of a notification of about size bytes of payload."""
    return "x" * max(0, size - 40)


#: topic configuration under which the broker stamps each record with its append time
LOG_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
#: ConsumerRecord.timestamp_type of such a record
LOG_APPEND_TIME_TYPE = 1


class KafkaTimer:
    """Reads every partition of a topic (no group) and timestamps each record.

    Keeps, per distinct notification id ``payload.n``, the first receive time
    (monotonic) and, when ``payload.sent`` (wall clock) is set, two latencies:
    ``latencies`` to the moment the record became readable in Kafka (the
    broker's append time, on topics created with LOG_APPEND_TIME) and
    ``read_latencies`` to its arrival here, which adds this process's own
    fetch and scheduling delays.
    """

    def __init__(self, brokers: Brokers, topic: str, from_end: bool = False) -> None:
        create_topic(brokers, topic)
        self._consumer = KafkaConsumer(enable_auto_commit=False, group_id=None,
                                       fetch_max_wait_ms=100,
                                       **brokers.kafka_client_config())
        partitions = [TopicPartition(topic, p)
                      for p in sorted(self._consumer.partitions_for_topic(topic) or [0])]
        self._consumer.assign(partitions)
        if from_end:
            self._consumer.seek_to_end(*partitions)
        else:
            self._consumer.seek_to_beginning(*partitions)
        for tp in partitions:  # resolve positions now, before anything is sent
            self._consumer.position(tp)
        self.first: dict[int, float] = {}
        self.latencies: list[float] = []
        self.read_latencies: list[float] = []
        self.records = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            batches = self._consumer.poll(timeout_ms=100)
            now, wall = time.monotonic(), time.time()
            for records in batches.values():
                for record in records:
                    self.records += 1
                    payload = json.loads(json.loads(record.value)["oslo.message"])["payload"]
                    n = payload["n"]
                    if n not in self.first:
                        self.first[n] = now
                        if "sent" in payload:
                            self.read_latencies.append(wall - payload["sent"])
                            if record.timestamp_type == LOG_APPEND_TIME_TYPE:
                                self.latencies.append(record.timestamp / 1000 - payload["sent"])

    def wait_for(self, count: int, timeout: float) -> None:
        wait_until(lambda: len(self.first) >= count, timeout,
                   lambda: f"{count} distinct notifications in Kafka (have {len(self.first)})",
                   interval=0.01)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()


class ListenerTimer:
    """An oslo notification listener (threading executor) timestamping what it gets."""

    def __init__(self, transport: oslo_messaging.Transport, topic: str,
                 pool: str | None = None) -> None:
        self.first: dict[int, float] = {}
        self._lock = threading.Lock()
        self.listener = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic=topic)], [self], executor="threading",
            pool=pool)

    def start(self) -> ListenerTimer:
        self.listener.start()
        return self

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        now = time.monotonic()
        with self._lock:
            self.first.setdefault(payload["n"], now)

    def wait_for(self, count: int, timeout: float) -> None:
        wait_until(lambda: len(self.first) >= count, timeout,
                   lambda: f"{count} distinct notifications received "
                           f"(have {len(self.first)})", interval=0.01)

    def close(self) -> None:
        self.listener.stop()
        self.listener.wait()


class RabbitTimer:
    """Timestamps notifications arriving in a RabbitMQ queue, read with plain py-amqp.

    The receiving end of the reverse measurements: an oslo listener costs more CPU per
    message than the bridges it would measure. It declares the queue ``<topic>.info``
    bound to the ``openstack`` exchange as oslo.messaging declares a notification
    listener's default queue, and acknowledges every message.
    """

    def __init__(self, rabbit_url: str, topic: str) -> None:
        self.first: dict[int, float] = {}
        #: seconds from the payload's "sent" wall-clock time to arrival, where present
        self.latencies: list[float] = []
        url = urlsplit(rabbit_url)
        self._connection = amqp.Connection(
            f"{url.hostname}:{url.port}", userid=unquote(url.username),
            password=unquote(url.password), virtual_host="/")
        self._connection.connect()
        channel = self._connection.channel()
        queue = f"{topic}.info"
        channel.exchange_declare("openstack", "topic", durable=False, auto_delete=False)
        channel.queue_declare(queue, durable=False, auto_delete=False)
        channel.queue_bind(queue, "openstack", queue)
        channel.basic_consume(queue, callback=self._received, no_ack=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _received(self, message: amqp.Message) -> None:
        now, wall = time.monotonic(), time.time()
        envelope = json.loads(message.body)
        body = json.loads(envelope["oslo.message"]) if "oslo.message" in envelope else envelope
        self.first.setdefault(body["payload"]["n"], now)
        if "sent" in body["payload"]:
            self.latencies.append(wall - body["payload"]["sent"])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._connection.drain_events(timeout=0.1)
            except TimeoutError:
                pass

    def wait_for(self, count: int, timeout: float) -> None:
        wait_until(lambda: len(self.first) >= count, timeout,
                   lambda: f"{count} distinct notifications in RabbitMQ "
                           f"(have {len(self.first)})", interval=0.01)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._connection.close()


def span_rate(first: dict[int, float], count: int) -> tuple[float, float]:
    """(notifications/s, seconds) between the first arrival and the count-th distinct one.

    What arrived together with the first (one poll, one batch) is not counted, so
    batching neither helps nor hurts: rate = arrivals after t_first / (t_last - t_first).
    """
    times = sorted(first.values())[:count]
    elapsed = times[-1] - times[0]
    after_first = sum(1 for t in times if t > times[0])
    return (after_first / elapsed if elapsed > 0 else float("nan")), elapsed


def notification_value(n: int, text: str) -> bytes:
    """A notification record's value, as kafka:// writes it."""
    message = {"message_id": str(uuid.uuid4()), "publisher_id": "bench.publisher",
               "event_type": "bench.event", "priority": "INFO",
               "payload": {"n": n, "text": text},
               "timestamp": "2026-01-01 00:00:00.000000"}
    return encode({"request_id": f"req-{n}"}, message)


def preload_kafka(brokers: Brokers, topic: str, count: int, size: int) -> None:
    """Write count notification records (as kafka:// writes them) to topic, acks=all."""
    create_topic(brokers, topic)
    producer = KafkaProducer(acks="all", linger_ms=5, batch_size=262144,
                             **brokers.kafka_client_config())
    text = text_of(size)
    try:
        futures = [producer.send(topic, notification_value(n, text)) for n in range(count)]
        producer.flush(60)
        for future in futures:
            future.get(1)
    finally:
        producer.close(10)


def acked_send_rate(brokers: Brokers, topic: str, count: int, size: int,
                    threads: int) -> float:
    """Records/s of kafka-python alone when each of `threads` threads sends one record and
    waits for its acknowledgement (acks=all, idempotent, linger 0) before the next: the
    ceiling of any acknowledged send() on kafka-python at that concurrency."""
    create_topic(brokers, topic)
    producer = KafkaProducer(acks="all", enable_idempotence=True, linger_ms=0,
                             **brokers.kafka_client_config())
    values = [notification_value(n, text_of(size)) for n in range(count)]
    try:
        producer.send(topic, values[0]).get(10)  # connection and metadata, outside the timing

        def send(offset: int) -> None:
            for value in values[offset::threads]:
                producer.send(topic, value).get(10)

        began = time.monotonic()
        in_threads(send, threads)
        return count / (time.monotonic() - began)
    finally:
        producer.close(10)


def commit_start(brokers: Brokers, group: str, topic: str) -> None:
    """Commit offset 0 of every partition of topic for group."""
    consumer = KafkaConsumer(group_id=group, enable_auto_commit=False,
                             **brokers.kafka_client_config())
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(0, "", -1)
                         for p in partitions})
    finally:
        consumer.close()


def queue_depth(rabbit_url: str, queue: str) -> int:
    """Messages ready in a RabbitMQ queue (unacknowledged ones are not counted)."""
    url = urlsplit(rabbit_url)
    connection = amqp.Connection(f"{url.hostname}:{url.port}", userid=unquote(url.username),
                                 password=unquote(url.password), virtual_host="/")
    connection.connect()
    try:
        channel = connection.channel()
        return channel.queue_declare(queue, passive=True).message_count
    finally:
        connection.close()


class NaiveProcess:
    """tools/bench/naive.py in its own process group."""

    def __init__(self, directory: Path, direction: str, rabbit_url: str, kafka_url: str,
                 topic: str, pool: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.log = directory / f"naive-{direction}.log"
        self.argv = [sys.executable, str(NAIVE_SCRIPT), direction, "--rabbit-url", rabbit_url,
                     "--kafka-url", kafka_url, "--topic", topic, "--pool", pool]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> NaiveProcess:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env=dict(os.environ, PYTHONWARNINGS="ignore"))

        def output() -> str:
            with open(self.log, "rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        wait_until(lambda: "naive bridge READY" in output() or self.proc.poll() is not None,
                   timeout, "the naive bridge to start")
        assert self.proc.poll() is None, f"naive bridge exited:\n{output()[-3000:]}"
        return self

    def terminate(self, timeout: float = 30) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(10)


def process_tree(pid: int) -> list[int]:
    """pid and its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return found


def usage(pid: int) -> tuple[int, float]:
    """(RSS bytes, CPU seconds) of pid and its descendants."""
    rss, cpu = 0, 0.0
    for current in process_tree(pid):
        try:
            stat = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        cpu += (int(stat[11]) + int(stat[12])) / CLOCK_TICKS
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1]) * 1024
    return rss, cpu


class UsageSampler:
    """Samples usage(pid) every interval; CPU % of one core and peak RSS over the window."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self._pid = pid
        self._interval = interval
        self._stop = threading.Event()
        self.peak_rss = 0
        self._began = time.monotonic()
        _, self._cpu0 = usage(pid)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            rss, _ = usage(self._pid)
            self.peak_rss = max(self.peak_rss, rss)
            if self._stop.wait(self._interval):
                return

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(5)
        rss, cpu = usage(self._pid)
        self.peak_rss = max(self.peak_rss, rss)
        wall = time.monotonic() - self._began
        return {"cpu_percent": 100.0 * (cpu - self._cpu0) / wall,
                "rss_mb": self.peak_rss / 2**20, "seconds": wall}


def listening_pid(port: int) -> int | None:
    """The process listening on TCP port (any address), from /proc; None if not found."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def broker_pids(brokers: Brokers) -> dict[str, int]:
    """{"rabbitmq": pid, "kafka": pid} of the broker processes serving brokers (found by
    their listening ports, so brokers started elsewhere are found too); missing if not
    on this machine."""
    ports = {"rabbitmq": urlsplit(brokers.rabbit_url).port,
             "kafka": int(brokers.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])}
    found = {name: listening_pid(port) for name, port in ports.items() if port}
    return {name: pid for name, pid in found.items() if pid is not None}


class CpuMeter:
    """CPU seconds used by named process trees (a process and its descendants) between
    construction and stop(), from /proc."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._began = {name: usage(pid)[1] for name, pid in pids.items()}

    def stop(self) -> dict[str, float]:
        return {name: usage(pid)[1] - self._began[name] for name, pid in self._pids.items()}


class KafkaDrain:
    """Waits, without reading records, until a topic's end offsets advanced by count since
    construction (ListOffsets polled: no consumer competes for the CPU while the bridge
    runs); then reads those records and takes the rate from the broker's append times
    (topics created with LOG_APPEND_TIME)."""

    def __init__(self, brokers: Brokers, topic: str) -> None:
        self._consumer = KafkaConsumer(enable_auto_commit=False, group_id=None,
                                       **brokers.kafka_client_config())
        self._partitions = [TopicPartition(topic, p) for p in
                            sorted(self._consumer.partitions_for_topic(topic) or [0])]
        self._start = self._consumer.end_offsets(self._partitions)

    def appended(self) -> int:
        end = self._consumer.end_offsets(self._partitions)
        return sum(end[tp] - self._start[tp] for tp in self._partitions)

    def wait_for(self, count: int, timeout: float) -> None:
        wait_until(lambda: self.appended() >= count, timeout,
                   lambda: f"{count} records appended (have {self.appended()})",
                   interval=0.05)

    def read(self) -> tuple[dict[int, float], int]:
        """({payload.n: append time of its first record}, records read) of what was
        appended since construction."""
        self._consumer.assign(self._partitions)
        for tp in self._partitions:
            self._consumer.seek(tp, self._start[tp])
        end = self._consumer.end_offsets(self._partitions)
        first: dict[int, float] = {}
        records = 0
        deadline = time.monotonic() + 120
        while any(self._consumer.position(tp) < end[tp] for tp in self._partitions):
            assert time.monotonic() < deadline, "reading the appended records timed out"
            for batch in self._consumer.poll(timeout_ms=200).values():
                for record in batch:
                    records += 1
                    assert record.timestamp_type == LOG_APPEND_TIME_TYPE, \
                        "the topic was not created with LOG_APPEND_TIME"
                    n = json.loads(json.loads(record.value)["oslo.message"])["payload"]["n"]
                    first.setdefault(n, record.timestamp / 1000)
        return first, records

    def close(self) -> None:
        self._consumer.close()


class RabbitDrain:
    """Declares a notification queue (as RabbitTimer does) with no consumer and times its
    depth while a bridge fills it (polled: no consumer competes for the CPU); then
    empties it and returns the distinct notification ids."""

    def __init__(self, rabbit_url: str, topic: str) -> None:
        url = urlsplit(rabbit_url)
        self._connection = amqp.Connection(
            f"{url.hostname}:{url.port}", userid=unquote(url.username),
            password=unquote(url.password), virtual_host="/")
        self._connection.connect()
        self._channel = self._connection.channel()
        self._queue = f"{topic}.info"
        self._channel.exchange_declare("openstack", "topic", durable=False, auto_delete=False)
        self._channel.queue_declare(self._queue, durable=False, auto_delete=False)
        self._channel.queue_bind(self._queue, "openstack", self._queue)
        self._channel.queue_purge(self._queue)
        #: (monotonic time, depth) of each poll
        self.samples: list[tuple[float, int]] = []

    def depth(self) -> int:
        depth = self._channel.queue_declare(self._queue, passive=True).message_count
        self.samples.append((time.monotonic(), depth))
        return depth

    def wait_for(self, count: int, timeout: float) -> None:
        wait_until(lambda: self.depth() >= count, timeout,
                   lambda: f"{count} messages in {self._queue} (have {self.samples[-1][1]})",
                   interval=0.01)

    def rate(self, count: int) -> tuple[float, float]:
        """(messages/s, seconds) from the first poll that saw the queue non-empty to the
        one that saw count (what was there at the first is not counted)."""
        t0, d0 = next((t, d) for t, d in self.samples if d > 0)
        t1 = next(t for t, d in self.samples if d >= count)
        return ((count - d0) / (t1 - t0) if t1 > t0 else float("nan")), t1 - t0

    def take_all(self, quiet: float = 1.0) -> tuple[set[int], int]:
        """Empty the queue (until nothing came for quiet seconds); the distinct payload.n
        values it held, and how many messages."""
        ids: set[int] = set()
        messages = 0

        def received(message: amqp.Message) -> None:
            nonlocal messages
            messages += 1
            envelope = json.loads(message.body)
            body = json.loads(envelope["oslo.message"]) if "oslo.message" in envelope \
                else envelope
            ids.add(body["payload"]["n"])

        tag = self._channel.basic_consume(self._queue, callback=received, no_ack=True)
        try:
            while True:
                self._connection.drain_events(timeout=quiet)
        except TimeoutError:
            pass
        self._channel.basic_cancel(tag)
        return ids, messages

    def close(self) -> None:
        self._connection.close()
