"""Where the pump delivers records: Kafka (forward) and RabbitMQ (reverse)."""
