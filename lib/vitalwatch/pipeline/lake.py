"""Delta tables of the lake: names, schemas (derived from the transforms that fill them) and
creation, so readers never meet a missing table and partitioning is fixed up front.

Imports no Spark until a function runs: the dashboard and the API read the table names here
without loading PySpark (a test checks it)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitalwatch.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

BRONZE = ("bronze", "observations_raw")
SILVER_VITALS = ("silver", "vital_signs")
SILVER_QUARANTINE = ("silver", "quarantine")
SILVER_IGNORED = ("silver", "ignored_resources")  # counts of a Bundle's non-vital resources
GOLD_SCORES = ("gold", "risk_scores")             # every scored reading and discharge (pipeline/gold/)
GOLD_ALERTS = ("gold", "alerts")                  # every alert event
GOLD_STATUS = ("gold", "patient_status")          # the newest reading per patient (pipeline/serving.py)
GOLD_DEAD_LETTER = ("gold", "dead_letter")        # rows a store refused for good (sinks/dead_letter.py)
MODEL_OUTCOMES = ("gold", "model_outcomes")       # scored readings × horizons with known outcomes
MODEL_MONITORING = ("gold", "model_monitoring")   # the model per day on them (pipeline/model_outcomes.py)


def kafka_bronze_schema() -> StructType:
    """Bronze rows: a Kafka record as received, with when it was ingested."""
    from pyspark.sql.types import (
        BinaryType,
        DateType,
        IntegerType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    return StructType([
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("kafka_timestamp", TimestampType()),
        StructField("kafka_timestamp_type", IntegerType()),
        StructField("ingest_time", TimestampType()),
        StructField("ingest_date", DateType()),
    ])


def __getattr__(name: str) -> Any:
    """``KAFKA_BRONZE_SCHEMA``, built on first use (so importing this module loads no Spark)."""
    if name == "KAFKA_BRONZE_SCHEMA":
        return kafka_bronze_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PARTITIONS = {BRONZE: ["ingest_date"], SILVER_VITALS: ["effective_date"], SILVER_QUARANTINE: ["quarantine_date"],
              SILVER_IGNORED: ["silver_date"]}


def ensure_table(spark: SparkSession, path: str, schema: StructType, partition_by: list[str]) -> None:
    """Create an empty Delta table at ``path`` if there is none (idempotent).

    A process killed while creating a table can leave a ``_delta_log`` without any commit:
    that is no table (nothing was ever committed), so it is cleared and the creation redone."""
    from delta.tables import DeltaTable

    _clear_uncommitted(path)
    b = DeltaTable.createIfNotExists(spark).location(path).addColumns(schema)
    if partition_by:
        b = b.partitionedBy(*partition_by)
    b.execute()
    add_missing_columns(spark, path, schema)


def add_missing_columns(spark: SparkSession, path: str, schema: StructType) -> list[str]:
    """Add the (nullable) columns of ``schema`` a table made by an older version lacks — a
    new column (e.g. the shadow model's risks) must reach an existing lake, not be dropped by
    its writers, which read the table's schema. Returns the columns added."""
    def missing() -> list:
        have = {f.name.lower() for f in spark.read.format("delta").load(path).schema.fields}  # Delta: case-insensitive
        return [f for f in schema.fields if f.name.lower() not in have]

    def quoted(name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    todo = missing()
    if todo:
        cols = ", ".join(f"{quoted(f.name)} {f.dataType.simpleString()}" for f in todo)
        try:
            spark.sql(f"ALTER TABLE delta.{quoted(path)} ADD COLUMNS ({cols})")
        except Exception:  # another application added them first (both started after an upgrade)
            if missing():
                raise
    return [f.name for f in todo]


def _clear_uncommitted(path: str) -> None:
    if "://" in path and not path.startswith("file:"):
        return  # object stores: Delta's own commit protocol; nothing half-made to clear
    log = Path(path.removeprefix("file:")) / "_delta_log"
    if log.is_dir() and not any(log.glob("*.json")) and not any(log.glob("*.checkpoint*.parquet")):
        shutil.rmtree(log)


def ensure_lake(spark: SparkSession, settings: Settings) -> None:
    """Create bronze and silver tables with the schemas their writers produce."""
    from vitalwatch.pipeline.silver import ignored_schema, quarantine_schema, silver_schema

    ensure_table(spark, settings.table_path(*BRONZE), kafka_bronze_schema(), PARTITIONS[BRONZE])
    ensure_table(spark, settings.table_path(*SILVER_VITALS), silver_schema(spark, settings),
                 PARTITIONS[SILVER_VITALS])
    ensure_table(spark, settings.table_path(*SILVER_QUARANTINE), quarantine_schema(spark, settings),
                 PARTITIONS[SILVER_QUARANTINE])
    ensure_table(spark, settings.table_path(*SILVER_IGNORED), ignored_schema(spark, settings),
                 PARTITIONS[SILVER_IGNORED])


def read_table(spark: SparkSession, settings: Settings, table: tuple[str, str]) -> DataFrame:
    return spark.read.format("delta").load(settings.table_path(*table))


def stream_table(spark: SparkSession, settings: Settings, table: tuple[str, str]) -> DataFrame:
    """``table`` as a stream, at most ``streaming.max_files_per_trigger`` files a micro-batch
    (how every stage that reads the lake reads it)."""
    return (spark.readStream.format("delta")
            .option("maxFilesPerTrigger", settings.streaming.max_files_per_trigger)
            .load(settings.table_path(*table)))
