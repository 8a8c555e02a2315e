"""The Kafka layer shared by the daemon and the ``kafka-notify://`` driver.

settings (options, URL, kafka-python configuration), envelope (wire format),
producer (publish and confirm), consumer (group membership, at-least-once
commits), topics (creation), connectivity (clear connection errors), errors
(the one mapping of kafka-python exceptions).
"""
