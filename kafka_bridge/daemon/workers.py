"""The daemon's worker processes as the parent sees them: what each reported, alive or not.

oslo.service's launcher (cotyledon on the threading backend) forks the
workers from the parent process and restarts any that exits. Each worker
reports to the parent over a Unix datagram socket inherited across the fork:
the port of its private metrics endpoint when it starts, ``running`` once
both sides are connected, and its final metrics when it stops. The parent
answers for the whole daemon: one metrics and health endpoint (every
worker's counters summed, see ``metrics.DaemonMetrics``), readiness (every
configured worker running and ready), and one systemd ``READY=1``, sent when
all workers are running for the first time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from kafka_bridge.daemon.metrics import compact

LOG = logging.getLogger(__name__)

#: largest report (a stopping worker's final metrics); the socket buffers are sized for it
MAX_REPORT = 1 << 20

#: gone workers' final metrics kept apart before they are summed into one
RETIRED_KEPT = 8

#: seconds the parent waits for a worker's endpoint before counting it unanswered
SCRAPE_TIMEOUT = 3.0

STARTING, RUNNING, STOPPED = "starting", "running", "stopped"


class WorkerReporter:
    """A worker's end of the channel: tells the parent how the worker is doing.

    Reports never block and never raise: a parent that is gone cannot be told.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock

    def report(self, state: str, port: int | None = None, metrics: str | None = None) -> None:
        """Send this worker's state (STARTING, RUNNING or STOPPED with its final metrics)."""
        message = json.dumps({"pid": os.getpid(), "state": state, "port": port,
                              "metrics": metrics}).encode()
        try:
            self._socket.send(message)
        except OSError as exc:
            LOG.warning("cannot report %s to the parent process: %s", state, exc)


@dataclasses.dataclass
class Worker:
    """What the parent knows of one worker process."""

    pid: int
    state: str = STARTING
    #: its private metrics endpoint on 127.0.0.1 (None without metrics)
    port: int | None = None
    #: its metrics exposition as last read (the final one once stopped)
    last_metrics: str = ""

    def alive(self) -> bool:
        """The process exists and is not a zombie."""
        try:
            with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (OSError, IndexError):
            return False

    def get(self, path: str) -> tuple[int, str] | None:
        """(status, body) of GET path on its endpoint; None if it does not answer."""
        if self.port is None:
            return None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                        timeout=SCRAPE_TIMEOUT) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            return None


class WorkerRegistry:
    """The parent's end: the workers' reports, readiness, and the systemd notification.

    Create it before the launcher forks the workers; ``start()`` in the
    parent, ``reporter()`` is what each worker reports with.
    """

    def __init__(self, expected: int, notify_socket: str | None = None,
                 on_all_running: Callable[[], None] | None = None) -> None:
        """expected: the configured number of workers. notify_socket: systemd's
        NOTIFY_SOCKET, told READY=1 once every worker is running."""
        self.expected = expected
        self._notify_socket = notify_socket
        self._on_all_running = on_all_running
        self._parent_end, self._worker_end = socket.socketpair(socket.AF_UNIX,
                                                               socket.SOCK_DGRAM)
        for end in (self._parent_end, self._worker_end):
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_REPORT)
            end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, MAX_REPORT)
        self._workers: dict[int, Worker] = {}
        #: the final metrics of the workers that are gone, oldest first
        self._retired: list[str] = []
        self._lock = threading.Lock()
        self._all_running_once = False
        self._thread = threading.Thread(target=self._receive, name="kafka-bridge-workers",
                                        daemon=True)
        os.register_at_fork(after_in_child=self._forget_in_child)

    def reporter(self) -> WorkerReporter:
        """The reporter a worker process uses (its end survives the fork)."""
        return WorkerReporter(self._worker_end)

    def start(self) -> None:
        """Receive the workers' reports from a daemon thread of the parent."""
        self._thread.start()

    def _forget_in_child(self) -> None:
        # A forked worker reports; it never reads the parent's end.
        self._parent_end.close()

    def _receive(self) -> None:
        while True:
            try:
                data = self._parent_end.recv(MAX_REPORT)
            except OSError:
                return  # closed
            try:
                report = json.loads(data)
                self._update(int(report["pid"]), str(report["state"]), report.get("port"),
                             report.get("metrics"))
            except (ValueError, KeyError, TypeError) as exc:
                LOG.warning("ignoring a malformed worker report: %s", exc)

    def _update(self, pid: int, state: str, port: int | None, metrics: str | None) -> None:
        with self._lock:
            if state == STOPPED:
                worker = self._workers.pop(pid, None)
                if worker is not None:  # not already retired (stop() may run twice)
                    self._retire(metrics if metrics is not None else worker.last_metrics)
                return
            worker = self._workers.setdefault(pid, Worker(pid))
            worker.state = state
            worker.port = port if port is not None else worker.port
            everyone = (not self._all_running_once
                        and sum(w.state == RUNNING and w.alive()
                                for w in self._workers.values()) >= self.expected)
            if everyone:
                self._all_running_once = True
        if everyone:
            self._announce_ready()

    def _announce_ready(self) -> None:
        LOG.info("kafka-bridge ready: %d worker(s) running", self.expected)
        if self._notify_socket:
            notify_systemd(self._notify_socket, b"READY=1")
        if self._on_all_running is not None:
            self._on_all_running()

    def _live(self) -> list[Worker]:
        """The workers alive now; a worker that died without reporting (SIGKILL, a crash)
        is retired with the metrics last read from it."""
        with self._lock:
            workers = list(self._workers.values())
        live = []
        for worker in workers:
            if worker.alive():
                live.append(worker)
                continue
            with self._lock:
                if self._workers.pop(worker.pid, None) is not None:
                    self._retire(worker.last_metrics)
        return live

    def _retire(self, metrics: str) -> None:
        # Called with the lock held. Restarts add up: keep their sum, not every one.
        self._retired.append(metrics)
        if len(self._retired) > RETIRED_KEPT:
            self._retired = [compact(self._retired)]

    def running(self) -> int:
        """How many workers are alive and running."""
        return sum(worker.state == RUNNING for worker in self._live())

    def ready(self) -> bool:
        """Every configured worker running and ready (its /readyz answers 200)."""
        live = [worker for worker in self._live() if worker.state == RUNNING]
        if len(live) < self.expected:
            return False
        return all((worker.get("/readyz") or (503, ""))[0] == 200 for worker in live
                   if worker.port is not None)

    def expositions(self) -> Iterator[tuple[str, bool]]:
        """Every worker's metrics as (text, retired): the live ones read now (or as last
        read, if one does not answer), then the final metrics of those that are gone."""
        for worker in self._live():
            answer = worker.get("/metrics")
            if answer is not None and answer[0] == 200:
                worker.last_metrics = answer[1]
            yield worker.last_metrics, False
        with self._lock:
            retired = list(self._retired)
        for text in retired:
            yield text, True


def notify_systemd(address: str, message: bytes) -> None:
    """Send message to systemd's notification socket (NOTIFY_SOCKET); logs, never raises."""
    target: Any = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message, target)
    except OSError as exc:
        LOG.warning("cannot notify systemd at %s: %s", address, exc)
