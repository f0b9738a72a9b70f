"""``bronze/observations_raw`` → ``silver/vital_signs`` + ``silver/quarantine`` (+ the counts of
Bundle resources that are not vital signs, ``silver/ignored_resources``).

One streaming query parses each bronze row once (:mod:`vitalwatch.fhir.parse`), then keeps the
first row of each value key within ``streaming.dedupe_watermark`` of arrival (watermark on
ingest time, so a late *effective* time is never a reason to drop) and says what it did with
the others (:class:`FirstWins <vitalwatch.jvm.first_wins>`): an identical re-send is dropped, a
re-send with the same observation id and version but another value is quarantined as
``conflicting_duplicate``. It writes the tables from ``foreachBatch`` with Delta's
idempotent-write options (``txnAppId`` + ``txnVersion`` = batch id): a batch replayed after a
crash commits nothing twice."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import StructType

from vitalwatch.config import Settings
from vitalwatch.fhir.parse import (
    QUARANTINE_COLUMNS,
    ParseRules,
    accepted,
    dedupe_key,
    ignored,
    parse_observations,
    rejected,
)
from vitalwatch.jvm import first_wins
from vitalwatch.pipeline.checkpoints import check_layout
from vitalwatch.pipeline.lake import (
    BRONZE,
    KAFKA_BRONZE_SCHEMA,
    SILVER_IGNORED,
    SILVER_QUARANTINE,
    SILVER_VITALS,
    ensure_lake,
    stream_table,
)
from vitalwatch.pipeline.triggers import start_foreach_batch

COORDINATES = ("topic", "partition", "offset")
DEDUPE_LAYOUT = {"silver_dedupe": "first_wins-v1"}  # before: dropDuplicatesWithinWatermark (no record)


def _kept(batch: DataFrame) -> DataFrame:
    """Rows the dedupe kept (a frame without its marks is kept whole: batch callers, tests)."""
    return batch.where(F.col("first_wins").isNull()) if "first_wins" in batch.columns else batch


def to_silver(parsed: DataFrame) -> DataFrame:
    """Accepted values with the time they reached silver."""
    return accepted(_kept(parsed)).withColumn("silver_time", F.current_timestamp())


def conflicts(batch: DataFrame) -> DataFrame:
    """Re-sent values that disagree with the value accepted under the same key, as rejections."""
    if "first_wins" not in batch.columns:
        return batch.limit(0).select(*QUARANTINE_COLUMNS)
    return (batch.where(F.col("first_wins") == "conflict")
            .withColumn("reason", F.lit("conflicting_duplicate"))
            .withColumn("detail", F.format_string(
                "observation %s (version %s) of %s was accepted as %s; this message says %s",
                "observation_id", F.coalesce("version_id", F.lit("none")), "vital",
                F.regexp_replace("first_content", r"\|", " "), F.regexp_replace("dedupe_content", r"\|", " ")))
            .select(*QUARANTINE_COLUMNS))


def to_quarantine(batch: DataFrame) -> DataFrame:
    """Rejections (the parser's and the dedupe's conflicts) with the time and date (partition)
    they were quarantined. A message's raw payload is kept once, on its first quarantine row."""
    rows = rejected(_kept(batch)).unionByName(conflicts(batch))
    w = Window.partitionBy(*COORDINATES).orderBy(F.col("entry_index").asc_nulls_first(),
                                                 F.col("source_path").asc_nulls_first(), "reason")
    first = rows.drop("raw").withColumn("_first", F.row_number().over(w) == 1)
    raws = batch.where(F.col("raw").isNotNull()).select(*COORDINATES, "raw")
    wanted = F.broadcast(first.where("_first").select(*COORDINATES).distinct())
    raws = raws.join(wanted, list(COORDINATES), "left_semi").withColumn("_first", F.lit(True))
    now = F.current_timestamp()
    return (first.join(raws, [*COORDINATES, "_first"], "left").select(*QUARANTINE_COLUMNS)
            .withColumn("quarantine_time", now).withColumn("quarantine_date", F.to_date(now)))


