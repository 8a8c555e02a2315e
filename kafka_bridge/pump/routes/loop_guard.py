"""The loop guard: nothing returns to the side it came from.

What forward mode writes to Kafka carries the record header
``kafka_bridge_origin: local``; what reverse mode republishes locally carries
``kafka_bridge_origin: kafka`` in its context. Each direction skips what the
other direction produced, in ``both`` mode and between two bridges pointed at
each other.
"""

ORIGIN_KEY = "kafka_bridge_origin"
ORIGIN_LOCAL = "local"
ORIGIN_KAFKA = "kafka"
