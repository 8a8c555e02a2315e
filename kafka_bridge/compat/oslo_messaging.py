"""oslo.messaging internals kafka-bridge relies on (driver interface, Kafka envelope).

The ``kafka-notify://`` driver must subclass oslo's driver base classes,
which live in a private module. ``deserialize_msg`` reads the envelope of
oslo's Kafka drivers (and of older, unversioned senders) as they do. The
Kafka record values are written by kafka_bridge.kafka.envelope, byte for
byte as oslo's serialize_msg and jsonutils would (unit-tested). The
RabbitMQ side uses no private name: kafka_bridge.rabbit reads oslo's
documented options and connects with kombu's public API.
"""

from __future__ import annotations

from typing import Any

from oslo_messaging._drivers import base as driver_base
from oslo_messaging._drivers import common as oslo_common

#: the driver base classes a transport driver must subclass (oslo's driver
#: interface lives in a private module; there is no public one)
BaseDriver = driver_base.BaseDriver
IncomingMessage = driver_base.IncomingMessage
Listener = driver_base.Listener
PollStyleListener = driver_base.PollStyleListener
PollStyleListenerAdapter = driver_base.PollStyleListenerAdapter


def deserialize_msg(envelope: Any) -> Any:
    """The message inside an envelope; raises what oslo raises for a bad one."""
    return oslo_common.deserialize_msg(envelope)
