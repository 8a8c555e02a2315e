"""Real local brokers for development and tests: Apache Kafka and RabbitMQ.

``kafka-bridge-devenv start --dir DIR`` starts them bound to 127.0.0.1 on free
ports with their own data directories and prints shell ``export`` lines
naming them (``KAFKA_BRIDGE_RABBIT_URL``, ``KAFKA_BRIDGE_KAFKA_BOOTSTRAP``,
``KAFKA_BRIDGE_KAFKA_URL``, and in sasl_ssl mode ``KAFKA_BRIDGE_KAFKA_CA``,
``KAFKA_BRIDGE_KAFKA_USER``, ``KAFKA_BRIDGE_KAFKA_PASSWORD``).
"""

from kafka_bridge_devenv.environment import (StartOptions, format_exports, restart_one, start,
                                             status, stop, stop_one)
from kafka_bridge_devenv.processes import DevenvError

__all__ = ["DevenvError", "StartOptions", "format_exports", "restart_one", "start", "status",
           "stop", "stop_one"]
