"""What is in the lake: counts and samples for people (``vitalwatch show``) and tests."""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from vitalwatch.config import Settings
from vitalwatch.pipeline.lake import (
    BRONZE,
    SILVER_IGNORED,
    SILVER_QUARANTINE,
    SILVER_VITALS,
    read_table,
)
from vitalwatch.sinks.dead_letter import counts as dead_letter_counts


def lake_summary(spark: SparkSession, settings: Settings, sample: int = 5) -> dict[str, Any]:
    bronze = read_table(spark, settings, BRONZE)
    vitals = read_table(spark, settings, SILVER_VITALS)
    quarantine = read_table(spark, settings, SILVER_QUARANTINE)
    by_vital = {r["vital"]: r["count"] for r in vitals.groupBy("vital").count().collect()}
    by_reason = {r["reason"]: r["count"] for r in quarantine.groupBy("reason").count().collect()}
    ignored = read_table(spark, settings, SILVER_IGNORED).groupBy("resource_type").agg(F.sum("resources").alias("n"))
    by_type = {r["resource_type"]: int(r["n"]) for r in ignored.collect()}
    rows = (vitals.orderBy(F.col("silver_time").desc(), F.col("effective_time").desc())
            .select("patient_id", "effective_time", "vital", "value", "unit", "device_id")
            .limit(sample).collect())
    dead = dead_letter_counts(spark, settings)
    return {
        "bronze_messages": bronze.count(),
        "silver_values": sum(by_vital.values()),
        "silver_patients": vitals.select("patient_id").distinct().count(),
        "quarantined": sum(by_reason.values()),
        "by_vital": dict(sorted(by_vital.items())),
        "by_reason": dict(sorted(by_reason.items())),
        "ignored_by_type": dict(sorted(by_type.items())),
        "latest": [r.asDict() for r in rows],
        "dead_letters": sum(dead.values()),          # rows a store refused for good (gold/dead_letter)
        "dead_letters_by_sink": dict(sorted(dead.items())),
    }
