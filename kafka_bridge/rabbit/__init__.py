"""The RabbitMQ layer of forward's source and reverse's sink.

Settings from oslo's documented options, connections and declarations with
kombu's public API, and the rabbit driver's wire format.
"""
