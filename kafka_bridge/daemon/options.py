"""Configuration options of the ``kafka-bridge`` daemon.

``[DEFAULT] transport_url`` (oslo.messaging's own option) names the local
transport, normally ``rabbit://``; ``[kafka_bridge] kafka_url`` names Kafka.
Every option but ``[metrics]``, ``workers`` and ``single_active_consumer`` is
mutable: SIGHUP re-reads the files and restarts the workers with the new values.
"""

from __future__ import annotations

import copy

from oslo_config import cfg

from kafka_bridge.notification import PRIORITIES

#: the control exchanges of the common OpenStack services (as Ceilometer listens to)
DEFAULT_EXCHANGES = ("nova", "glance", "neutron", "cinder", "heat", "keystone", "swift",
                     "trove", "zaqar", "sahara", "ironic", "magnum", "designate", "aodh",
                     "octavia", "manila", "openstack")

BRIDGE_OPTS = [
    cfg.StrOpt("mode", mutable=True, default="forward", choices=("forward", "reverse", "both"),
               help="forward: local transport (RabbitMQ) to Kafka. reverse: Kafka topics to "
                    "local listeners. both: the two at once; the loop guard keeps a "
                    "notification from returning to the side it came from."),
    cfg.StrOpt("kafka_url", mutable=True, secret=True,
               help="kafka-notify:// URL of the Kafka cluster, e.g. "
                    "kafka-notify://user:pass@kafka1:9093,kafka2:9093/?security_protocol="
                    "SASL_SSL&sasl_mechanism=SCRAM-SHA-512&ssl_cafile=/etc/ssl/ca.pem. "
                    "Options of [oslo_messaging_kafka_notify] apply; URL parameters win."),
    cfg.IntOpt("batch_size", mutable=True, default=500, min=1,
               help="Most notifications forwarded together; the destination confirms a "
                    "batch at once, so larger batches amortise confirmations. A batch is "
                    "what arrived while the previous one was being confirmed, so batches "
                    "grow with the load without waiting."),
    cfg.FloatOpt("batch_timeout", mutable=True, default=0.0, min=0.0,
                 help="Seconds to wait for more notifications once the first of a batch "
                      "arrived. 0: forward at once what has arrived (lowest latency). "
                      "Raise it only to trade latency for fewer, larger batches."),
    cfg.StrOpt("workers", default="1",
               help="Worker processes, each with its own connections: a number, or auto "
                    "for one per CPU this process may run on. Forward workers are "
                    "competing consumers of the same queues and reverse workers members of "
                    "the same consumer group, so the notifications of one key may be "
                    "forwarded out of order across workers (see [forward] "
                    "single_active_consumer). One metrics and health endpoint serves the "
                    "whole daemon. Changing it needs a restart."),
    cfg.FloatOpt("shutdown_timeout", mutable=True, default=8.0, min=0.0,
                 help="Seconds SIGTERM waits for in-flight notifications to be confirmed. "
                      "What is not confirmed by then goes back to its source (RabbitMQ "
                      "requeue, Kafka offset not committed): nothing is lost."),
]

