"""``bronze/observations_raw`` → ``silver/vital_signs`` + ``silver/quarantine``.

One streaming query parses each bronze row once (:mod:`vitalwatch.fhir.parse`), drops
duplicate values with ``dropDuplicatesWithinWatermark`` on their dedupe key (watermark on
ingest time, so a late *effective* time is never a reason to drop), and writes both tables
from ``foreachBatch`` with Delta's idempotent-write options (``txnAppId`` + ``txnVersion`` =
batch id): a batch replayed after a crash commits nothing twice."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import StructType

from vitalwatch.config import Settings
from vitalwatch.fhir.parse import ParseRules, accepted, dedupe_key, parse_observations, rejected
from vitalwatch.pipeline.lake import (
    BRONZE,
    KAFKA_BRONZE_SCHEMA,
    SILVER_QUARANTINE,
    SILVER_VITALS,
    ensure_lake,
)
from vitalwatch.pipeline.triggers import start_foreach_batch


def to_silver(parsed: DataFrame) -> DataFrame:
    """Accepted values with the time they reached silver."""
    return accepted(parsed).withColumn("silver_time", F.current_timestamp())


def to_quarantine(parsed: DataFrame) -> DataFrame:
    """Rejections with the time and date (partition) they were quarantined."""
    now = F.current_timestamp()
    return rejected(parsed).withColumn("quarantine_time", now).withColumn("quarantine_date", F.to_date(now))


def _output_schema(spark: SparkSession, settings: Settings,
                   transform: Callable[[DataFrame], DataFrame]) -> StructType:
    """Schema of ``transform`` applied to the parser's output (derived, never restated)."""
    bronze = spark.createDataFrame([], KAFKA_BRONZE_SCHEMA)
    return transform(parse_observations(bronze, ParseRules.from_settings(settings))).schema


def silver_schema(spark: SparkSession, settings: Settings) -> StructType:
    return _output_schema(spark, settings, to_silver)


def quarantine_schema(spark: SparkSession, settings: Settings) -> StructType:
    return _output_schema(spark, settings, to_quarantine)


def write_batch(batch: DataFrame, batch_id: int, settings: Settings, app_id: str) -> None:
    """Write one micro-batch to both silver tables, idempotently per batch id.

    A table with nothing to add gets no commit (an empty Delta commit costs a second or two and
    wakes every downstream query for nothing); a replay of the batch skips it again."""
    batch.persist()
    try:
        for table, rows in ((SILVER_VITALS, to_silver(batch)), (SILVER_QUARANTINE, to_quarantine(batch))):
            if rows.isEmpty():
                continue
            (rows.write.format("delta").mode("append")
             .option("txnAppId", f"{app_id}:{table[1]}").option("txnVersion", batch_id)
             .save(settings.table_path(*table)))
    finally:
        batch.unpersist()


def silver_stream(spark: SparkSession, settings: Settings) -> DataFrame:
    """Bronze as a stream, parsed and deduplicated (what foreachBatch receives)."""
    bronze = spark.readStream.format("delta").option("maxFilesPerTrigger", settings.streaming.max_files_per_trigger).load(settings.table_path(*BRONZE))
    parsed = dedupe_key(parse_observations(bronze, ParseRules.from_settings(settings)))
    return (parsed.withWatermark("ingest_time", settings.streaming.dedupe_watermark)
            .dropDuplicatesWithinWatermark(["dedupe_key"]))


def start_silver(spark: SparkSession, settings: Settings, *, available_now: bool = False,
                 query_name: str = "silver_vital_signs") -> StreamingQuery:
    ensure_lake(spark, settings)
    return start_foreach_batch(silver_stream(spark, settings), settings, query_name=query_name,
                               checkpoint=settings.checkpoint_path(query_name), available_now=available_now, stage="silver",
                               write=lambda df, bid, app_id: write_batch(df, bid, settings, app_id))
