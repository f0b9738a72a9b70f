"""The streaming pipeline stages: bronze (Kafka as received), silver (parsed vital signs)."""
