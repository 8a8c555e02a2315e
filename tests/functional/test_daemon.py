"""The kafka-bridge daemon on real RabbitMQ and Kafka: nothing lost, nothing looped."""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import kombu
import oslo_messaging
import pytest

import kafka_bridge_devenv as devenv

from kafka_bridge_devenv.brokers import Brokers, DevenvBrokers
from kafka_bridge_devenv.traffic import (RUNNING_LINE, BridgeProcess, KafkaCollector,
                                         LocalCollector, TcpProxy, create_topic,
                                         kafka_transport, local_transport, publish,
                                         wait_until)
from kafka_bridge.kafka.envelope import OutgoingRecord, encode

TEXT = "x" * 900  # with the envelope, about 1 KB per notification


def forward_bridge(tmp_path: Path, brokers: Brokers, unique: str, name: str = "bridge",
                   **forward: object) -> BridgeProcess:
    return BridgeProcess(tmp_path / name, brokers, {
        "kafka_bridge": {"mode": "forward"},
        "forward": {"topics": unique, "pool": f"{unique}-bridge", **forward}})


def intact(notifications: list[dict]) -> bool:
    return all(m["payload"]["text"] == TEXT and m["event_type"] == "test.event"
               and m["publisher_id"] == "test.publisher"
               and m["_context"]["request_id"] == f"req-{m['payload']['n']}"
               for m in notifications)


@pytest.mark.matrix
def test_forward_10000_notifications_arrive_intact(tmp_path, brokers, local, bridges,
                                                   unique) -> None:
    bridges.append(forward_bridge(tmp_path, brokers, unique).start())
    kafka = KafkaCollector(brokers, f"{unique}.info")
    try:
        publish(local, unique, range(10000))
        wait_until(lambda: len(set(kafka.ids())) == 10000, 120,
                   lambda: f"10000 notifications in Kafka (have {len(set(kafka.ids()))})")
        assert intact(kafka.notifications())
    finally:
        kafka.close()
    assert bridges[0].terminate() < 10
    assert bridges[0].stats()["forward"]["confirmed"] >= 10000


def rabbit_proxy(brokers: Brokers) -> tuple[TcpProxy, str]:
    """A cuttable relay to the devenv RabbitMQ and the transport URL through it."""
    rabbit = urlsplit(brokers.rabbit_url)
    proxy = TcpProxy(rabbit.hostname, rabbit.port)
    return proxy, urlunsplit(rabbit._replace(
        netloc=rabbit.netloc.rsplit(":", 1)[0] + f":{proxy.port}"))


@pytest.mark.matrix
def test_rabbitmq_connection_cut_mid_stream_loses_nothing(tmp_path, brokers, local, bridges,
                                                          unique) -> None:
    proxy, through_proxy = rabbit_proxy(brokers)
    bridge = BridgeProcess(tmp_path / "bridge", brokers, {
        "DEFAULT": {"transport_url": through_proxy},
        "kafka_bridge": {"mode": "forward"},
        "forward": {"topics": unique, "pool": f"{unique}-bridge", "exchanges": "openstack"}})
    bridges.append(bridge.start())
    kafka = KafkaCollector(brokers, f"{unique}.info")
    total = 4000
    sender = threading.Thread(target=publish, args=(local, unique, range(total)))
    try:
        sender.start()
        wait_until(lambda: len(kafka.records) >= 500, 60, "the first 500 in Kafka")
        assert proxy.cut() >= 1, "the bridge had no RabbitMQ connection to cut"
        sender.join()
        # What the bridge held unacknowledged went back to the queue with its
        # connection; it reconnects and forwards it (again, possibly).
        wait_until(lambda: len(set(kafka.ids())) == total, 120,
                   lambda: f"all {total} in Kafka after the cut (have {len(set(kafka.ids()))})")
        assert intact(kafka.notifications())
        assert proxy.accepted >= 2, "the bridge did not reconnect"
    finally:
        sender.join()
        kafka.close()
        proxy.close()
    assert bridge.terminate() < 10


