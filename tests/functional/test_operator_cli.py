"""``kafka-bridge replay|tail|check`` as an operator runs them, on real RabbitMQ and Kafka.

One topic holds 10,000 notifications stamped one second apart over a known
time range (record timestamps and notification timestamps alike), on three
partitions; half carry the forward direction's origin header, as records
the bridge brought from RabbitMQ do. Each test runs the installed command
in a subprocess.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import pty
import shlex
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient

from kafka_bridge_devenv.brokers import Brokers
from kafka_bridge_devenv.processes import free_port
from kafka_bridge_devenv.traffic import (BridgeProcess, KafkaCollector, LocalCollector,
                                         create_topic, wait_until)
from kafka_bridge.kafka.envelope import encode, headers_for

TOTAL = 10_000
SCRIPT = Path(sys.executable).with_name("kafka-bridge")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m",
                                                 "kafka_bridge.daemon.cli"]
ENV = dict(os.environ, PYTHONWARNINGS="ignore")


class History:
    """The 10,000 notifications: n is stamped base_ms + n seconds."""

    def __init__(self, brokers: Brokers) -> None:
        self.local_topic = f"operator-{uuid.uuid4().hex[:8]}"
        self.topic = f"{self.local_topic}.info"
        # whole seconds, a few hours back: the range ends 1 h before now
        self.base_ms = (int(time.time()) - TOTAL - 3600) * 1000
        create_topic(brokers, self.topic, partitions=3)
        producer = KafkaProducer(**brokers.kafka_client_config())
        try:
            for n in range(TOTAL):
                message = self.notification(n)
                headers = list(headers_for(message))
                if n % 2 == 0:  # as forwarded from RabbitMQ by a bridge
                    headers.append(("kafka_bridge_origin", b"local"))
                producer.send(self.topic, encode({"request_id": f"req-{n}"}, message),
                              headers=headers, partition=n % 3,
                              timestamp_ms=self.stamp_ms(n))
            producer.flush(60)
        finally:
            producer.close()

    def stamp_ms(self, n: int) -> int:
        return self.base_ms + n * 1000

    def iso(self, n: int) -> str:
        """The ISO 8601 time of notification n, as an operator would type it."""
        return datetime.datetime.fromtimestamp(self.stamp_ms(n) / 1000, datetime.timezone.utc
                                               ).strftime("%Y-%m-%dT%H:%M:%SZ")

    def notification(self, n: int) -> dict:
        return {"message_id": f"m-{n}", "priority": "INFO",
                "event_type": ("compute.instance.delete.end" if n % 4 == 0
                               else "compute.instance.create.end"),
                "publisher_id": f"nova-compute.host{n % 5}",
                "timestamp": datetime.datetime.fromtimestamp(
                    self.stamp_ms(n) / 1000, datetime.timezone.utc
                ).strftime("%Y-%m-%d %H:%M:%S.%f"),
                "payload": {"n": n, "instance_id": f"i-{n}"}}


@pytest.fixture(scope="module")
def history(brokers: Brokers) -> History:
    return History(brokers)


def config(tmp_path: Path, brokers: Brokers, topic: str, **sections: dict) -> BridgeProcess:
    """A reverse-mode daemon's configuration for topic (the daemon is not started)."""
    merged = {"kafka_bridge": {"mode": "reverse"},
              "reverse": {"kafka_topics": topic, "group": f"group-{uuid.uuid4().hex[:8]}"}}
    for section, values in sections.items():
        merged.setdefault(section, {}).update(values)
    return BridgeProcess(tmp_path / "bridge", brokers, merged)


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=ENV)


def totals(summary: str) -> list[str]:
    """The figures of the summary's total line: read, matched, delivered, skipped..."""
    line = next(line for line in summary.splitlines() if line.startswith("total "))
    return [figure.replace(",", "") for figure in line.split()[1:]]


def committed(brokers: Brokers, group: str) -> dict:
    admin = KafkaAdminClient(**brokers.kafka_client_config())
    try:
        return {tp: meta.offset for tp, meta in
                admin.list_group_offsets(group).get(group, {}).items()}
    finally:
        admin.close()


