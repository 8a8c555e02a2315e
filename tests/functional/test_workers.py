"""The daemon with several worker processes, on real RabbitMQ and Kafka.

Workers share the work (competing consumers forward, one consumer group
reverse); the parent answers for the whole daemon: metrics summed, ready once
every worker is, one systemd READY=1; a killed worker is replaced and nothing
is lost; a single active consumer per queue keeps per-key order.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import amqp
import pytest

from kafka_bridge_devenv.brokers import Brokers
from kafka_bridge_devenv.processes import free_port
from kafka_bridge_devenv.traffic import (RUNNING_LINE, BridgeProcess, KafkaCollector,
                                         LocalCollector, create_topic, kafka_transport,
                                         publish, wait_until)

TEXT = "x" * 900


@pytest.fixture
def kafka(brokers: Brokers):
    transport = kafka_transport(brokers)
    yield transport
    transport.cleanup()


def forward_bridge(tmp_path: Path, brokers: Brokers, unique: str, workers: int = 2,
                   **forward: object) -> BridgeProcess:
    return BridgeProcess(tmp_path / "bridge", brokers, {
        "kafka_bridge": {"mode": "forward", "workers": workers},
        "forward": {"topics": unique, "pool": f"{unique}-bridge", "exchanges": "openstack",
                    **forward}})


def reverse_bridge(tmp_path: Path, brokers: Brokers, unique: str,
                   workers: int = 2) -> BridgeProcess:
    return BridgeProcess(tmp_path / "bridge", brokers, {
        "kafka_bridge": {"mode": "reverse", "workers": workers},
        "reverse": {"kafka_topics": f"{unique}.info", "group": unique}})


def confirmed(bridge: BridgeProcess, direction: str) -> float:
    return bridge.metric("kafka_bridge_notifications_total", direction=direction,
                         event="confirmed")


def test_two_forward_workers_share_the_queue_and_the_metrics_add_up(
        tmp_path, brokers, local, bridges, unique) -> None:
    bridge = forward_bridge(tmp_path, brokers, unique)
    bridges.append(bridge.start())
    assert len(bridge.worker_pids()) == 2
    assert bridge.http_get("/readyz")[0] == 200
    assert bridge.metric("kafka_bridge_workers", state="running") == 2
    collector = KafkaCollector(brokers, f"{unique}.info")
    total = 4000
    try:
        publish(local, unique, range(total), text=TEXT)
        wait_until(lambda: len(set(collector.ids())) == total, 120,
                   lambda: f"{total} in Kafka (have {len(set(collector.ids()))})")
    finally:
        collector.close()
    # one endpoint for the daemon: the workers' counters summed
    wait_until(lambda: confirmed(bridge, "forward") == total, 15,
               lambda: f"the metrics to count {total} confirmed "
                       f"(have {confirmed(bridge, 'forward')})")
    assert bridge.terminate() < 15
    reports = bridge.worker_stats()
    assert len(reports) == 2, f"expected a stop report per worker: {reports}"
    shares = [report["forward"]["confirmed"] for report in reports]
    assert all(share > 0 for share in shares), f"a worker forwarded nothing: {shares}"
    assert sum(shares) == total


def test_two_reverse_workers_share_the_consumer_group(tmp_path, brokers, kafka, local,
                                                      bridges, unique) -> None:
    create_topic(brokers, f"{unique}.info", partitions=4)
    bridge = reverse_bridge(tmp_path, brokers, unique)
    bridges.append(bridge.start())
    collector = LocalCollector(local, unique)
    total = 4000
    try:
        publish(kafka, unique, range(total), text=TEXT)
        wait_until(lambda: set(collector.ids()) == set(range(total)), 120,
                   lambda: f"{total} delivered locally (have {len(set(collector.ids()))})")
    finally:
        collector.close()
    wait_until(lambda: confirmed(bridge, "reverse") >= total, 15,
               lambda: f"the metrics to count {total} confirmed "
                       f"(have {confirmed(bridge, 'reverse')})")
    assert bridge.terminate() < 15
    shares = [report["reverse"]["confirmed"] for report in bridge.worker_stats()]
    assert len(shares) == 2 and all(share > 0 for share in shares), \
        f"the two workers did not share the partitions: {shares}"


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_sigkill_of_one_worker_mid_stream_loses_nothing(tmp_path, brokers, local, kafka,
                                                        bridges, unique, direction) -> None:
    total = 6000
    if direction == "forward":
        bridge = forward_bridge(tmp_path, brokers, unique)
        collector: KafkaCollector | LocalCollector = KafkaCollector(brokers, f"{unique}.info")
        source = local
    else:
        create_topic(brokers, f"{unique}.info", partitions=4)
        bridge = reverse_bridge(tmp_path, brokers, unique)
        collector = LocalCollector(local, unique)
        source = kafka
    bridges.append(bridge.start())
    victim = bridge.worker_pids()[0]
    sender = threading.Thread(target=publish, args=(source, unique, range(total)),
                              kwargs={"text": TEXT})
    try:
        sender.start()
        wait_until(lambda: len(collector.ids()) >= 1000, 60, "the first 1000 forwarded")
        bridge.kill_worker(victim)
        sender.join()
        wait_until(lambda: set(collector.ids()) == set(range(total)), 180,
                   lambda: f"all {total} after the kill (have {len(set(collector.ids()))})")
    finally:
        sender.join()
        collector.close()
    # the parent replaced the worker, and is ready again once the new one is
    wait_until(lambda: len(bridge.worker_pids()) == 2 and victim not in bridge.worker_pids(),
               30, "a new worker in place of the killed one")
    wait_until(lambda: bridge.http_get("/readyz")[0] == 200, 30, "readiness after the restart")
    assert bridge.metric("kafka_bridge_workers", state="running") == 2
    assert bridge.output().count(RUNNING_LINE) == 3
    assert bridge.terminate() < 15


def _notification_socket(tmp_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.2)
    return sock


def _datagrams(sock: socket.socket) -> list[bytes]:
    received = []
    try:
        while True:
            received.append(sock.recv(4096))
    except TimeoutError:
        return received


def test_systemd_is_told_ready_once_every_worker_is_running(
        tmp_path, brokers, bridges, unique) -> None:
    sock = _notification_socket(tmp_path)
    bridge = BridgeProcess(tmp_path / "bridge", brokers, {
        "kafka_bridge": {"mode": "forward", "workers": 3},
        "forward": {"topics": unique, "pool": unique}},
        env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    try:
        bridges.append(bridge.start())
        wait_until(lambda: bridge.output().count(RUNNING_LINE) == 3, 30, "three workers")
        messages = _datagrams(sock)
        assert messages == [b"READY=1"], f"systemd was told {messages}"
        assert bridge.http_get("/readyz")[0] == 200
        bridge.kill_worker(bridge.worker_pids()[0])
        wait_until(lambda: bridge.output().count(RUNNING_LINE) == 4, 30, "the replacement")
        assert _datagrams(sock) == [], "READY=1 sent again for a replaced worker"
    finally:
        sock.close()


def test_no_ready_while_a_worker_cannot_reach_kafka(tmp_path, brokers, bridges) -> None:
    sock = _notification_socket(tmp_path)
    closed_port = free_port()
    unreachable = f"kafka-notify://127.0.0.1:{closed_port}/?connect_timeout=1"
    bridge = BridgeProcess(tmp_path / "bridge", brokers, {
        "kafka_bridge": {"mode": "forward", "workers": 2, "kafka_url": unreachable}},
        env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    try:
        bridges.append(bridge.start_without_waiting())
        wait_until(lambda: bridge.output().count("waiting for Kafka") >= 2, 60,
                   "both workers to wait for Kafka")
        assert bridge.http_get("/healthz")[0] == 200
        assert bridge.http_get("/readyz")[0] == 503
        assert _datagrams(sock) == [], "systemd was told ready before Kafka answered"
        assert bridge.terminate() < 15
    finally:
        sock.close()


def test_single_active_consumer_keeps_per_key_order_across_workers(
        tmp_path, brokers, local, bridges, unique) -> None:
    # every notification has the same key (its publisher id), so all go to one
    # partition, where Kafka's order must be the order they were published in
    bridge = BridgeProcess(tmp_path / "bridge", brokers, {
        "kafka_bridge": {"mode": "forward", "workers": 2,
                         "kafka_url": f"{brokers.kafka_url}?record_key_field=publisher_id"},
        "forward": {"topics": unique, "pool": unique, "exchanges": "openstack",
                    "single_active_consumer": True}})
    bridges.append(bridge.start())
    collector = KafkaCollector(brokers, f"{unique}.info")
    total = 3000
    try:
        publish(local, unique, range(total), threads=1, text=TEXT)
        wait_until(lambda: len(set(collector.ids())) == total, 120,
                   lambda: f"{total} in Kafka (have {len(set(collector.ids()))})")
        records = list(collector.records)
    finally:
        collector.close()
    assert len({record.partition for record in records}) == 1
    order = list(dict.fromkeys(collector.ids()))  # first occurrences, in partition order
    assert order == list(range(total)), "notifications of one key were reordered"
    # the queue really is a single-active-consumer queue: RabbitMQ refuses to
    # redeclare it without the argument
    url = urlsplit(brokers.rabbit_url)
    connection = amqp.Connection(f"{url.hostname}:{url.port}", userid=url.username,
                                 password=url.password, virtual_host="/")
    connection.connect()
    try:
        with pytest.raises(amqp.exceptions.PreconditionFailed,
                           match="x-single-active-consumer"):
            connection.channel().queue_declare(unique, durable=False, auto_delete=False)
    finally:
        connection.close()
    assert bridge.terminate() < 15
