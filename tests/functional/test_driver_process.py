"""``kafka-notify://`` listeners in real processes: under eventlet, and killed with SIGKILL.

Each scenario runs in a subprocess of ``sys.executable`` so that eventlet's
monkey patching and SIGKILL stay out of the test process. The subprocesses
find the brokers through the ``KAFKA_BRIDGE_*`` variables.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import oslo_messaging
import pytest
from oslo_config import cfg

from kafka_bridge_devenv.brokers import Brokers
from kafka_bridge_devenv.traffic import wait_until

PUBLISHERS = 8
ROOT = Path(__file__).resolve().parents[2]


def child_env(brokers: Brokers) -> dict[str, str]:
    env = dict(os.environ)
    exported = {
        "KAFKA_BRIDGE_RABBIT_URL": brokers.rabbit_url,
        "KAFKA_BRIDGE_KAFKA_BOOTSTRAP": brokers.kafka_bootstrap,
        "KAFKA_BRIDGE_KAFKA_URL": brokers.kafka_url,
        "KAFKA_BRIDGE_KAFKA_CA": brokers.kafka_ca,
        "KAFKA_BRIDGE_KAFKA_USER": brokers.kafka_user,
        "KAFKA_BRIDGE_KAFKA_PASSWORD": brokers.kafka_password,
    }
    env.update({k: v for k, v in exported.items() if v is not None})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    return env


# --- eventlet -------------------------------------------------------------------------------

EVENTLET_SCRIPT = r'''
import eventlet
eventlet.monkey_patch()

import json
import os
import sys
import time

import oslo_messaging
from oslo_config import cfg

TOPIC, POOL, COUNT, BOUND = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
report = {"count": COUNT}
failures = []


class Ticker:
    """A greenthread that ticks every 10 ms; a blocked hub shows as few ticks, long gaps."""

    def __init__(self):
        self.stamps = []
        self.running = True
        self.thread = eventlet.spawn(self._tick)

    def _tick(self):
        while self.running:
            self.stamps.append(time.monotonic())
            eventlet.sleep(0.01)

    def stop(self):
        self.running = False
        self.thread.wait()
        gaps = [b - a for a, b in zip(self.stamps, self.stamps[1:])]
        return {"ticks": len(self.stamps), "max_gap": round(max(gaps), 3) if gaps else None}


def hub_check(seconds):
    """Tick for `seconds` while the hub is otherwise idle."""
    ticker = Ticker()
    eventlet.sleep(seconds)
    return ticker.stop()


class Endpoint:
    def __init__(self):
        self.ids = []
        self.done = eventlet.event.Event()
        self.bad = []

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        if event_type != "eventlet.test" or publisher_id != "eventlet-pub":
            self.bad.append([publisher_id, event_type])
        self.ids.append(payload["id"])
        if len(set(self.ids)) >= COUNT and not self.done.ready():
            self.done.send()


conf = cfg.ConfigOpts()
conf([])
KAFKA_URL = os.environ["KAFKA_BRIDGE_KAFKA_URL"]
transport = oslo_messaging.get_notification_transport(conf, url=KAFKA_URL)
endpoint = Endpoint()
listener = oslo_messaging.get_notification_listener(
    transport, [oslo_messaging.Target(topic=TOPIC)], [endpoint], executor="eventlet", pool=POOL)
started = time.monotonic()
listener.start()
report["start_seconds"] = round(time.monotonic() - started, 2)

# The listener idles (nothing published yet): its polling must yield to the hub.
report["idle"] = hub_check(1.0)
if report["idle"]["ticks"] < 70 or report["idle"]["max_gap"] > 0.25:
    failures.append("hub blocked while the listener idled")

notifier = oslo_messaging.Notifier(transport, publisher_id="eventlet-pub", driver="messagingv2",
                                   topics=[TOPIC])
ticker = Ticker()
started = time.monotonic()
pool = eventlet.GreenPool(8)
for i in range(COUNT):
    pool.spawn_n(notifier.info, {}, "eventlet.test", {"id": i})
pool.waitall()
report["publish_seconds"] = round(time.monotonic() - started, 2)
with eventlet.Timeout(BOUND, False):
    endpoint.done.wait()
report["receive_seconds"] = round(time.monotonic() - started, 2)
report["busy"] = ticker.stop()
if report["busy"]["max_gap"] is None or report["busy"]["max_gap"] > 1.0:
    failures.append("hub blocked while publishing and receiving")

received = set(endpoint.ids)
report["received"] = len(endpoint.ids)
report["distinct"] = len(received)
report["missing"] = sorted(set(range(COUNT)) - received)[:20]
if received != set(range(COUNT)):
    failures.append(f"received {len(received)} of {COUNT} within {BOUND}s")
if endpoint.bad:
    failures.append(f"notifications altered: {endpoint.bad[:5]}")

# Once everything arrived, the idle listener still leaves the hub free.
report["idle_after"] = hub_check(1.0)
if report["idle_after"]["ticks"] < 70 or report["idle_after"]["max_gap"] > 0.25:
    failures.append("hub blocked while the listener idled after receiving")

started = time.monotonic()
with eventlet.Timeout(20, False):
    listener.stop()
    listener.wait()
    transport.cleanup()
report["stop_seconds"] = round(time.monotonic() - started, 2)
if report["stop_seconds"] >= 20:
    failures.append("stopping the listener took 20 s or more")

report["failures"] = failures
print("REPORT " + json.dumps(report), flush=True)
sys.exit(1 if failures else 0)
'''


def test_eventlet_listener_receives_all_without_blocking_the_hub(
        brokers: Brokers, unique: str, tmp_path: Path) -> None:
    script = tmp_path / "eventlet_listener.py"
    script.write_text(EVENTLET_SCRIPT)
    count, bound = 300, 30
    result = subprocess.run(
        [sys.executable, str(script), f"{unique}-t", f"{unique}-pool", str(count), str(bound)],
        env=child_env(brokers), cwd=str(tmp_path), capture_output=True, text=True, timeout=55)
    output = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    reports = [line for line in result.stdout.splitlines() if line.startswith("REPORT ")]
    assert reports, output
    report = json.loads(reports[-1][len("REPORT "):])
    print(f"eventlet listener: {report}")
    assert result.returncode == 0, output
    assert report["failures"] == [], output
    assert report["distinct"] == count, output
    assert report["idle"]["ticks"] >= 70, output


# --- SIGKILL --------------------------------------------------------------------------------

LISTENER_SCRIPT = r'''
import os
import sys
import threading

import oslo_messaging
from oslo_config import cfg

TOPIC, POOL, OUT = sys.argv[1], sys.argv[2], sys.argv[3]


class Recorder:
    """Records each id durably before returning, so acknowledged means recorded."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.lock = threading.Lock()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self.lock:
            os.write(self.fd, f"{payload['id']}\n".encode())
            os.fsync(self.fd)


