"""kafka-python internals kafka-bridge relies on: one connection to each bootstrap broker.

kafka-python 3.0's clients report a wrong password, an untrusted CA and a
closed port alike, as "Unable to bootstrap" after their bootstrap timeout,
and its public API has no way to open a single connection and read why it
failed. ``kafka.net`` (``NetworkSelector``, ``KafkaConnectionManager``) does
exactly that; it exists from kafka-python 3.0 on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import kafka.errors as kafka_errors
from kafka.net import KafkaConnectionManager, NetworkSelector


@dataclasses.dataclass(frozen=True)
class BrokerProbe:
    """The outcome of opening one connection (TLS, ApiVersions and SASL included)."""

    #: host:port of the bootstrap broker
    where: str
    succeeded: bool
    #: why it failed (None if it succeeded or simply timed out)
    error: BaseException | None
    #: the broker answered ApiVersions before the failure
    answered: bool


def probe_bootstrap_brokers(config: dict[str, Any], timeout_ms: int) -> Iterator[BrokerProbe]:
    """Connect to each bootstrap broker of a kafka-python client config in turn.

    Yields one probe per broker, lazily: a caller that stops iterating at
    the first success opens no further connection. Every connection is
    closed when the iteration ends.
    """
    net = NetworkSelector(**config)
    manager = KafkaConnectionManager(net, **config)
    try:
        for broker in manager.cluster.bootstrap_brokers():
            where = f"{broker.host}:{broker.port}"
            try:
                conn = manager.get_connection(broker.node_id, timeout_ms=timeout_ms)
            except kafka_errors.KafkaError as refused:
                yield BrokerProbe(where, False, refused, False)
                continue
            net.poll(timeout_ms=timeout_ms, future=conn.init_future)
            future = conn.init_future
            error = future.exception if future.is_done and not future.succeeded() else None
            yield BrokerProbe(where, future.succeeded(), error, conn.broker_version is not None)
    finally:
        manager.close()
        net.close()
