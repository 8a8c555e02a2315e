"""The README demo: kafka-bridge in both directions between real RabbitMQ and Kafka.

Starts devenv, runs the ``kafka-bridge`` daemon in ``both`` mode, publishes
notifications with an oslo Notifier on RabbitMQ and reads them from Kafka,
publishes on Kafka (``kafka-notify://``) and receives them with an oslo
listener on RabbitMQ, prints counts and rates, and stops everything.
Run with ``make demo``; exits 0 only if every notification arrived.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from kafka_bridge.daemon.cli import run_on_threads

# The demo's oslo transports run on threads, as the daemon's: chosen before
# oslo.messaging is imported (else eventlet, and its deprecation warning).
run_on_threads()

from kafka_bridge_devenv import environment  # noqa: E402
from kafka_bridge_devenv.brokers import DevenvBrokers  # noqa: E402
from kafka_bridge_devenv.traffic import (BridgeProcess, KafkaCollector,  # noqa: E402
                                         LocalCollector, create_topic, kafka_transport,
                                         local_transport, publish, wait_until)

COUNT = 5000


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="kafka-bridge-demo-") as tmp:
        directory = Path(tmp)
        began = time.monotonic()
        env = DevenvBrokers(directory / "devenv", environment.StartOptions())
        brokers = env.brokers
        print(f"devenv:  RabbitMQ and Kafka ({brokers.kafka_bootstrap}) started in "
              f"{time.monotonic() - began:.1f}s")
        create_topic(brokers, "demo-from-kafka.info")
        bridge = BridgeProcess(directory / "bridge", brokers, {
            "kafka_bridge": {"mode": "both"},
            "forward": {"topics": "demo", "pool": "demo-bridge"},
            "reverse": {"kafka_topics": "demo-from-kafka.info", "group": "demo-bridge"}})
        local, kafka = local_transport(brokers), kafka_transport(brokers)
        try:
            bridge.start()
            print("bridge:  kafka-bridge running in both mode")
            forward(brokers, local)
            reverse(local, kafka)
            print(f"bridge:  stopped by SIGTERM in {bridge.terminate():.1f}s; counters "
                  f"{bridge.stats()}")
        finally:
            bridge.close()
            local.cleanup()
            kafka.cleanup()
            env.close()
        print("devenv:  stopped")
    print("demo: OK")
    return 0


def forward(brokers, local) -> None:
    received = KafkaCollector(brokers, "demo.info")
    try:
        began = time.monotonic()
        publish(local, "demo", range(COUNT))
        wait_until(lambda: len(set(received.ids())) == COUNT, 120,
                   lambda: f"{COUNT} in Kafka (have {len(set(received.ids()))})")
        elapsed = time.monotonic() - began
    finally:
        received.close()
    print(f"forward: {COUNT} notifications published on RabbitMQ (topic demo) were read "
          f"from Kafka topic demo.info in {elapsed:.2f}s ({COUNT / elapsed:,.0f}/s end to end)")


def reverse(local, kafka) -> None:
    received = LocalCollector(local, "demo-from-kafka")
    try:
        began = time.monotonic()
        publish(kafka, "demo-from-kafka", range(COUNT))
        wait_until(lambda: len(set(received.ids())) == COUNT, 120,
                   lambda: f"{COUNT} on RabbitMQ (have {len(set(received.ids()))})")
        elapsed = time.monotonic() - began
    finally:
        received.close()
    print(f"reverse: {COUNT} notifications published on Kafka (kafka-notify://, topic "
          f"demo-from-kafka) reached an oslo listener on RabbitMQ in {elapsed:.2f}s "
          f"({COUNT / elapsed:,.0f}/s end to end)")


if __name__ == "__main__":
    sys.exit(main())