def to_ignored_counts(batch: DataFrame) -> DataFrame:
    """How many of a Bundle's resources were not vital signs, per topic and resource type."""
    now = F.current_timestamp()
    return (ignored(_kept(batch)).groupBy("topic", F.coalesce("resource_type", F.lit("")).alias("resource_type"))
            .agg(F.count(F.lit(1)).alias("resources"), F.min("ingest_time").alias("first_ingest_time"))
            .withColumn("silver_time", now).withColumn("silver_date", F.to_date(now)))


def _output_schema(spark: SparkSession, settings: Settings,
                   transform: Callable[[DataFrame], DataFrame]) -> StructType:
    """Schema of ``transform`` applied to the parser's output (derived, never restated)."""
    bronze = spark.createDataFrame([], KAFKA_BRONZE_SCHEMA)
    return transform(parse_observations(bronze, ParseRules.from_settings(settings))).schema


def silver_schema(spark: SparkSession, settings: Settings) -> StructType:
    return _output_schema(spark, settings, to_silver)


def quarantine_schema(spark: SparkSession, settings: Settings) -> StructType:
    return _output_schema(spark, settings, to_quarantine)


def ignored_schema(spark: SparkSession, settings: Settings) -> StructType:
    return _output_schema(spark, settings, to_ignored_counts)


def write_batch(batch: DataFrame, batch_id: int, settings: Settings, app_id: str) -> None:
    """Write one micro-batch to the silver tables, idempotently per batch id.

    A table with nothing to add gets no commit (an empty Delta commit costs a second or two and
    wakes every downstream query for nothing); a replay of the batch skips it again."""
    batch.persist()
    try:
        writes = ((SILVER_VITALS, to_silver(batch)), (SILVER_QUARANTINE, to_quarantine(batch)),
                  (SILVER_IGNORED, to_ignored_counts(batch)))
        for table, rows in writes:
            if rows.isEmpty():
                continue
            (rows.write.format("delta").mode("append")
             .option("txnAppId", f"{app_id}:{table[1]}").option("txnVersion", batch_id)
             .save(settings.table_path(*table)))
    finally:
        batch.unpersist()


def order_key() -> F.Column:
    """Arrival order of a row, as a sortable string: broker time, partition, offset, position."""
    return F.concat_ws("|", F.lpad(F.unix_micros("kafka_timestamp").cast("string"), 20, "0"),
                       F.lpad(F.col("partition").cast("string"), 6, "0"),
                       F.lpad(F.col("offset").cast("string"), 20, "0"),
                       F.lpad(F.coalesce(F.col("entry_index"), F.lit(-1)).cast("string"), 8, "0"),
                       F.coalesce("source_path", F.lit("")))


def silver_stream(spark: SparkSession, settings: Settings) -> DataFrame:
    """Bronze as a stream, parsed and marked by first-wins deduplication (what foreachBatch
    receives)."""
    bronze = stream_table(spark, settings, BRONZE)
    parsed = dedupe_key(parse_observations(bronze, ParseRules.from_settings(settings))).withColumn("dedupe_order", order_key())
    return first_wins(parsed.withWatermark("ingest_time", settings.streaming.dedupe_watermark),
                      "dedupe_key", "dedupe_content", "dedupe_order", "ingest_time")


def start_silver(spark: SparkSession, settings: Settings, *, available_now: bool = False,
                 query_name: str = "silver_vital_signs") -> StreamingQuery:
    ensure_lake(spark, settings)
    checkpoint = settings.checkpoint_path(query_name)
    check_layout(spark, checkpoint, DEDUPE_LAYOUT, {}, "its deduplication state predates first-wins marking; "
                 "start the silver query on a new checkpoint (it re-reads bronze from the start)")
    return start_foreach_batch(silver_stream(spark, settings), settings, query_name=query_name,
                               checkpoint=checkpoint, available_now=available_now, stage="silver",
                               write=lambda df, bid, app_id: write_batch(df, bid, settings, app_id))
