"""kafka-bridge: OpenStack oslo.messaging notifications to and from Apache Kafka.

The package has three parts:

* the Kafka layer shared by both fronts,
* the ``kafka-notify://`` oslo.messaging driver,
* the ``kafka-bridge`` daemon that pumps notifications between a local
  oslo.messaging transport and Kafka.

``kafka_bridge.devenv`` starts real local brokers for development and tests.
"""