def test_replay_puts_back_exactly_the_window_without_moving_a_running_daemon(
        tmp_path, brokers, history, local, bridges, unique) -> None:
    # A reverse daemon of the same configuration (same group) runs throughout.
    bridge = config(tmp_path, brokers, history.topic)
    bridges.append(bridge.start())
    group = bridge.config.read_text().split("group = ")[1].split()[0]
    wait_until(lambda: len(committed(brokers, group)) == 3, 60,
               "the daemon's group to commit its start offsets")
    before = committed(brokers, group)
    collector = LocalCollector(local, history.local_topic, pool=unique)
    try:
        began = time.monotonic()
        replay = run("replay", "--config-file", str(bridge.config), "--from", history.iso(2000),
                     "--until", history.iso(5000), "--event-type", "compute.instance.create.*")
        took = time.monotonic() - began
        assert replay.returncode == 0, replay.stderr
        expected = {n for n in range(2000, 5000) if n % 4}
        wait_until(lambda: len(set(collector.ids())) >= len(expected), 60,
                   lambda: f"{len(expected)} replayed notifications locally "
                           f"(have {len(set(collector.ids()))})")
        assert set(collector.ids()) == expected
        assert all(ctxt["kafka_bridge_origin"] == "kafka"
                   and ctxt["request_id"] == f"req-{payload['n']}"
                   for ctxt, payload in collector.received)
    finally:
        collector.close()
    # read, matched, republished, outside_window, filtered, undecodable
    assert totals(replay.stdout) == ["3000", "2250", "2250", "0", "750", "0"], replay.stdout
    assert "replay: 3,000/3,000 100%" in replay.stderr  # plain progress: not a terminal
    assert committed(brokers, group) == before
    assert bridge.proc is not None and bridge.proc.poll() is None
    print(f"replayed 2,250 of 3,000 records in {took:.1f} s (process start included)")


def test_jsonl_output_equals_the_records_of_the_window(tmp_path, brokers, history) -> None:
    out = tmp_path / "window.jsonl"
    replay = run("replay", "--config-file", str(config(tmp_path, brokers, history.topic).config),
                 "--from", history.iso(100), "--until", history.iso(400), "--output", "jsonl",
                 "--output-file", str(out))
    assert replay.returncode == 0, replay.stderr
    kafka = KafkaCollector(brokers, history.topic)
    try:
        wait_until(lambda: len(kafka.records) >= TOTAL, 60, "every record read back")
        records = list(kafka.records)
    finally:
        kafka.close()
    expected = []
    for record in records:
        if not history.stamp_ms(100) <= record.timestamp < history.stamp_ms(400):
            continue
        message = json.loads(json.loads(record.value)["oslo.message"])
        context = message.pop("_context")
        fields = ("message_id", "event_type", "priority", "publisher_id", "timestamp",
                  "payload")
        expected.append({**{k: message[k] for k in fields}, "context": context,
                         "topic": record.topic, "partition": record.partition,
                         "offset": record.offset})
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    for line in lines:
        del line["kafka_timestamp"]
    key = (lambda r: (r["partition"], r["offset"]))
    assert len(expected) == 300
    assert sorted(lines, key=key) == sorted(expected, key=key)
    assert totals(replay.stdout) == ["300", "300", "300", "0", "0", "0"]