@pytest.mark.matrix
def test_reverse_10000_notifications_arrive_intact(tmp_path, brokers, local, bridges,
                                                   unique) -> None:
    topic = f"{unique}.info"
    create_topic(brokers, topic)
    bridge = BridgeProcess(tmp_path / "bridge", brokers, {
        "kafka_bridge": {"mode": "reverse"},
        "reverse": {"kafka_topics": topic, "group": unique}})
    bridges.append(bridge.start())
    collector = LocalCollector(local, unique)
    driver = kafka_transport(brokers)._driver
    try:
        records = [OutgoingRecord(topic, encode({"request_id": f"req-{n}"}, {
            "message_id": f"m-{n}", "publisher_id": "test.publisher",
            "event_type": "test.event", "priority": "INFO", "payload": {"n": n, "text": TEXT},
            "timestamp": "2026-11-25 00:00:00.000000"})) for n in range(10000)]
        assert driver.publisher.publish(records) == [None] * 10000
        wait_until(lambda: len(set(collector.ids())) == 10000, 120,
                   f"10000 notifications on the local transport "
                   f"(have {len(set(collector.ids()))})")
        assert all(payload["text"] == TEXT and ctxt["request_id"] == f"req-{payload['n']}"
                   for ctxt, payload in collector.received)
        _, metrics = bridge.http_get("/metrics")
        assert f'kafka_bridge_consumer_lag{{partition="0",topic="{topic}"}} 0.0' in metrics
    finally:
        collector.close()
        driver.cleanup()
    assert bridge.terminate() < 10


@pytest.mark.matrix
def test_reverse_rabbitmq_connection_cut_mid_stream_loses_nothing(tmp_path, brokers, local,
                                                                  bridges, unique) -> None:
    topic = f"{unique}.info"
    create_topic(brokers, topic)
    proxy, through_proxy = rabbit_proxy(brokers)
    bridge = BridgeProcess(tmp_path / "bridge", brokers, {
        "DEFAULT": {"transport_url": through_proxy},
        "kafka_bridge": {"mode": "reverse", "batch_size": 100},
        "reverse": {"kafka_topics": topic, "group": unique}})
    bridges.append(bridge.start())
    collector = LocalCollector(local, unique)
    driver = kafka_transport(brokers)._driver
    total = 4000
    try:
        records = [OutgoingRecord(topic, encode({"request_id": f"req-{n}"}, {
            "message_id": f"m-{n}", "publisher_id": "test.publisher",
            "event_type": "test.event", "priority": "INFO", "payload": {"n": n, "text": TEXT},
            "timestamp": "2026-11-25 00:00:00.000000"})) for n in range(total)]
        assert driver.publisher.publish(records) == [None] * total
        wait_until(lambda: len(collector.ids()) >= 300, 60, "the first 300 locally")
        assert proxy.cut() >= 1, "the bridge had no RabbitMQ connection to cut"
        # Unconfirmed publishes of the batch in hand are sent again on a new
        # connection; the Kafka offsets wait for them.
        wait_until(lambda: len(set(collector.ids())) == total, 120,
                   lambda: f"all {total} locally after the cut "
                           f"(have {len(set(collector.ids()))})")
        assert all(payload["text"] == TEXT and ctxt["request_id"] == f"req-{payload['n']}"
                   for ctxt, payload in collector.received)
        assert proxy.accepted >= 2, "the bridge did not reconnect"
    finally:
        collector.close()
        driver.cleanup()
        proxy.close()
    assert bridge.terminate() < 10


@pytest.mark.matrix
@pytest.mark.parametrize("stop", ["sigkill", "sigterm"])
def test_bridge_stopped_mid_stream_loses_nothing(tmp_path, brokers, local, bridges, unique,
                                                 stop) -> None:
    bridge = forward_bridge(tmp_path, brokers, unique, batch_size=100)
    bridges.append(bridge.start())
    kafka = KafkaCollector(brokers, f"{unique}.info")
    total = 6000
    sender = threading.Thread(target=publish, args=(local, unique, range(total)))
    try:
        sender.start()
        wait_until(lambda: len(kafka.records) >= 500, 60, "the first 500 in Kafka")
        if stop == "sigkill":
            bridge.kill()
        else:
            assert bridge.terminate() < 10, "SIGTERM took 10 s or more"
        before = len(set(kafka.ids()))
        assert before < total, "the stream was over before the bridge stopped"
        sender.join()
        bridge.start()
        wait_until(lambda: len(set(kafka.ids())) == total, 120,
                   lambda: f"all {total} after the restart")
        duplicates = len(kafka.ids()) - total
        print(f"{stop}: {before} delivered before the stop, {duplicates} duplicates")
        assert intact(kafka.notifications())
    finally:
        sender.join()
        kafka.close()


