"""The gold tables' rows: what the alert path's batches become in ``gold/risk_scores``,
``gold/alerts`` and ``gold/patient_status``, their creation, and their records on the gold
topics (which ``gold_lake`` writes to Delta). Table names: :mod:`vitalwatch.pipeline.lake`."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vitalwatch.config import Settings
from vitalwatch.features.build import restore_nan
from vitalwatch.pipeline.gold.state import scores_schema
from vitalwatch.pipeline.lake import (
    GOLD_ALERTS,
    GOLD_SCORES,
    GOLD_STATUS,
    ensure_lake,
    ensure_table,
)

JSON_TIMESTAMP = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"  # the gold tables' topics keep microseconds


def risk_rows(batch: DataFrame) -> DataFrame:
    """Rows for ``gold/risk_scores``: every new reading, with when it was scored, and the
    ``discharged`` markers of expired patients (no observation; dated when they expired).
    ``effective_date`` (the partition) is a function of the row alone — a discharge's is its
    expiry's — so a replayed row lands in the same partition as its first copy."""
    return (batch.withColumn("features", restore_nan("features"))
            .withColumn("scored_time", F.current_timestamp())
            .withColumn("effective_date", F.coalesce(F.to_date("effective_time"), F.to_date("silver_time"))))


# The times pandas can hold (its nanosecond timestamps): an untimely reading's claimed time may
# lie outside (year 9999); where rows go through pandas on the driver it is then left out.
PANDAS_TIME_RANGE = ("1677-09-22 00:00:00", "2262-04-11 00:00:00")


def pandas_safe(df: DataFrame) -> DataFrame:
    """``df`` with an ``effective_time`` pandas cannot hold set to null (the row is kept)."""
    t = F.col("effective_time")
    ok = t.between(F.lit(PANDAS_TIME_RANGE[0]).cast("timestamp"), F.lit(PANDAS_TIME_RANGE[1]).cast("timestamp"))
    return df.withColumn("effective_time", F.when(ok, t))


def alert_rows(batch: DataFrame) -> DataFrame:
    """The alert events raised by this batch (routing is added by :mod:`vitalwatch.sinks.writers`)."""
    return batch.where(F.col("alert_id").isNotNull())


def status_rows(batch: DataFrame) -> DataFrame:
    """Latest in-order reading (or discharge) per patient among ``gold/risk_scores`` rows.

    Latest by arrival, then effective time: in-order (``scored``) readings arrive in effective
    order, and a discharge is later than the readings before it, earlier than a re-admission's."""
    from pyspark.sql import Window

    live = batch.where(F.col("score_status").isin("scored", "discharged"))
    w = Window.partitionBy("patient_id").orderBy(F.col("silver_time").desc_nulls_last(),
                                                 F.col("effective_time").desc_nulls_first(),
                                                 F.col("observation_id").desc())
    risks = [c for c in batch.columns if c.startswith("risk_")]
    return (live.withColumn("_rn", F.row_number().over(w)).where("_rn = 1")
            .select("patient_id", "observation_id", "effective_time", "systolic", "diastolic", "heart_rate",
                    "respiratory_rate", "spo2", "temperature", *risks, "level", "news2", "crisis_now",
                    "model_name", "model_version",
                    F.when(F.col("score_status") == "discharged", "discharged").otherwise("active").alias("state"),
                    F.current_timestamp().alias("updated_time")))


def ensure_gold(spark: SparkSession, settings: Settings) -> None:
    """Create the gold tables with the schemas their writers produce."""
    ensure_lake(spark, settings)
    from vitalwatch.sinks.events import alert_schema

    empty = spark.createDataFrame([], scores_schema(settings))
    ensure_table(spark, settings.table_path(*GOLD_SCORES), risk_rows(empty).schema, ["effective_date"])
    ensure_table(spark, settings.table_path(*GOLD_ALERTS), alert_schema(settings), [])
    ensure_table(spark, settings.table_path(*GOLD_STATUS), status_rows(risk_rows(empty)).schema, [])


def lake_records(risk: DataFrame, alerts: DataFrame | None, settings: Settings) -> DataFrame:
    """Kafka records (topic, key, value) for the gold tables, written there by ``gold_lake``.

    Keys are stable across a replay (:func:`vitalwatch.pipeline.keys.score_key` for a score,
    ``alert_id`` for an alert). Timestamps keep their microseconds."""
    from vitalwatch.pipeline.keys import score_key

    t = settings.kafka.topics
    opts = {"timestampFormat": JSON_TIMESTAMP}
    out = risk.select(F.lit(t.gold_scores).alias("topic"), score_key().alias("key"),
                      F.to_json(F.struct(*risk.columns), opts).alias("value"))
    if alerts is not None:
        out = out.unionByName(alerts.select(F.lit(t.gold_alerts).alias("topic"), F.col("alert_id").alias("key"),
                                            F.to_json(F.struct(*alerts.columns), opts).alias("value")))
    return out
