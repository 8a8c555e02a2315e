"""kafka-bridge: OpenStack oslo.messaging notifications to and from Apache Kafka.

The package has three parts:

* the Kafka layer shared by both fronts,
* the ``kafka-notify://`` oslo.messaging driver,
* the ``kafka-bridge`` daemon that pumps notifications between a local
  oslo.messaging transport and Kafka.

Development and test tooling (real local brokers) is the separate ``kafka_bridge_devenv``
package under ``devenv/``; it is not part of the runtime package.
"""
