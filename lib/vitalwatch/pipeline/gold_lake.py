"""The gold tables' topics → ``gold/risk_scores`` and ``gold/alerts`` (the ``gold_lake`` stage).

The scoring query publishes its rows to ``kafka.topics.gold_scores`` and ``gold_alerts``
(:func:`vitalwatch.pipeline.gold.lake_records`) instead of committing to Delta itself, so an
alert never waits for a Delta commit. This query writes them to the tables.

**Exactly once.** The scoring query delivers at least once: a batch replayed after a crash
publishes the same records again, with the same keys. Here a key already seen within
``streaming.dedupe_watermark`` (of Kafka time) is dropped (``dropDuplicatesWithinWatermark``,
state in the checkpoint), and each table append carries ``txnAppId``/``txnVersion`` (this
query's id and batch id), so this query's own replays commit nothing twice."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery

from vitalwatch.config import Settings
from vitalwatch.infra.endpoints import Endpoints, resolve
from vitalwatch.pipeline.bronze import kafka_stream
from vitalwatch.pipeline.gold import (
    GOLD_ALERTS,
    GOLD_SCORES,
    JSON_TIMESTAMP,
    ensure_gold,
    report_times,
)
from vitalwatch.pipeline.triggers import start_foreach_batch

QUERY = "gold_lake"


def lake_input(kafka: DataFrame, settings: Settings) -> DataFrame:
    """Kafka rows of the two topics → (topic, key, value), each key once (see module doc)."""
    return (kafka.select("topic", F.col("key").cast("string").alias("key"),
                         F.col("value").cast("string").alias("value"), "timestamp")
            .withWatermark("timestamp", settings.streaming.dedupe_watermark)
            .dropDuplicatesWithinWatermark(["topic", "key"]))


def table_rows(records: DataFrame, topic: str, schema) -> DataFrame:
    """One topic's records → the table's rows (its schema, in its column order)."""
    parsed = F.from_json("value", schema, {"timestampFormat": JSON_TIMESTAMP})
    return records.where(F.col("topic") == topic).select(parsed.alias("r")).select("r.*")


def write_lake(batch: DataFrame, batch_id: int, settings: Settings, app_id: str,
               schemas: dict[tuple[str, str], T.StructType]) -> None:
    """One batch's records appended to their tables (``schemas``: each table's, read once at
    start — a schema read per batch is a snapshot load per table)."""
    import time

    t = settings.kafka.topics
    times: dict[str, float] = {}
    batch = batch.persist()
    try:
        counts = {r["topic"]: r["count"] for r in batch.groupBy("topic").count().collect()}
        for topic, table in ((t.gold_scores, GOLD_SCORES), (t.gold_alerts, GOLD_ALERTS)):
            if not counts.get(topic):
                continue  # no empty commits: they cost seconds and wake the serving queries for nothing
            t0 = time.perf_counter()
            path = settings.table_path(*table)
            (table_rows(batch, topic, schemas[table]).write.format("delta").mode("append")
             .option("txnAppId", f"{app_id}:{table[1]}").option("txnVersion", batch_id).save(path))
            times[f"delta_{table[1]}"] = time.perf_counter() - t0
    finally:
        batch.unpersist()
        report_times(QUERY, batch_id, times)


def start_gold_lake(spark: SparkSession, settings: Settings, *, available_now: bool = False,
                    endpoints: Endpoints | None = None, query_name: str = QUERY) -> StreamingQuery:
    ensure_gold(spark, settings)
    schemas = {table: spark.read.format("delta").load(settings.table_path(*table)).schema
               for table in (GOLD_SCORES, GOLD_ALERTS)}
    endpoints = endpoints or resolve(settings, ("kafka",))
    t = settings.kafka.topics
    records = lake_input(kafka_stream(spark, settings, endpoints, f"{t.gold_scores},{t.gold_alerts}"), settings)
    return start_foreach_batch(records, settings, query_name=query_name,
                               checkpoint=settings.checkpoint_path(query_name), available_now=available_now,
                               stage=QUERY, write=lambda df, bid, app_id: write_lake(df, bid, settings, app_id, schemas))
