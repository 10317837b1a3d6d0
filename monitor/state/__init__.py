"""Durable state for the embedded runtime (and the Kafka poller): one SQLite file."""
