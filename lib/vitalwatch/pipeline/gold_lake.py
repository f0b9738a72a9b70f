"""The gold tables' topics → ``gold/risk_scores`` and ``gold/alerts`` (the ``gold_lake`` stage).

The scoring query publishes its rows to ``kafka.topics.gold_scores`` and ``gold_alerts``
(:func:`vitalwatch.pipeline.gold.tables.lake_records`) instead of committing to Delta itself, so an
alert never waits for a Delta commit. This query writes them to the tables.

**Exactly once.** The scoring query delivers at least once: a batch replayed after a crash
publishes the same records again, with the same keys. Here a key already seen within
``streaming.dedupe_watermark`` (of Kafka time) is dropped cheaply (``dropDuplicatesWithinWatermark``,
state in the checkpoint), and every write is an insert-only MERGE on the row's key
(:func:`insert_new`): a row whose key the table holds is never written again, whether it comes
from this query's own replay, a re-publish beyond the dedupe window, or a rebuilt checkpoint."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery

from vitalwatch.config import Settings
from vitalwatch.infra.endpoints import Endpoints, resolve
from vitalwatch.pipeline.bronze import kafka_stream
from vitalwatch.pipeline.gold import ensure_gold, report_times
from vitalwatch.pipeline.gold.tables import JSON_TIMESTAMP
from vitalwatch.pipeline.keys import score_key
from vitalwatch.pipeline.lake import GOLD_ALERTS, GOLD_SCORES, read_table
from vitalwatch.pipeline.stages import BY_NAME
from vitalwatch.pipeline.triggers import start_foreach_batch

QUERY = BY_NAME["gold_lake"].query


def lake_input(kafka: DataFrame, settings: Settings) -> DataFrame:
    """Kafka rows of the two topics → (topic, key, value), each key once (see module doc)."""
    return (kafka.select("topic", F.col("key").cast("string").alias("key"),
                         F.col("value").cast("string").alias("value"), "timestamp")
            .withWatermark("timestamp", settings.streaming.dedupe_watermark)
            .dropDuplicatesWithinWatermark(["topic", "key"]))


def table_rows(records: DataFrame, topic: str, schema) -> DataFrame:
    """One topic's records → the table's rows (its schema, in its column order)."""
    parsed = F.from_json("value", schema, {"timestampFormat": JSON_TIMESTAMP})
    rows = records.where(F.col("topic") == topic).select(parsed.alias("r")).select("r.*")
    return rows.select(*[_as_in_table(f) for f in schema.fields])


def _as_in_table(f: T.StructField):
    """A column as the table types it. ``from_json`` makes every array element nullable; a
    MERGE into a table whose array of doubles has none (``features``: NaN is its missing value)
    cannot cast one to the other, so the elements are made non-null the same way (null → NaN)."""
    t = f.dataType
    if isinstance(t, T.ArrayType) and not t.containsNull and isinstance(t.elementType, T.DoubleType):
        return F.transform(f.name, lambda x: F.coalesce(x, F.lit(float("nan")))).alias(f.name)
    return F.col(f.name)


def write_lake(batch: DataFrame, batch_id: int, settings: Settings,
               schemas: dict[tuple[str, str], T.StructType]) -> None:
    """One batch's records into their tables (``schemas``: each table's, read once at start —
    a schema read per batch is a snapshot load per table), each by :func:`insert_new`."""
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
            insert_new(batch.sparkSession, settings.table_path(*table), table, table_rows(batch, topic, schemas[table]))
            times[f"delta_{table[1]}"] = time.perf_counter() - t0
    finally:
        batch.unpersist()
        report_times(QUERY, batch_id, times)


def merge_condition(table: tuple[str, str], rows: DataFrame) -> Column:
    """The key a row of ``table`` is known by (:mod:`vitalwatch.pipeline.keys`), target ``t``
    against source ``s``; for ``gold/risk_scores`` also its partitions, as literals, so the
    MERGE reads only the dates the batch touches."""
    if table == GOLD_ALERTS:
        return F.col("t.alert_id") == F.col("s.alert_id")
    dates = sorted({r[0] for r in rows.select("effective_date").distinct().collect() if r[0] is not None})
    same = (F.col("t.patient_id") == F.col("s.patient_id")) & (score_key("t") == score_key("s"))
    return F.col("t.effective_date").isin(dates) & (F.col("t.effective_date") == F.col("s.effective_date")) & same


def insert_new(spark: SparkSession, path: str, table: tuple[str, str], rows: DataFrame) -> None:
    """Insert the rows whose key the table does not hold yet (an insert-only MERGE): exactly
    once however often a row arrives — a replayed batch, a key older than the dedupe window, a
    rebuilt checkpoint whose query reads the topics again from the start."""
    from delta.tables import DeltaTable

    key = "alert_id" if table == GOLD_ALERTS else None
    rows = rows.dropDuplicates([key]) if key else rows.withColumn("_k", score_key()).dropDuplicates(["_k"]).drop("_k")
    (DeltaTable.forPath(spark, path).alias("t").merge(rows.alias("s"), merge_condition(table, rows))
     .whenNotMatchedInsertAll().execute())


def start_gold_lake(spark: SparkSession, settings: Settings, *, available_now: bool = False,
                    endpoints: Endpoints | None = None, query_name: str = QUERY) -> StreamingQuery:
    ensure_gold(spark, settings)
    schemas = {table: read_table(spark, settings, table).schema for table in (GOLD_SCORES, GOLD_ALERTS)}
    endpoints = endpoints or resolve(settings, ("kafka",))
    t = settings.kafka.topics
    records = lake_input(kafka_stream(spark, settings, endpoints, f"{t.gold_scores},{t.gold_alerts}"), settings)
    return start_foreach_batch(records, settings, query_name=query_name,
                               checkpoint=settings.checkpoint_path(query_name), available_now=available_now,
                               stage=QUERY, write=lambda df, bid, _app_id: write_lake(df, bid, settings, schemas))
