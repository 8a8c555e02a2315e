"""devenv starts real brokers that real clients can use, and stops them all."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import oslo_messaging
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from oslo_config import cfg

import kafka_bridge_devenv as devenv
from kafka_bridge_devenv import kafka as devenv_kafka
from kafka_bridge_devenv.brokers import Brokers


def kafka_round_trip(brokers: Brokers, topic: str, replicas: int = 1) -> dict:
    """Create topic, produce 10 records with acks=all, consume them all.

    Returns the topic's configuration as the broker reported it at creation.
    """
    config = brokers.kafka_client_config()
    admin = KafkaAdminClient(**config)
    try:
        created = admin.create_topics([NewTopic(topic, 2, replicas)])
        described = admin.describe_topics([topic])[0]
    finally:
        admin.close()
    producer = KafkaProducer(acks="all", **config)
    try:
        sent = [producer.send(topic, f"record-{i}".encode()) for i in range(10)]
        for future in sent:
            future.get(timeout=30)
    finally:
        producer.close()
    consumer = KafkaConsumer(topic, group_id=topic, auto_offset_reset="earliest",
                             consumer_timeout_ms=20000, **config)
    try:
        received = set()
        for record in consumer:
            received.add(record.value.decode())
            if len(received) == 10:
                break
    finally:
        consumer.close()
    assert received == {f"record-{i}" for i in range(10)}
    assert all(len(p["replica_nodes"]) == replicas for p in described["partitions"])
    return {name: entry["value"] for name, entry in created["topics"][0]["configs"].items()}


@pytest.mark.matrix
def test_kafka_produce_consume_round_trip(brokers: Brokers, unique: str) -> None:
    kafka_round_trip(brokers, unique)


class _Collector:
    def __init__(self, expected: int) -> None:
        self.payloads: list[dict] = []
        self.expected = expected
        self.done = threading.Event()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.payloads.append(payload)
        if len(self.payloads) >= self.expected:
            self.done.set()


@pytest.mark.matrix
def test_rabbit_oslo_notification_round_trip(brokers: Brokers, unique: str) -> None:
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=brokers.rabbit_url)
    collector = _Collector(expected=5)
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=unique)], [collector], executor="threading")
    listener.start()
    try:
        notifier = oslo_messaging.Notifier(transport, publisher_id="devenv-test",
                                           driver="messaging", topics=[unique])
        for i in range(5):
            notifier.info({}, "devenv.test", {"n": i})
        assert collector.done.wait(30), f"received only {collector.payloads}"
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
    assert sorted(p["n"] for p in collector.payloads) == list(range(5))


def test_three_node_cluster_replicates_with_min_insync_two(kafka_cluster3: Brokers,
                                                           unique: str) -> None:
    configs = kafka_round_trip(kafka_cluster3, unique, replicas=3)
    assert configs["min.insync.replicas"] == "2"


def test_sasl_ssl_round_trip_with_the_right_password(secure_kafka: Brokers,
                                                     unique: str) -> None:
    assert secure_kafka.kafka_url.startswith("kafka-notify://")
    assert "security_protocol=SASL_SSL" in secure_kafka.kafka_url
    kafka_round_trip(secure_kafka, unique)


def test_cli_start_status_stop_leaves_no_process(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "kafka_bridge_devenv.cli"]
    began = time.monotonic()
    started = subprocess.run([*cli, "start", "--dir", str(tmp_path)], capture_output=True,
                             text=True, timeout=120, check=False)
    elapsed = time.monotonic() - began
    assert started.returncode == 0, started.stderr
    exports = [line for line in started.stdout.splitlines() if line.startswith("export ")]
    names = {line.split()[1].split("=")[0] for line in exports}
    assert names == {"KAFKA_BRIDGE_RABBIT_URL", "KAFKA_BRIDGE_KAFKA_BOOTSTRAP",
                     "KAFKA_BRIDGE_KAFKA_URL"}
    assert started.stdout.splitlines()[-len(exports):] == exports, "exports must come last"
    assert (tmp_path / "env").read_text().splitlines() == exports
    launched = [record for record, _ in devenv.status(tmp_path)]
    try:
        assert elapsed < 30, f"start took {elapsed:.1f}s with the jars cached"
        shown = subprocess.run([*cli, "status", "--dir", str(tmp_path)], capture_output=True,
                               text=True, timeout=30, check=False)
        assert shown.returncode == 0 and shown.stdout.count("running") == 3, shown.stdout
    finally:
        stopped = subprocess.run([*cli, "stop", "--dir", str(tmp_path)], capture_output=True,
                                 text=True, timeout=120, check=False)
    assert stopped.returncode == 0, stopped.stderr
    # is_running() counts zombies as gone: in a container whose init does
    # not reap, an ended orphan stays in /proc as a zombie.
    assert [r.name for r in launched if r.is_running()] == []
    again = subprocess.run([*cli, "stop", "--dir", str(tmp_path)], capture_output=True,
                           text=True, timeout=30, check=False)
    assert again.returncode == 0 and "nothing to stop" in again.stdout


def test_kafka_that_cannot_bind_fails_naming_the_cause_and_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    node = devenv_kafka.KafkaNode(1, client_port=port,
                                  internal_port=devenv_kafka.processes.free_port(),
                                  controller_port=devenv_kafka.processes.free_port())
    monkeypatch.setattr(devenv_kafka, "plan_nodes", lambda count: [node])
    try:
        with pytest.raises(devenv.DevenvError) as raised:
            devenv.start(tmp_path, devenv.StartOptions(rabbit=False))
    finally:
        taken.close()
    message = str(raised.value)
    assert "exited during start-up" in message and "server.log" in message
    assert str(port) in message
    assert all(not running for _, running in devenv.status(tmp_path))


def test_missing_java_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(devenv.DevenvError, match="java not found"):
        devenv.start(tmp_path, devenv.StartOptions(rabbit=False))


def test_a_directory_can_be_started_again_after_stop(tmp_path: Path, unique: str) -> None:
    # Each start formats a new cluster; the previous one's data must not stop it.
    for _ in range(2):
        exports = devenv.start(tmp_path, devenv.StartOptions(rabbit=False))
        try:
            kafka_round_trip(Brokers.from_exports(exports), unique)
        finally:
            devenv.stop(tmp_path)
