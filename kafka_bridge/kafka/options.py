"""Configuration options of the Kafka layer, group ``oslo_messaging_kafka_notify``.

The ``kafka-notify://`` driver and the daemon read the same options; any of
them can be overridden by a query parameter of the transport URL
(``kafka-notify://host:9092/?compression_codec=lz4``).
"""

from __future__ import annotations

import copy

from oslo_config import cfg

GROUP = "oslo_messaging_kafka_notify"

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
COMPRESSION_CODECS = ("none", "gzip", "snappy", "lz4", "zstd")

CONNECTION_OPTS = [
    cfg.StrOpt("security_protocol", mutable=True, default="PLAINTEXT", choices=SECURITY_PROTOCOLS,
               help="Protocol used to talk to the brokers. SSL and SASL_SSL encrypt the "
                    "connection; SASL_PLAINTEXT and SASL_SSL authenticate with "
                    "sasl_mechanism."),
    cfg.StrOpt("sasl_mechanism", mutable=True, default="PLAIN", choices=SASL_MECHANISMS,
               help="SASL mechanism for SASL_PLAINTEXT and SASL_SSL. Prefer SCRAM-SHA-512; "
                    "PLAIN sends the password itself and is only safe over SASL_SSL."),
    cfg.StrOpt("sasl_username", mutable=True,
               help="SASL user name. A user name in the transport URL takes precedence."),
    cfg.StrOpt("sasl_password", mutable=True, secret=True,
               help="SASL password. A password in the transport URL takes precedence. "
                    "Never logged."),
    cfg.StrOpt("ssl_cafile", mutable=True,
               help="PEM file of the certificate authorities trusted to sign the brokers' "
                    "certificates. Unset: the system's default trust store."),
    cfg.BoolOpt("ssl_check_hostname", mutable=True, default=True,
                help="Check that a broker's certificate names the host connected to. "
                     "Turn off only for testing."),
    cfg.StrOpt("ssl_certfile", mutable=True,
               help="PEM client certificate, for brokers that require TLS client "
                    "authentication (ssl.client.auth=required)."),
    cfg.StrOpt("ssl_keyfile", mutable=True, help="PEM private key of ssl_certfile."),
    cfg.StrOpt("ssl_key_password", mutable=True, secret=True,
               help="Password of ssl_keyfile, if it is encrypted. Never logged."),
    cfg.FloatOpt("connect_timeout", mutable=True, default=10.0, min=0.5,
                 help="Seconds to wait for the first connection to a broker (TCP, TLS and "
                      "SASL) before giving up with an error that says what failed."),
]

PRODUCER_OPTS = [
    cfg.StrOpt("producer_acks", mutable=True, default="all", choices=("all", "1", "0"),
               help="Replica acknowledgements a broker waits for before it confirms a "
                    "record. 'all' (the default) is the only setting that survives the "
                    "loss of the partition leader; kafka-bridge's no-loss promise holds "
                    "only with it."),
    cfg.BoolOpt("enable_idempotence", mutable=True, default=True,
                help="Idempotent producer: retries inside one attempt never duplicate or "
                     "reorder records. Requires producer_acks=all."),
    cfg.FloatOpt("delivery_timeout", mutable=True, default=30.0, min=1.0,
                 help="Seconds one delivery attempt may take, broker retries included, "
                      "before it counts as failed. A send's retry argument (oslo "
                      "semantics: None or -1 forever, 0 none, N times) says how many "
                      "further attempts follow."),
    cfg.StrOpt("compression_codec", mutable=True, default="none", choices=COMPRESSION_CODECS,
               help="Compression of record batches. snappy, lz4 and zstd need the "
                    "python-snappy, lz4 and zstandard packages."),
    cfg.IntOpt("linger_ms", mutable=True, default=0, min=0,
               help="Milliseconds the producer waits to fill a batch before sending it. "
                    "Higher values raise throughput and latency."),
    cfg.IntOpt("batch_size", mutable=True, default=65536, min=1024,
               help="Upper bound in bytes of one record batch per partition."),
    cfg.IntOpt("max_request_size", mutable=True, default=1048576, min=1024,
               help="Largest record, in bytes, the producer sends. Larger records are "
                    "refused with their size; raise the topic's max.message.bytes on the "
                    "brokers together with this."),
    cfg.StrOpt("record_key_field", mutable=True,
               help="Path of a notification field whose value becomes the Kafka record "
                    "key, so records of one resource keep their order on one partition. "
                    "A JSON Pointer takes keys literally, dots included: "
                    "/payload/nova_object.data/uuid for nova's versioned notifications. "
                    "A dotted path (payload.instance_id, publisher_id) splits on dots, "
                    "and tries dots as part of a key where that finds nothing. Unset or "
                    "missing in a notification: no key (records spread over partitions)."),
]

TOPIC_OPTS = [
    cfg.IntOpt("topic_partitions", mutable=True, default=3, min=1,
               help="Partitions of the topics kafka-bridge creates when they are missing. "
                    "Listeners in one consumer group can share a topic at most this many "
                    "ways."),
    cfg.IntOpt("topic_replication_factor", mutable=True, default=-1, min=-1,
               help="Replication factor of created topics; -1 uses the brokers' "
                    "default.replication.factor."),
]

CONSUMER_OPTS = [
    cfg.StrOpt("consumer_group_prefix", mutable=True, default="kafka-notify",
               help="Prefix of the consumer group of a listener without a pool. Such a "
                    "listener's group is derived from its topics, so listeners on the same "
                    "topics share the work and listeners on other topics do not interfere."),
    cfg.IntOpt("max_poll_records", mutable=True, default=500, min=1,
               help="Most records fetched from Kafka in one poll."),
    cfg.IntOpt("max_unacknowledged", mutable=True, default=1000, min=1,
               help="Most records a listener hands out before they are acknowledged. At "
                    "this bound it stops fetching until acknowledgements free room for half "
                    "of max_poll_records, which bounds memory."),
    cfg.FloatOpt("commit_interval", mutable=True, default=0.2, min=0.0,
                 help="Seconds between commits of acknowledged offsets. Records "
                      "acknowledged but not yet committed are delivered again after a "
                      "crash (at-least-once)."),
    cfg.IntOpt("session_timeout_ms", mutable=True, default=10000, min=1000,
               help="Consumer group session timeout: a listener that stops heartbeating "
                    "this long loses its partitions to the rest of the group."),
]


def all_opts() -> list[cfg.Opt]:
    """Every option of the group, in documentation order."""
    return CONNECTION_OPTS + PRODUCER_OPTS + TOPIC_OPTS + CONSUMER_OPTS


def register(conf: cfg.ConfigOpts) -> None:
    """Register the group's options on conf (idempotent)."""
    conf.register_opts(all_opts(), group=GROUP)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """The group for oslo-config-generator (entry point oslo.config.opts)."""
    return [(GROUP, copy.deepcopy(all_opts()))]
