"""Kafka → ``bronze/observations_raw``: every message exactly as received, nothing dropped.

Exactly-once into Delta: the Kafka source records its offsets in the checkpoint and the
Delta sink commits each micro-batch idempotently (batch id in the Delta log), so a restart
from the checkpoint neither skips nor repeats a message."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from vitalwatch.config import Settings
from vitalwatch.infra.endpoints import Endpoints
from vitalwatch.pipeline.lake import BRONZE, KAFKA_BRONZE_SCHEMA, PARTITIONS, ensure_table
from vitalwatch.pipeline.triggers import apply_trigger


def kafka_stream(spark: SparkSession, settings: Settings, endpoints: Endpoints, topic: str) -> DataFrame:
    """The raw Kafka source of ``topic`` (subscribe; offsets owned by the checkpoint), read as
    the ``pipeline`` principal."""
    k = settings.kafka
    return (spark.readStream.format("kafka")
            .options(**endpoints.kafka("pipeline").spark_options())
            .option("subscribe", topic)
            .option("startingOffsets", k.starting_offsets)
            .option("maxOffsetsPerTrigger", str(k.max_offsets_per_trigger))
            .option("failOnDataLoss", str(k.fail_on_data_loss).lower())
            .load())


def to_bronze(kafka_df: DataFrame) -> DataFrame:
    """Kafka rows → bronze rows: key and value untouched, coordinates, times."""
    now = F.current_timestamp()
    return kafka_df.select(
        "key", "value", "topic", "partition", "offset",
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("timestampType").alias("kafka_timestamp_type"),
        now.alias("ingest_time"),
        F.to_date(now).alias("ingest_date"),
    )


def start_bronze(spark: SparkSession, settings: Settings, endpoints: Endpoints, *,
                 available_now: bool = False, query_name: str = "bronze_observations") -> StreamingQuery:
    path = settings.table_path(*BRONZE)
    ensure_table(spark, path, KAFKA_BRONZE_SCHEMA, PARTITIONS[BRONZE])
    stream = to_bronze(kafka_stream(spark, settings, endpoints, settings.kafka.topics.observations))
    writer = (stream.writeStream.format("delta").queryName(query_name).outputMode("append")
              .option("checkpointLocation", settings.checkpoint_path(query_name)))
    return apply_trigger(writer, settings, available_now, "bronze").start(path)
