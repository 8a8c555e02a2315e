"""Forward mode accounts for every message it takes from RabbitMQ: bad ones reach the dead letter.

Real RabbitMQ and Kafka. Messages that no oslo listener could read are
published raw (py-amqp) between good notifications; each must reach the
dead-letter topic with its original bytes and the reason, none may be
rejected and lost, and the good ones must all arrive.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

import amqp
import pytest
from kombu import compression

from kafka_bridge_devenv.brokers import Brokers
from kafka_bridge_devenv.traffic import (BridgeProcess, KafkaCollector, local_transport,
                                         publish, wait_until)

GOOD = 1000
NOTIFICATION = {"message_id": "m-bad", "publisher_id": "test.publisher",
                "event_type": "test.event", "priority": "INFO",
                "payload": {"n": -1, "text": "bad"}, "timestamp": "2026-11-25 00:00:00.000000"}


class Bad(NamedTuple):
    kind: str
    body: bytes
    content_type: str | None = "application/json"
    content_encoding: str | None = "utf-8"
    reason: str = ""  # what the kafka_bridge_error header starts with


def envelope(message: object, version: str = "2.0") -> bytes:
    return json.dumps({"oslo.version": version, "oslo.message": json.dumps(message)}).encode()


BAD = [
    Bad("body not JSON", b"this is not JSON {", reason="body is not JSON"),
    Bad("oslo.message not JSON", json.dumps({"oslo.version": "2.0",
                                             "oslo.message": "{broken"}).encode(),
        reason="oslo.message is not JSON"),
    Bad("envelope version 9.0", envelope(NOTIFICATION, "9.0"),
        reason="unsupported envelope version"),
    Bad("JSON array", b"[1, 2, 3]", reason="not an object"),
    Bad("binary garbage", bytes(range(256)) * 4, reason="body is not JSON"),
    Bad("no content type", envelope(NOTIFICATION), content_type=None,
        reason="unsupported content type"),
    Bad("JSON, not an envelope", b'{"foo": 1}', reason="not an oslo notification"),
    Bad("non-string event_type", envelope(dict(NOTIFICATION, event_type=42)),
        reason="not an oslo notification"),
    Bad("empty body", b"", reason="body is not JSON"),
    Bad("2 MB notification", envelope(dict(NOTIFICATION, payload={"text": "x" * 2_000_000})),
        reason="record for topic"),
    Bad("gzip content-encoding", gzip.compress(envelope(NOTIFICATION)), content_encoding="gzip",
        reason="unsupported content encoding"),
    Bad("over max.message.bytes, not JSON", b"\x00" * 1_500_000,
        reason="body is not JSON"),
]


@pytest.fixture
def channel(brokers: Brokers) -> Iterator[amqp.Channel]:
    url = urlsplit(brokers.rabbit_url)
    connection = amqp.Connection(f"{url.hostname}:{url.port}", userid=unquote(url.username),
                                 password=unquote(url.password))
    connection.connect()
    try:
        yield connection.channel()
    finally:
        connection.close()


def publish_raw(channel: amqp.Channel, routing_key: str, body: bytes,
                content_type: str | None, content_encoding: str | None,
                headers: dict | None = None) -> None:
    properties = {k: v for k, v in (("content_type", content_type),
                                    ("content_encoding", content_encoding),
                                    ("application_headers", headers)) if v is not None}
    channel.basic_publish(amqp.Message(body, **properties), exchange="openstack",
                          routing_key=routing_key)


def test_every_bad_message_reaches_the_dead_letter_with_its_original_bytes(
        tmp_path: Path, brokers: Brokers, channel: amqp.Channel, unique: str) -> None:
    dead_topic, queue = f"{unique}.dead", f"{unique}-bridge"
    bridge = BridgeProcess(tmp_path / "bridge", brokers, {
        "kafka_bridge": {"mode": "forward"},
        "forward": {"topics": unique, "pool": queue, "exchanges": "openstack",
                    "dead_letter_topic": dead_topic}}).start()
    dead = KafkaCollector(brokers, dead_topic)
    kafka = KafkaCollector(brokers, f"{unique}.info")
    local = local_transport(brokers)
    try:
        chunk = GOOD // (len(BAD) + 1)
        for index, bad in enumerate(BAD):
            publish(local, unique, range(index * chunk, (index + 1) * chunk))
            publish_raw(channel, f"{unique}.info", bad.body, bad.content_type,
                        bad.content_encoding)
        publish(local, unique, range(len(BAD) * chunk, GOOD))
        # kombu_compression: a compressed notification is a good one
        body, _ = compression.compress(json.dumps({"oslo.version": "2.0", "oslo.message": (
            json.dumps(dict(NOTIFICATION, payload={"n": GOOD, "text": "zipped"})))}).encode(),
            "application/x-gzip")
        publish_raw(channel, f"{unique}.info", body, "application/json", "utf-8",
                    {"compression": "application/x-gzip"})

        wait_until(lambda: set(kafka.ids()) == set(range(GOOD + 1)), 120, lambda: (
            f"{GOOD + 1} good notifications in Kafka (have {len(set(kafka.ids()))})"))
        wait_until(lambda: len(dead.records) >= len(BAD), 60, lambda: (
            f"{len(BAD)} dead letters; none for: "
            f"{[b.kind for b in BAD if not any(holds(r, b.body) for r in dead.records)]}; "
            f"bridge log: {bridge.output()[-3000:]}"))
        table = []
        unmatched = list(dead.records)
        for bad in BAD:
            letter = next((r for r in unmatched if holds(r, bad.body)), None)
            assert letter is not None, f"no dead letter holds the bytes of: {bad.kind}"
            unmatched.remove(letter)
            headers = dict(letter.headers)
            reason = headers["kafka_bridge_error"].decode()
            table.append((bad.kind, reason))
            assert reason.startswith(bad.reason), (bad.kind, reason)
            assert headers["kafka_bridge_exchange"] == b"openstack"
            assert headers["kafka_bridge_routing_key"] == f"{unique}.info".encode()
            assert headers["kafka_bridge_queue"] == queue.encode()
            assert headers.get("kafka_bridge_content_type") == (
                bad.content_type.encode() if bad.content_type else None)
            assert headers.get("kafka_bridge_content_encoding") == (
                bad.content_encoding.encode() if bad.content_encoding else None)
            if len(letter.value) < len(bad.body):
                assert headers["kafka_bridge_truncated_from"] == str(len(bad.body)).encode()
            else:
                assert "kafka_bridge_truncated_from" not in headers
        print("\nkind -> kafka_bridge_error")
        for kind, reason in table:
            print(f"  {kind:34} {reason}")
        wait_until(lambda: channel.queue_declare(queue, passive=True).message_count == 0, 30,
                   "the bridge's queue to be empty")
        assert bridge.proc.poll() is None, "the bridge died"
        assert bridge.metric("kafka_bridge_notifications_total", direction="forward",
                             event="dead_lettered") == len(BAD)
        output = bridge.output()
        assert "skipping it" not in output
        # once per kind of reason, not per message
        assert output.count("dead-lettering a message") <= len({b.reason for b in BAD})
        assert bridge.terminate() < 10
    finally:
        local.cleanup()
        dead.close()
        kafka.close()
        bridge.close()


def holds(record, body: bytes) -> bool:
    """The dead letter holds body: all of it, or its beginning when it says it was cut."""
    if record.value == body:
        return True
    cut = dict(record.headers).get("kafka_bridge_truncated_from")
    return cut == str(len(body)).encode() and record.value == body[:len(record.value)]