def test_interrupted_replay_resumes_and_delivers_the_rest(tmp_path, brokers, history, local,
                                                          unique) -> None:
    conf = config(tmp_path, brokers, history.topic).config
    collector = LocalCollector(local, history.local_topic, pool=unique)
    expected = set(range(5000, 9000))
    try:
        first = subprocess.Popen(
            [*COMMAND, "replay", "--config-file", str(conf), "--from", history.iso(5000),
             "--until", history.iso(9000), "--max-rate", "1000",
             "--position-file", str(tmp_path / "positions.json")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            text=True, env=ENV, cwd=tmp_path)
        try:
            wait_until(lambda: len(collector.ids()) >= 500 or first.poll() is not None, 90,
                       "the first 500 replayed notifications")
            first.send_signal(signal.SIGINT)
            out, err = first.communicate(timeout=60)
        finally:
            if first.poll() is None:
                first.kill()
        assert first.returncode == 130, err
        delivered_first = set(collector.ids())
        assert len(delivered_first) < len(expected), "the replay ended before the interrupt"
        assert "interrupted" in out
        resume = next(line for line in err.splitlines() if line.startswith("resume with: "))
        argv = shlex.split(resume[len("resume with: "):])
        assert argv[0] == "kafka-bridge" and "--from" not in argv
        assert (tmp_path / "positions.json").exists()
        second = run(*argv[1:])
        assert second.returncode == 0, second.stderr
        wait_until(lambda: set(collector.ids()) >= expected, 60,
                   lambda: f"all of the window after resuming "
                           f"(missing {len(expected - set(collector.ids()))})")
        assert set(collector.ids()) == expected
        read_first = 4000 - int(totals(second.stdout)[0])
        assert read_first >= len(delivered_first) - 500  # resumed near where it stopped
    finally:
        collector.close()


def test_tail_follows_live_records_and_stops_after_count(tmp_path, brokers, unique) -> None:
    topic = f"{unique}.info"
    create_topic(brokers, topic)
    errors = tmp_path / "tail.err"
    with open(errors, "w") as err:
        tail = subprocess.Popen(
            [*COMMAND, "tail", "--config-file", str(config(tmp_path, brokers, topic).config),
             "--count", "3", "--output", "jsonl", "--event-type", "wanted.*"],
            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True, env=ENV)
    try:
        wait_until(lambda: "following" in errors.read_text() or tail.poll() is not None, 60,
                   "tail to start following")
        producer = KafkaProducer(**brokers.kafka_client_config())
        for n in range(6):
            event = "unwanted.event" if n % 2 else "wanted.event"
            producer.send(topic, encode({}, {"message_id": f"m-{n}", "event_type": event,
                                             "priority": "INFO", "payload": {"n": n}}))
        producer.flush(30)
        producer.close()
        out, _ = tail.communicate(timeout=60)
    finally:
        if tail.poll() is None:
            tail.kill()
    assert tail.returncode == 0, errors.read_text()
    lines = [json.loads(line) for line in out.splitlines()]
    assert sorted(line["payload"]["n"] for line in lines) == [0, 2, 4]
    assert {line["topic"] for line in lines} == {topic}


def test_tail_from_a_time_prints_one_line_per_notification(tmp_path, brokers, history) -> None:
    tail = run("tail", "--config-file", str(config(tmp_path, brokers, history.topic).config),
               "--from", history.iso(TOTAL - 10), "--count", "5")
    assert tail.returncode == 0, tail.stderr
    lines = tail.stdout.splitlines()
    assert len(lines) == 5
    for line in lines:
        stamp, priority, event_type, publisher, instance = line.split(" ", 1)[1].split(" ")[-5:]
        assert priority == "INFO" and event_type.startswith("compute.instance.")
        assert int(instance.split("=i-")[1]) >= TOTAL - 10


def check(tmp_path: Path, brokers: Brokers, topic: str, *args: str,
          **sections: dict) -> subprocess.CompletedProcess:
    return run("check", "--config-file",
               str(config(tmp_path, brokers, topic, **sections).config), *args)


def test_check_passes_on_a_usable_configuration(tmp_path, brokers, history) -> None:
    result = check(tmp_path, brokers, history.topic)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"topic {history.topic}" in result.stdout and "exists, 3 partitions" in result.stdout


def test_check_tells_each_problem_by_its_exit_code(tmp_path, brokers, history,
                                                   unique) -> None:
    rabbit = brokers.rabbit_url
    user, password = rabbit.split("//", 1)[1].split("@", 1)[0].split(":", 1)
    wrong_password = rabbit.replace(f":{password}@", ":not-the-password@")
    nobody_listens = f"rabbit://{user}:{password}@127.0.0.1:{free_port()}/"
    cases = {
        "wrong RabbitMQ password": (4, {"DEFAULT": {"transport_url": wrong_password}}),
        "unreachable RabbitMQ": (3, {"DEFAULT": {"transport_url": nobody_listens}}),
        "unreachable Kafka": (5, {"kafka_bridge": {
            "kafka_url": f"kafka-notify://127.0.0.1:{free_port()}/"}}),
    }
    for name, (code, sections) in cases.items():
        result = check(tmp_path / name.replace(" ", "-"), brokers, history.topic, **sections)
        assert result.returncode == code, f"{name}:\n{result.stdout}{result.stderr}"
        assert "FAIL" in result.stdout and f"exit {code}:" in result.stdout
        assert "not-the-password" not in result.stdout + result.stderr
    missing = f"{unique}.info"
    result = check(tmp_path / "missing", brokers, missing)
    assert result.returncode == 7, result.stdout + result.stderr
    assert f"topic {missing}" in result.stdout and "does not exist" in result.stdout
    created = check(tmp_path / "create", brokers, missing, "--create-topics")
    assert created.returncode == 0, created.stdout
    assert check(tmp_path / "again", brokers, missing).returncode == 0


def test_replay_draws_a_progress_bar_on_a_terminal(tmp_path, brokers, history) -> None:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    replay = subprocess.Popen(
        [*COMMAND, "replay", "--config-file",
         str(config(tmp_path, brokers, history.topic).config), "--from", history.iso(0),
         "--until", history.iso(3000), "--dry-run", "--max-rate", "1500"],
        stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL, text=True, env=ENV)
    os.close(follower)
    screen = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's last writer exited
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        out, _ = replay.communicate(timeout=120)
        reader.join(10)
    finally:
        if replay.poll() is None:
            replay.kill()
        os.close(leader)
    text = screen.decode(errors="replace")
    assert replay.returncode == 0, text
    redraws = [part for part in text.split("\r") if part.startswith("replay [")]
    assert len(redraws) >= 3, text      # about 2 s at 1,500/s, redrawn every 0.2 s
    assert all(len(part.split("\x1b[K")[0]) <= 99 for part in redraws)
    assert "3,000/3,000 100%" in redraws[-1] and "ETA" in redraws[-1]
    assert "#" * 10 in redraws[-1]
    # no plain progress lines on a terminal
    assert not any(line.startswith("replay: ") for line in text.splitlines())
    assert totals(out) == ["3000", "3000", "3000", "0", "0", "0"]
