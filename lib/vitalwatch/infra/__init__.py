"""Local infrastructure: real Kafka (KRaft), mongod and Elasticsearch as processes on 127.0.0.1."""
