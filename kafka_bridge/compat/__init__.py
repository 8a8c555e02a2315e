"""The one seam for other libraries' private names.

Every use of a private name of oslo.messaging, py-amqp or kafka-python lives
in the module of that library here, with a docstring saying what it relies on
and why the public API does not suffice. Nothing else in kafka_bridge touches
a library's private names.
"""