FORWARD_OPTS = [
    cfg.ListOpt("exchanges", mutable=True, default=list(DEFAULT_EXCHANGES),
                help="Control exchanges to take notifications from."),
    cfg.ListOpt("topics", mutable=True, default=["notifications"],
                help="Notification topics to take (each service's "
                     "[oslo_messaging_notifications] topics)."),
    cfg.ListOpt("priorities", mutable=True, default=list(PRIORITIES),
                help="Priorities to take: any of " + ", ".join(PRIORITIES) + "."),
    cfg.StrOpt("pool", mutable=True,
               help="Listener pool. With a pool the bridge gets its own queues and its own "
                    "copy of every notification, beside other listeners such as Ceilometer. "
                    "Without one it consumes the default queues (<topic>.<priority>) and "
                    "competes with any other consumer of them: use that only when the "
                    "bridge is their sole reader. Bridges sharing a pool share the load."),
    cfg.BoolOpt("single_active_consumer", default=False,
                help="Declare the bridge's queues with RabbitMQ's x-single-active-consumer: "
                     "one consumer of a queue (one worker of one bridge) receives at a time, "
                     "the others stand by and take over if it goes away. Keeps the order of "
                     "the notifications of a queue, hence of each record key, in Kafka, at "
                     "the price of one worker per queue. RabbitMQ refuses to redeclare an "
                     "existing queue with another value: delete the queues (or use a new "
                     "pool) when changing it. Changing it needs a restart."),
    cfg.StrOpt("topic_template", mutable=True, default="{topic}.{priority}",
               help="Kafka topic of a notification. Fields: {exchange}, {topic}, "
                    "{priority}, {event_type}, {publisher_id}, or a path into the "
                    "notification: a JSON Pointer such as "
                    "{/payload/nova_object.data/tenant_id} or a dotted path such as "
                    "{payload.tenant_id} (one topic per project). Values are made legal "
                    "topic names (other characters than letters, digits, '.', '_' and '-' "
                    "become '_'). The default matches kafka-notify:// and oslo.messaging's "
                    "kafka:// naming."),
    cfg.StrOpt("topic_fallback", mutable=True, default="{topic}.{priority}",
               help="Kafka topic of a notification that lacks a field topic_template's "
                    "paths name, or whose topic would not be a legal name. Fields: "
                    "{exchange}, {topic}, {priority}, {event_type}, {publisher_id}."),
    cfg.ListOpt("include_event_types", mutable=True, default=["*"],
                help="Shell patterns (fnmatch) of event types to forward."),
    cfg.ListOpt("exclude_event_types", mutable=True, default=[],
                help="Shell patterns of event types never to forward; checked after "
                     "include_event_types."),
    cfg.StrOpt("output_format", mutable=True, default="oslo", choices=("oslo", "plain"),
               help="oslo: the envelope oslo.messaging's Kafka drivers read (with the "
                    "context). plain: the notification JSON alone (message_id, "
                    "publisher_id, event_type, priority, payload, timestamp), for "
                    "consumers outside OpenStack."),
    cfg.StrOpt("dead_letter_topic", mutable=True, default="kafka-bridge.dead-letter",
               help="Kafka topic for notifications that cannot be mapped or are refused "
                    "by Kafka for good (too large). The reason is in the record header "
                    "kafka_bridge_error."),
]

REVERSE_OPTS = [
    cfg.ListOpt("kafka_topics", mutable=True, default=[],
                help="Kafka topics to feed to local listeners. A topic <topic>.<priority> "
                     "is republished on local topic <topic> with that priority."),
    cfg.StrOpt("group", mutable=True, default="kafka-bridge-reverse",
               help="Kafka consumer group; bridges in one group share the partitions."),
    cfg.StrOpt("start_from", mutable=True, default="committed",
               help="Where to start: committed (where the group stopped; new partitions "
                    "from the moment the bridge started), earliest, latest, or a time "
                    "(ISO 8601, e.g. 2026-11-24T12:00:00Z) to replay retained "
                    "notifications; the last three apply each time the bridge starts."),
    cfg.StrOpt("exchange", mutable=True,
               help="Local exchange to republish on; unset: [DEFAULT] control_exchange."),
]

METRICS_OPTS = [
    cfg.BoolOpt("enabled", default=True,
                help="Serve Prometheus metrics at /metrics and the probes /healthz (the "
                     "process is alive) and /readyz (both sides connected, no "
                     "backpressure) over HTTP."),
    cfg.HostAddressOpt("host", default="127.0.0.1",
                       help="Address the metrics and health endpoint listens on. Use 0.0.0.0 "
                            "in a container so probes and Prometheus can reach it."),
    cfg.PortOpt("port", default=9464,
                help="Port of the metrics and health endpoint."),
]

GROUPS = (("kafka_bridge", BRIDGE_OPTS), ("forward", FORWARD_OPTS), ("reverse", REVERSE_OPTS),
          ("metrics", METRICS_OPTS))


def register(conf: cfg.ConfigOpts) -> None:
    """Register the daemon's option groups on conf."""
    for group, opts in GROUPS:
        conf.register_opts(opts, group=group)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """The daemon's groups for oslo-config-generator."""
    return [(group, copy.deepcopy(opts)) for group, opts in GROUPS]