@pytest.mark.matrix
def test_both_mode_delivers_each_notification_once_to_each_side(tmp_path, brokers, local,
                                                                bridges, unique) -> None:
    topic = f"{unique}.info"
    create_topic(brokers, topic)
    bridge = BridgeProcess(tmp_path / "bridge", brokers, {
        "kafka_bridge": {"mode": "both"},
        "forward": {"topics": unique, "pool": f"{unique}-bridge"},
        "reverse": {"kafka_topics": topic, "group": unique}})
    bridges.append(bridge.start())
    kafka = KafkaCollector(brokers, topic)
    listener = LocalCollector(local, unique, pool=f"{unique}-app")
    direct = kafka_transport(brokers)
    try:
        publish(local, unique, range(0, 300))            # born on RabbitMQ
        publish(direct, unique, range(1000, 1300))       # born on Kafka
        expected = set(range(0, 300)) | set(range(1000, 1300))
        wait_until(lambda: set(kafka.ids()) == expected, 60, lambda: (
            f"every notification in Kafka (missing {sorted(expected - set(kafka.ids()))[:20]})"))
        wait_until(lambda: set(listener.ids()) == expected, 60, lambda: (
            f"every notification on RabbitMQ (missing "
            f"{sorted(expected - set(listener.ids()))[:20]})"))
        # A loop would show as copies shortly after the originals: wait until
        # neither side has received anything for a second.
        wait_until(_quiet(lambda: len(kafka.records) + len(listener.ids()), 1.0), 30,
                   "both sides to go quiet")
    finally:
        direct.cleanup()
        listener.close()
    bridge.terminate()
    kafka.close()
    stats = bridge.stats()
    kafka_counts = collections.Counter(kafka.ids())
    local_counts = collections.Counter(listener.ids())
    assert max(kafka_counts.values()) == 1, "a notification reached Kafka twice (loop)"
    assert max(local_counts.values()) == 1, "a notification reached RabbitMQ twice (loop)"
    # Every copy one side made was seen, and dropped, by the other (a few more
    # when at-least-once redelivered one).
    assert stats["forward"]["loop_suppressed"] >= 300
    assert stats["reverse"]["loop_suppressed"] >= 300


def _quiet(count, seconds: float):
    """A condition that holds once count() has not changed for seconds."""
    seen = {"value": None, "since": 0.0}

    def check() -> bool:
        value, now = count(), time.monotonic()
        if value != seen["value"]:
            seen.update(value=value, since=now)
        return now - seen["since"] >= seconds
    return check


@pytest.mark.matrix
def test_poison_message_is_dead_lettered_and_the_stream_goes_on(tmp_path, brokers, local,
                                                                bridges, unique) -> None:
    dead_topic = f"{unique}.dead"
    bridges.append(forward_bridge(tmp_path, brokers, unique,
                                  dead_letter_topic=dead_topic).start())
    dead = KafkaCollector(brokers, dead_topic)
    kafka = KafkaCollector(brokers, f"{unique}.info")
    try:
        poison = json.dumps({"oslo.version": "2.0",
                             "oslo.message": json.dumps({"_context_user": "u", "foo": 1})})
        with kombu.Connection(brokers.rabbit_url.replace("rabbit://", "amqp://")) as conn:
            conn.Producer().publish(
                poison, exchange=kombu.Exchange("openstack", type="topic", durable=False),
                routing_key=f"{unique}.info", content_type="application/json")
        publish(local, unique, [1])
        wait_until(lambda: kafka.ids() == [1], 30, "the notification after the poison one")
        wait_until(lambda: len(dead.records) == 1, 30, "the dead letter")
        headers = dict(dead.records[0].headers)
        assert b"event_type" in headers["kafka_bridge_error"]
        assert headers["kafka_bridge_source"] == f"openstack/{unique}.info".encode()
        assert dead.records[0].value == poison.encode()
    finally:
        dead.close()
        kafka.close()


