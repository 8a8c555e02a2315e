"""The ``kafka-notify://`` oslo.messaging driver."""

from kafka_bridge.driver.driver import KafkaNotifyDriver

__all__ = ["KafkaNotifyDriver"]
