"""SIGTERM exits within shutdown_timeout + 2 s whatever is down, and loses nothing.

The timing matrix: mode (forward, reverse, both) x what is down when SIGTERM
arrives (nothing, RabbitMQ, Kafka, both). Brokers are real and stopped for
real (devenv.stop_one); this module has a devenv of its own for that. Where
a broker is down, notifications are in the bridge's hands when it is told
to stop, held by the direction whose destination is down.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import amqp
import pytest
from kafka.admin import KafkaAdminClient
from urllib.parse import urlsplit

import kafka_bridge_devenv as devenv
from kafka_bridge_devenv.brokers import Brokers, DevenvBrokers
from kafka_bridge_devenv.processes import port_accepts
from kafka_bridge_devenv.traffic import (BridgeProcess, KafkaCollector, LocalCollector,
                                         create_topic, kafka_transport, local_transport,
                                         publish, wait_until)
from kafka_bridge.kafka.envelope import OutgoingRecord, encode

SHUTDOWN_TIMEOUT = 3.0
BOUND = SHUTDOWN_TIMEOUT + 2.0
COUNT = 50

MODES = ("forward", "reverse", "both")
DOWN = ("none", "rabbit", "kafka", "both")

#: seconds each cell's SIGTERM took, for the summary printed at the end
TIMINGS: dict[tuple[str, str], float] = {}


class Outages:
    """Stops and restarts the module's own brokers."""

    def __init__(self, directory: Path, brokers: Brokers) -> None:
        self.directory = directory
        self.brokers = brokers

    def stop(self, which: str) -> None:
        devenv.stop_one(self.directory, "rabbitmq" if which == "rabbit" else "kafka-1")

    def restore(self) -> None:
        """Both brokers running and usable again."""
        running = {record.name: up for record, up in devenv.status(self.directory)}
        for name, usable in (("rabbitmq", self._rabbit_up), ("kafka-1", self._kafka_up)):
            if not running.get(name):
                devenv.restart_one(self.directory, name)
            wait_until(usable, 90, f"{name} to accept clients again", interval=0.5)

    def _rabbit_up(self) -> bool:
        url = urlsplit(self.brokers.rabbit_url)
        try:
            connection = amqp.Connection(host=f"{url.hostname}:{url.port}",
                                         userid=url.username, password=url.password,
                                         connect_timeout=1, read_timeout=2, write_timeout=2)
            connection.connect()
            connection.close()
            return True
        except (OSError, amqp.exceptions.AMQPError):
            return False

    def _kafka_up(self) -> bool:
        host, port = (self.brokers.kafka_bootstrap or "").split(",")[0].rsplit(":", 1)
        if not port_accepts(int(port)):
            return False
        try:
            admin = KafkaAdminClient(**self.brokers.kafka_client_config(),
                                     request_timeout_ms=3000, bootstrap_timeout_ms=3000)
        except Exception:  # noqa: BLE001 - not up yet
            return False
        try:
            admin.list_topics()
            return True
        except Exception:  # noqa: BLE001
            return False
        finally:
            admin.close()


@pytest.fixture(scope="module")
def outages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outages]:
    directory = tmp_path_factory.mktemp("devenv-shutdown")
    started = DevenvBrokers(directory, devenv.StartOptions())
    try:
        yield Outages(directory, started.brokers)
    finally:
        started.close()
        if TIMINGS:
            print("\nSIGTERM timing matrix (seconds from SIGTERM to exit, bound "
                  f"{BOUND:g}):\n" + _matrix())


def _matrix() -> str:
    lines = ["mode     " + "".join(f"{d:>9}" for d in DOWN)]
    for mode in MODES:
        lines.append(f"{mode:<9}" + "".join(
            f"{TIMINGS[(mode, d)]:>9.2f}" if (mode, d) in TIMINGS else f"{'-':>9}"
            for d in DOWN))
    return "\n".join(lines)