def test_two_bridges_share_the_load(tmp_path, brokers, local, bridges, unique) -> None:
    for name in ("one", "two"):
        bridges.append(forward_bridge(tmp_path, brokers, unique, name=name,
                                      batch_size=50).start())
    kafka = KafkaCollector(brokers, f"{unique}.info")
    try:
        publish(local, unique, range(3000))
        wait_until(lambda: len(set(kafka.ids())) == 3000, 60, "3000 notifications in Kafka")
    finally:
        kafka.close()
    for bridge in bridges:
        bridge.terminate()
    confirmed = [bridge.stats()["forward"]["confirmed"] for bridge in bridges]
    assert sum(confirmed) >= 3000
    assert min(confirmed) > 300, f"one bridge did almost nothing: {confirmed}"


@pytest.fixture(scope="module")
def outage_brokers(tmp_path_factory) -> Iterator[tuple[Path, Brokers]]:
    """Brokers of our own: this test stops and starts their Kafka."""
    directory = tmp_path_factory.mktemp("devenv-outage")
    started = DevenvBrokers(directory, devenv.StartOptions())
    try:
        yield directory, started.brokers
    finally:
        started.close()


def _rss_kib(bridge: BridgeProcess) -> int:
    """Resident memory of the bridge's processes (master and worker)."""
    total = 0
    for pid in [bridge.proc.pid, *_children(bridge.proc.pid)]:
        try:
            with open(f"/proc/{pid}/status") as status:
                total += next(int(line.split()[1]) for line in status
                              if line.startswith("VmRSS:"))
        except (FileNotFoundError, StopIteration):
            pass
    return total


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(p) for p in children.read().split()]
    except FileNotFoundError:
        return []


def test_kafka_outage_of_20s_loses_nothing_without_requeue_storm(tmp_path, outage_brokers,
                                                                 bridges, unique) -> None:
    directory, brokers = outage_brokers
    local = local_transport(brokers)
    bridge = forward_bridge(tmp_path, brokers, unique, batch_size=200)
    bridges.append(bridge.start())
    kafka = KafkaCollector(brokers, f"{unique}.info")
    total = 6000
    sender = threading.Thread(target=publish, args=(local, unique, range(total)))
    try:
        sender.start()
        wait_until(lambda: len(kafka.records) >= 500, 60, "the first 500 in Kafka")
        assert bridge.http_get("/readyz")[0] == 200
        devenv.stop_one(directory, "kafka-1")
        outage_began = time.monotonic()
        rss_before = _rss_kib(bridge)
        sender.join()  # RabbitMQ takes the rest of the stream during the outage
        wait_until(lambda: bridge.http_get("/readyz")[0] == 503, 20,
                   "/readyz to turn unready during the outage")
        assert bridge.http_get("/healthz")[0] == 200
        assert bridge.metric("kafka_bridge_backpressure", direction="forward") == 1
        rss_peak = rss_before
        while time.monotonic() - outage_began < 20:
            rss_peak = max(rss_peak, _rss_kib(bridge))
            assert bridge.proc.poll() is None, bridge.output()[-3000:]
            time.sleep(0.5)  # sampling memory, not synchronising
        devenv.restart_one(directory, "kafka-1")
        wait_until(lambda: bridge.http_get("/readyz")[0] == 200, 60,
                   "/readyz to turn ready again after the outage")
        wait_until(lambda: len(set(kafka.ids())) == total, 180,
                   lambda: f"all {total} after Kafka came back")
        assert intact(kafka.notifications())
    finally:
        sender.join()
        kafka.close()
        local.cleanup()
    assert bridge.terminate() < 10
    stats = bridge.stats()["forward"]
    output = bridge.output()
    assert stats["requeued"] == 0, "messages were requeued to RabbitMQ during the outage"
    assert output.count("destination unavailable") == 1, "backpressure not logged once"
    assert output.count("destination available again") == 1
    assert rss_peak - rss_before < 64 * 1024, f"memory grew {rss_peak - rss_before} KiB"


