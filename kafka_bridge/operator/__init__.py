"""Operator tools: ``kafka-bridge replay``, ``kafka-bridge tail`` and ``kafka-bridge check``.

They read the daemon's configuration files. replay and tail read Kafka
without a consumer group, so they never move a running daemon's offsets;
check changes nothing unless asked to create topics.
"""

#: first arguments of ``kafka-bridge`` that name an operator tool instead of the daemon
COMMANDS = ("replay", "tail", "check")
