"""The ``kafka-bridge`` daemon: forward (local transport to Kafka) and reverse."""