def test_sighup_reloads_and_the_bridge_goes_on(tmp_path, brokers, local, bridges,
                                               unique) -> None:
    bridge = forward_bridge(tmp_path, brokers, unique)
    bridges.append(bridge.start())
    kafka = KafkaCollector(brokers, f"{unique}.info")
    renamed = KafkaCollector(brokers, f"{unique}.info.v2")
    try:
        publish(local, unique, range(100))
        wait_until(lambda: len(set(kafka.ids())) == 100, 30, "the first 100 in Kafka")
        bridge.config.write_text(bridge.config.read_text().replace(
            "[forward]\n", "[forward]\ntopic_template = {topic}.{priority}.v2\n"))
        bridge.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: bridge.output().count(RUNNING_LINE) == 2, 30,
                   "the bridge to restart its service after SIGHUP")
        assert bridge.proc.poll() is None
        publish(local, unique, range(100, 200))
        wait_until(lambda: set(renamed.ids()) == set(range(100, 200)), 30,
                   "the next 100 in the topic the reloaded template names")
        assert len(set(kafka.ids())) == 100
    finally:
        kafka.close()
        renamed.close()
    assert bridge.terminate() < 10


def test_bad_configuration_exits_2_naming_the_option(tmp_path) -> None:
    config = tmp_path / "bad.conf"
    config.write_text("[kafka_bridge]\nmode = reverse\nkafka_url = kafka-notify://h:1/\n")
    result = subprocess.run([sys.executable, "-m", "kafka_bridge.daemon.cli", "--config-file",
                             str(config)], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert result.returncode == 2
    assert "[reverse] kafka_topics" in result.stderr


def test_unreachable_kafka_at_start_waits_without_respawning_and_stops_on_sigterm(
        tmp_path, brokers, bridges) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    bridge = BridgeProcess(tmp_path / "bridge", brokers, {"kafka_bridge": {
        "kafka_url": f"kafka-notify://127.0.0.1:{closed_port}/?connect_timeout=1"}})
    bridges.append(bridge)
    bridge.start_without_waiting()
    wait_until(lambda: bridge.output().count("waiting for Kafka") >= 1, 30,
               "the bridge to say it waits for Kafka")
    assert bridge.terminate() < 10
    assert bridge.output().count("waiting for Kafka") == 1, "one line per cause, no storm"
    assert "exited with status" not in bridge.output(), "the worker crashed and respawned"


def test_reverse_start_from_earliest_replays_retained_notifications(tmp_path, brokers, local,
                                                                    bridges, unique) -> None:
    topic = f"{unique}.info"
    create_topic(brokers, topic)
    direct = kafka_transport(brokers)
    try:
        publish(direct, unique, range(50))  # retained in Kafka before the bridge exists
    finally:
        direct.cleanup()
    collector = LocalCollector(local, unique)
    try:
        bridges.append(BridgeProcess(tmp_path / "bridge", brokers, {
            "kafka_bridge": {"mode": "reverse"},
            "reverse": {"kafka_topics": topic, "group": unique,
                        "start_from": "earliest"}}).start())
        wait_until(lambda: set(collector.ids()) == set(range(50)), 60,
                   lambda: f"the 50 retained notifications (have {len(set(collector.ids()))})")
    finally:
        collector.close()


def test_metrics_and_health_endpoints_follow_the_traffic(tmp_path, brokers, local, bridges,
                                                         unique) -> None:
    bridge = forward_bridge(tmp_path, brokers, unique, exclude_event_types="test.skip*")
    bridges.append(bridge.start())
    assert bridge.http_get("/healthz")[0] == 200
    assert bridge.http_get("/readyz")[0] == 200
    assert bridge.metric("kafka_bridge_notifications_total", direction="forward",
                         event="confirmed") == 0
    kafka = KafkaCollector(brokers, f"{unique}.info")
    try:
        publish(local, unique, range(200))
        notifier = oslo_messaging.Notifier(local, publisher_id="p", driver="messagingv2",
                                           topics=[unique])
        for n in range(5):
            notifier.info({}, "test.skipped", {"n": n})
        wait_until(lambda: len(set(kafka.ids())) == 200, 30, "200 in Kafka")
    finally:
        kafka.close()

    def counted(event: str) -> float:
        return bridge.metric("kafka_bridge_notifications_total", direction="forward",
                             event=event)

    wait_until(lambda: counted("filtered") == 5, 30, "5 filtered notifications counted")
    assert counted("confirmed") >= 200
    assert counted("received") >= 205
    assert bridge.metric("kafka_bridge_latency_seconds_count", direction="forward") >= 200
    assert bridge.metric("kafka_bridge_in_flight", direction="forward") == 0
    assert bridge.metric("kafka_bridge_backpressure", direction="forward") == 0
    assert bridge.http_get("/nope")[0] == 404
