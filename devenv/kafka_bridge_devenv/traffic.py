"""Real traffic for the demo and the tests: the daemon in a subprocess, and both sides.

``BridgeProcess`` writes a configuration file, starts the daemon in its own
process group (the parent and its ``[kafka_bridge] workers`` worker
processes), waits for the parent's log line saying every worker is running,
and stops it with SIGTERM or SIGKILL (the whole daemon, or one worker).
"""

from __future__ import annotations

import ast
import json
import os
import signal
import socket
import subprocess
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import oslo_messaging
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient
from kafka.structs import TopicPartition
from oslo_config import cfg
from oslo_context.context import RequestContext
from prometheus_client.parser import text_string_to_metric_families

from kafka_bridge_devenv.brokers import Brokers
from kafka_bridge_devenv.processes import free_port

#: logged by the parent once every worker is running
READY_LINE = "kafka-bridge ready: "
#: logged by each worker once both sides are connected
RUNNING_LINE = "kafka-bridge running"
#: logged by each worker when it stops, with its counters
STOPPED_LINE = "kafka-bridge stopped: "
#: in the process title of a worker (cotyledon: "<program>: ServiceWrapper worker(N)")
WORKER_TITLE = b"worker("


def wait_until(condition: Callable[[], bool], timeout: float,
               what: str | Callable[[], str], interval: float = 0.05) -> None:
    """Poll condition; AssertionError naming what did not happen within timeout.

    what may be a callable, for a description of the state at the timeout.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {described}")
        time.sleep(interval)


class BridgeProcess:
    """One kafka-bridge daemon with the given configuration sections."""

    def __init__(self, directory: Path, brokers: Brokers,
                 sections: Mapping[str, Mapping[str, object]],
                 python_warnings: str | None = "ignore",
                 env: Mapping[str, str] | None = None) -> None:
        """python_warnings: the daemon's PYTHONWARNINGS; None for Python's defaults
        (what an operator's process shows). env: variables added to the daemon's
        environment (e.g. NOTIFY_SOCKET)."""
        directory.mkdir(parents=True, exist_ok=True)
        self._python_warnings = python_warnings
        self._env = dict(env or {})
        self.config = directory / "kafka-bridge.conf"
        self.log = directory / "kafka-bridge.log"
        self.metrics_port = free_port()
        merged: dict[str, dict[str, object]] = {
            "DEFAULT": {"transport_url": brokers.rabbit_url},
            "kafka_bridge": {"kafka_url": brokers.kafka_url},
            "metrics": {"port": self.metrics_port}}
        for section, values in sections.items():
            merged.setdefault(section, {}).update(values)
        self.config.write_text("".join(
            f"[{section}]\n" + "".join(f"{k} = {_ini(v)}\n" for k, v in values.items())
            for section, values in merged.items()))
        self.proc: subprocess.Popen | None = None
        self._log_offset = 0

    def start_without_waiting(self) -> BridgeProcess:
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
        if self._python_warnings is not None:
            env["PYTHONWARNINGS"] = self._python_warnings
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kafka_bridge.daemon.cli", "--config-file",
                 str(self.config)], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, env={**env, **self._env})
        return self

    def start(self, ready_timeout: float = 60) -> BridgeProcess:
        proc = self.start_without_waiting().proc
        assert proc is not None
        wait_until(lambda: READY_LINE in self.output() or proc.poll() is not None,
                   ready_timeout, "the bridge to report that every worker is running")
        assert proc.poll() is None, f"kafka-bridge exited:\n{self.output()[-4000:]}"
        return self

    def http_get(self, path: str) -> tuple[int, str]:
        """(status, body) of GET path on the bridge's metrics and health port."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}",
                                        timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """One sample's value from /metrics (0 if absent)."""
        _, text = self.http_get("/metrics")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v
                                               for k, v in labels.items()):
                    return sample.value
        return 0.0

    def output(self) -> str:
        """What this run of the bridge logged."""
        try:
            with open(self.log, "rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def terminate(self, timeout: float = 30) -> float:
        """SIGTERM; return the seconds until the whole bridge exited."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        return time.monotonic() - began

    def kill(self) -> None:
        """SIGKILL the bridge's whole process group (the parent and its workers)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def worker_pids(self) -> list[int]:
        """The worker processes running now (children of the parent, by process title)."""
        assert self.proc is not None
        pids = []
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                try:
                    title = Path(f"/proc/{child}/cmdline").read_bytes()
                except OSError:
                    continue
                if WORKER_TITLE in title:
                    pids.append(child)
        return sorted(pids)

    def kill_worker(self, pid: int) -> None:
        """SIGKILL one worker; the parent starts another in its place."""
        assert pid in self.worker_pids(), f"{pid} is not a worker of this bridge"
        os.kill(pid, signal.SIGKILL)

    def worker_stats(self) -> list[dict[str, dict[str, object]]]:
        """The per-direction counters each worker of this run logged when it stopped."""
        lines = [line for line in self.output().splitlines() if STOPPED_LINE in line]
        return [ast.literal_eval(line.split(STOPPED_LINE, 1)[1]) for line in lines]

    def stats(self) -> dict[str, dict[str, object]]:
        """The per-direction counters the last worker to stop logged (with one worker:
        the bridge's)."""
        reports = self.worker_stats()
        assert reports, f"no stop report in the log:\n{self.output()[-3000:]}"
        return reports[-1]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


def _ini(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def local_transport(brokers: Brokers) -> oslo_messaging.Transport:
    conf = cfg.ConfigOpts()
    conf([])
    return oslo_messaging.get_notification_transport(conf, url=brokers.rabbit_url)


def kafka_transport(brokers: Brokers) -> oslo_messaging.Transport:
    conf = cfg.ConfigOpts()
    conf([])
    return oslo_messaging.get_notification_transport(conf, url=brokers.kafka_url)


def publish(transport: oslo_messaging.Transport, topic: str, ids: Iterable[int],
            threads: int = 8, text: str = "x" * 900) -> None:
    """Send notifications {"n": id, "text": text} on topic from several threads."""
    notifier = oslo_messaging.Notifier(transport, publisher_id="test.publisher",
                                       driver="messagingv2", topics=[topic])
    chunks: list[list[int]] = [[] for _ in range(threads)]
    for i, n in enumerate(ids):
        chunks[i % threads].append(n)

    def send(k: int) -> None:
        for n in chunks[k]:
            notifier.info(RequestContext(request_id=f"req-{n}"), "test.event",
                          {"n": n, "text": text})

    in_threads(send, threads)


def in_threads(work: Callable[[int], None], threads: int) -> None:
    """Run work(0) ... work(threads - 1), each on a thread of its own; return when all did."""
    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def create_topic(brokers: Brokers, topic: str, partitions: int = 3,
                 configs: dict[str, str] | None = None) -> int:
    """Create topic (with these topic configs) if missing, wait for its leaders;
    return its partition count."""
    admin = KafkaAdminClient(**brokers.kafka_client_config())
    try:
        admin.create_topics({topic: {"num_partitions": partitions, "configs": configs or {}}},
                            raise_errors=False)
        admin.wait_for_topics([topic])
        return len(admin.describe_topics([topic])[0]["partitions"])
    finally:
        admin.close()


class KafkaCollector:
    """Reads a topic from the beginning in the background and keeps every record.

    Partitions are assigned directly (no consumer group), so no rebalance can
    delay or repeat what it reads.
    """

    def __init__(self, brokers: Brokers, topic: str) -> None:
        partitions = create_topic(brokers, topic)
        self.records: list = []
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(auto_offset_reset="earliest", enable_auto_commit=False,
                                       **brokers.kafka_client_config())
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        self._consumer.assign(assigned)
        self._consumer.seek_to_beginning(*assigned)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for records in self._consumer.poll(timeout_ms=100).values():
                self.records.extend(records)

    def notifications(self) -> list[dict]:
        """The oslo notifications read so far (decoded from the envelope)."""
        return [json.loads(json.loads(r.value)["oslo.message"]) for r in list(self.records)]

    def ids(self) -> list[int]:
        return [m["payload"]["n"] for m in self.notifications()]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()


class LocalCollector:
    """An oslo notification listener on the local transport keeping what it receives."""

    def __init__(self, transport: oslo_messaging.Transport, topic: str,
                 pool: str | None = None) -> None:
        self.received: list[tuple[dict, dict]] = []
        self._lock = threading.Lock()
        self._listener = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic=topic)], [self], executor="threading",
            pool=pool)
        self._listener.start()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self._lock:
            self.received.append((ctxt, payload))

    def ids(self) -> list[int]:
        with self._lock:
            return [payload["n"] for _, payload in self.received]

    def close(self) -> None:
        self._listener.stop()
        self._listener.wait()


class TcpProxy:
    """A TCP relay on 127.0.0.1 whose connections a test can cut (a network fault).

    Clients connect to ``port``; each connection is relayed to target.
    ``cut()`` resets every open connection; new ones are accepted again.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self.accepted = 0
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._relay, args=(source, sink), daemon=True).start()

    @staticmethod
    def _relay(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> int:
        """Reset every open connection; return how many were cut."""
        with self._lock:
            cut, self._open = self._open, []
        for sock in cut:
            # SO_LINGER 0: close sends a reset, as a dropped link or a broker crash would
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        return len(cut) // 2

    def close(self) -> None:
        self._listener.close()
        self.cut()