def _records(topic: str, ids: range) -> list[OutgoingRecord]:
    return [OutgoingRecord(topic, encode({"request_id": f"req-{n}"}, {
        "message_id": f"m-{n}", "publisher_id": "test.publisher", "event_type": "test.event",
        "priority": "INFO", "payload": {"n": n}, "timestamp": "2026-11-25 00:00:00.000000"}))
        for n in ids]


def _publish_to_kafka(brokers: Brokers, topic: str, ids: range) -> None:
    driver = kafka_transport(brokers)._driver
    try:
        assert driver.publisher.publish(_records(topic, ids)) == [None] * len(ids)
    finally:
        driver.cleanup()


def _bridge(tmp_path: Path, brokers: Brokers, mode: str, unique: str) -> BridgeProcess:
    return BridgeProcess(tmp_path / "bridge", brokers, {
        "kafka_bridge": {"mode": mode, "shutdown_timeout": SHUTDOWN_TIMEOUT},
        "forward": {"topics": unique, "pool": f"{unique}-bridge", "exchanges": "openstack"},
        "reverse": {"kafka_topics": f"{unique}-in.info", "group": unique}})


def _holding(bridge: BridgeProcess, direction: str) -> bool:
    return bridge.metric("kafka_bridge_in_flight", direction=direction) > 0


def _confirmed(bridge: BridgeProcess, direction: str) -> float:
    return bridge.metric("kafka_bridge_notifications_total", direction=direction,
                         event="confirmed")


@pytest.mark.parametrize("down", DOWN)
@pytest.mark.parametrize("mode", MODES)
def test_sigterm_exits_within_the_bound_whatever_is_down_and_loses_nothing(
        tmp_path, outages, unique, mode, down) -> None:
    brokers = outages.brokers
    outages.restore()
    forward, reverse = mode in ("forward", "both"), mode in ("reverse", "both")
    in_topic = f"{unique}-in.info"
    create_topic(brokers, in_topic)
    bridge = _bridge(tmp_path, brokers, mode, unique)
    local = local_transport(brokers)
    sent_forward = sent_reverse = False
    forward_held_on_rabbit = False
    try:
        bridge.start()
        if reverse and down in ("rabbit", "both"):
            # reverse holds records whose destination, RabbitMQ, is down
            outages.stop("rabbit")
            _publish_to_kafka(brokers, in_topic, range(1000, 1000 + COUNT))
            sent_reverse = True
            wait_until(lambda: _holding(bridge, "reverse"), 60,
                       "reverse to hold records while RabbitMQ is down")
            if down == "both":
                outages.stop("kafka")
        elif forward and down in ("kafka", "both"):
            # forward holds notifications whose destination, Kafka, is down
            outages.stop("kafka")
            publish(local, unique, range(COUNT))
            sent_forward = True
            wait_until(lambda: _holding(bridge, "forward"), 60,
                       "forward to hold notifications while Kafka is down")
            if down == "both":
                outages.stop("rabbit")
                forward_held_on_rabbit = True
        else:
            # the broker that goes down is only a source: traffic first, then
            # the outage puts the source in its reconnect (or rebalance) loop
            if forward:
                publish(local, unique, range(COUNT))
                sent_forward = True
                wait_until(lambda: _confirmed(bridge, "forward") >= COUNT, 60,
                           "forward to confirm the notifications")
            if reverse:
                _publish_to_kafka(brokers, in_topic, range(1000, 1000 + COUNT))
                sent_reverse = True
                wait_until(lambda: _confirmed(bridge, "reverse") >= COUNT, 60,
                           "reverse to confirm the records")
            for broker in ("rabbit", "kafka"):
                if down in (broker, "both"):
                    outages.stop(broker)
            time.sleep(1.0)  # let the bridge notice the outage (it logs, no event to await)
        elapsed = bridge.terminate(timeout=60)
        TIMINGS[(mode, down)] = elapsed
        output = bridge.output()
    finally:
        local.cleanup()
        bridge.close()
    assert elapsed <= BOUND, (f"{mode} with {down} down: SIGTERM took {elapsed:.1f}s, over "
                              f"{BOUND:g}s:\n{output[-3000:]}")
    for direction, counts in bridge.stats().items():
        # every message taken was confirmed, handed back, skipped, or is still
        # unacknowledged at its source (left in a thread that did not finish)
        assert counts["failed"] == 0, f"{direction}: {counts}"
        assert counts["received"] == (counts["confirmed"] + counts["requeued"]
                                      + counts["in_flight"] + counts["loop_suppressed"]
                                      + counts["filtered"]), f"{direction}: {counts}"
    # Nothing lost: with the brokers back, a new bridge delivers what the
    # stopped one held. (A RabbitMQ restart empties the test's non-durable
    # queues: what forward held there is checked by the counters above.)
    outages.restore()
    local = local_transport(brokers)
    # reverse republishes Kafka topic T.info on local topic T
    collector = LocalCollector(local, f"{unique}-in") if sent_reverse else None
    kafka = KafkaCollector(brokers, f"{unique}.info")
    again = _bridge(tmp_path, brokers, mode, unique)
    try:
        again.start()
        if sent_forward and not forward_held_on_rabbit:
            wait_until(lambda: set(kafka.ids()) >= set(range(COUNT)), 60,
                       lambda: f"every forwarded notification in Kafka (have "
                               f"{len(set(kafka.ids()))})")
        if collector is not None:
            wanted = set(range(1000, 1000 + COUNT))
            wait_until(lambda: set(collector.ids()) >= wanted, 60,
                       lambda: f"every reverse notification locally (have "
                               f"{len(set(collector.ids()) & wanted)})")
    finally:
        again.close()
        if collector is not None:
            collector.close()
        local.cleanup()
        kafka.close()


