"""The naive bridges kafka-bridge is measured against, written the obvious way.

forward: an oslo notification listener (threading executor) on RabbitMQ whose
endpoint re-sends each notification through an oslo Notifier on
oslo.messaging's own ``kafka://`` driver. reverse: an oslo listener on
``kafka://`` re-sending through a Notifier on ``rabbit://``. Run as a
process, like the daemon: prints READY once its listener started, stops on
SIGTERM (listener stopped, transports cleaned up, which flushes the Kafka
producer).

    python tools/bench/naive.py forward|reverse --rabbit-url URL
        --kafka-url kafka://HOST:PORT/ --topic T --pool P
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import oslo_messaging
from oslo_config import cfg

READY = "naive bridge READY"


class Resender:
    """Endpoint: each info notification is re-sent as it came, on the other transport.

    Only info, as kafka-bridge is configured here (its forward with
    ``priorities = info``, its reverse reading ``<topic>.info``).
    """

    def __init__(self, notifier: oslo_messaging.Notifier) -> None:
        self._notifier = notifier

    def _resend(self, priority: str, ctxt, publisher_id, event_type, payload) -> None:
        notifier = self._notifier.prepare(publisher_id=publisher_id)
        getattr(notifier, priority)(ctxt, event_type, payload)

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._resend("info", ctxt, publisher_id, event_type, payload)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("direction", choices=("forward", "reverse"))
    parser.add_argument("--rabbit-url", required=True)
    parser.add_argument("--kafka-url", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--pool", required=True)
    args = parser.parse_args(argv)

    conf = cfg.ConfigOpts()
    conf([])
    rabbit = oslo_messaging.get_notification_transport(conf, url=args.rabbit_url)
    kafka = oslo_messaging.get_notification_transport(conf, url=args.kafka_url)
    source, destination = (rabbit, kafka) if args.direction == "forward" else (kafka, rabbit)
    notifier = oslo_messaging.Notifier(destination, driver="messagingv2", topics=[args.topic])
    listener = oslo_messaging.get_notification_listener(
        source, [oslo_messaging.Target(topic=args.topic)], [Resender(notifier)],
        executor="threading", pool=args.pool)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    listener.start()
    print(READY, flush=True)
    stop.wait()
    listener.stop()
    listener.wait()
    kafka.cleanup()
    rabbit.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