conf = cfg.ConfigOpts()
conf([])
KAFKA_URL = os.environ["KAFKA_BRIDGE_KAFKA_URL"]
transport = oslo_messaging.get_notification_transport(conf, url=KAFKA_URL)
listener = oslo_messaging.get_notification_listener(
    transport, [oslo_messaging.Target(topic=TOPIC)], [Recorder(OUT)], executor="threading",
    pool=POOL)
listener.start()
print("READY", flush=True)
threading.Event().wait()
'''


def recorded_ids(path: Path) -> list[int]:
    """Ids in path; a last line without newline was not acknowledged, so it is skipped."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    lines = text.split("\n")[:-1]
    return [int(line) for line in lines]


class ListenerProcess:
    def __init__(self, script: Path, env: dict[str, str], topic: str, pool: str,
                 out: Path) -> None:
        self.out = out
        self.log = out.with_suffix(".log")
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), topic, pool, str(out)], env=env, cwd=str(out.parent),
            stdout=subprocess.PIPE, stderr=self._log_file, text=True)
        self._ready = threading.Event()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            if line.strip() == "READY":
                self._ready.set()

    def wait_ready(self, timeout: float) -> None:
        wait_until(lambda: self._ready.is_set() or self.proc.poll() is not None, timeout,
                   lambda: f"the listener to be ready:\n{self.diagnostics()}")
        assert self._ready.is_set(), (
            f"listener exited with {self.proc.poll()} before ready:\n{self.diagnostics()}")

    def diagnostics(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text()[-4000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log_file.close()


@pytest.fixture
def listener_processes() -> Iterator[list[ListenerProcess]]:
    started: list[ListenerProcess] = []
    yield started
    for process in started:
        process.kill()


def test_sigkilled_listener_loses_nothing(brokers: Brokers, unique: str, tmp_path: Path,
                                          listener_processes: list[ListenerProcess]) -> None:
    total, kill_after = 2000, 300
    topic, pool = f"{unique}-t", f"{unique}-pool"
    script = tmp_path / "listener.py"
    script.write_text(LISTENER_SCRIPT)
    env = child_env(brokers)
    first_out, second_out = tmp_path / "first.ids", tmp_path / "second.ids"

    first = ListenerProcess(script, env, topic, pool, first_out)
    listener_processes.append(first)
    first.wait_ready(30)

    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=brokers.kafka_url)
    publish_errors: list[BaseException] = []

    def publish(ids: range) -> None:
        try:
            notifier = oslo_messaging.Notifier(transport, publisher_id="kill-pub",
                                               driver="messagingv2", topics=[topic])
            for i in ids:
                notifier.info({}, "kill.test", {"id": i})
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            publish_errors.append(exc)

    # Several publishers outpace the fsync-bound listener, so when it is killed
    # it holds many fetched records it has not recorded (not acknowledged) yet.
    publishers = [threading.Thread(target=publish, args=(range(k, total, PUBLISHERS),),
                                   daemon=True) for k in range(PUBLISHERS)]
    try:
        for publisher in publishers:
            publisher.start()
        wait_until(lambda: len(recorded_ids(first_out)) >= kill_after, 30,
                   lambda: f"the first listener to record {kill_after} ids (it recorded "
                           f"{len(recorded_ids(first_out))}):\n{first.diagnostics()}")
        first.kill()
        first_ids = recorded_ids(first_out)
        assert len(set(first_ids)) < total, "the listener was killed after it had everything"

        second = ListenerProcess(script, env, topic, pool, second_out)
        listener_processes.append(second)
        second.wait_ready(30)
        wait_until(lambda: not any(p.is_alive() for p in publishers), 30,
                   f"publishing {total} notifications")
        assert not publish_errors, publish_errors

        def union() -> set[int]:
            return set(first_ids) | set(recorded_ids(second_out))

        try:
            wait_until(lambda: len(union()) >= total, 40, "every notification", interval=0.1)
        except AssertionError:
            pass  # the assertion below names what is missing
    finally:
        transport.cleanup()
    second_ids = recorded_ids(second_out)
    missing = sorted(set(range(total)) - union())
    duplicates = len(first_ids) + len(second_ids) - len(union())
    print(f"first listener recorded {len(first_ids)} ids before SIGKILL, the second "
          f"{len(second_ids)}; {duplicates} duplicate(s), {len(missing)} missing")
    assert not missing, (
        f"{len(missing)} of {total} notifications lost after SIGKILL, e.g. {missing[:20]}; "
        f"first recorded {len(first_ids)}, second {len(second_ids)}\n"
        f"second listener log:\n{second.diagnostics()}")
    assert union() == set(range(total))
    assert second_ids, "the second listener received nothing"
