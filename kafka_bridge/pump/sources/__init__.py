"""Where the pump takes messages from: RabbitMQ (forward) and Kafka (reverse)."""