def test_sigterm_while_waiting_for_kafka_at_start_exits_at_once(tmp_path, brokers) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    bridge = BridgeProcess(tmp_path / "bridge", brokers, {"kafka_bridge": {
        "mode": "both", "shutdown_timeout": SHUTDOWN_TIMEOUT,
        "kafka_url": f"kafka-notify://127.0.0.1:{closed_port}/"}, "reverse": {
        "kafka_topics": "t.info"}})
    try:
        bridge.start_without_waiting()
        wait_until(lambda: "waiting for Kafka" in bridge.output(), 30,
                   "the bridge to wait for Kafka")
        time.sleep(0.5)  # into the next connection attempt (connect_timeout 10 s)
        assert bridge.terminate(timeout=60) <= BOUND
    finally:
        bridge.close()


def test_sighup_restart_with_kafka_down_is_bounded_and_loses_nothing(
        tmp_path, outages, unique) -> None:
    brokers = outages.brokers
    outages.restore()
    bridge = _bridge(tmp_path, brokers, "forward", unique)
    local = local_transport(brokers)
    try:
        bridge.start()
        outages.stop("kafka")
        publish(local, unique, range(COUNT))
        wait_until(lambda: _holding(bridge, "forward"), 60,
                   "forward to hold notifications while Kafka is down")
        began = time.monotonic()
        bridge.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "kafka-bridge stopped" in bridge.output(), 60,
                   "the old worker to stop after SIGHUP")
        elapsed = time.monotonic() - began
        assert elapsed <= BOUND, f"SIGHUP's stop took {elapsed:.1f}s:\n{bridge.output()[-3000:]}"
        assert bridge.proc.poll() is None, "SIGHUP ended the daemon"
        outages.restore()
        wait_until(lambda: bridge.output().count("kafka-bridge running") == 2, 90,
                   "the new worker to run once Kafka is back")
        kafka = KafkaCollector(brokers, f"{unique}.info")
        try:
            wait_until(lambda: set(kafka.ids()) >= set(range(COUNT)), 60,
                       lambda: f"what the old worker held, in Kafka (have "
                               f"{len(set(kafka.ids()))})")
        finally:
            kafka.close()
    finally:
        local.cleanup()
        bridge.close()
