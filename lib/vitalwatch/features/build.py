"""The feature builder on Spark: silver vital signs → training examples, per patient.

A thin distribution layer over :mod:`vitalwatch.features.vector` (the one definition):
rows are grouped by patient and each group goes through ``training_examples``."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from vitalwatch.config import ClinicalConfig
from vitalwatch.features.vector import BP_VITALS, OTHER_VITALS, ROW_COLUMNS, training_examples

_DOUBLE = ["systolic", "diastolic", "heart_rate", "respiratory_rate", "spo2", "temperature",
           "minutes_since_previous"]


def example_schema(cfg: ClinicalConfig) -> T.StructType:
    fields = [T.StructField("patient_id", T.StringType()), T.StructField("observation_id", T.StringType()),
              T.StructField("effective_time", T.TimestampType())]
    fields += [T.StructField(c, T.DoubleType()) for c in _DOUBLE]
    fields += [T.StructField("crisis_now", T.BooleanType()), T.StructField("news2", T.DoubleType()),
               T.StructField("news2_partial", T.DoubleType()), T.StructField("news2_red_flag", T.BooleanType()),
               T.StructField("bp_ratio", T.DoubleType()),
               T.StructField("features", T.ArrayType(T.DoubleType()))]
    fields += [T.StructField(f"label_{h}h", T.IntegerType()) for h in cfg.horizons_hours]
    return T.StructType(fields)


def silver_rows(silver: DataFrame) -> DataFrame:
    """The silver values the features use, one row per (observation, vital): the latest
    version of an amended observation wins."""
    wanted = [*BP_VITALS, *OTHER_VITALS]
    df = silver.where(F.col("vital").isin(wanted))
    if "version_id" in silver.columns:
        order = [F.col("version_id").desc_nulls_last()]
        if "ingest_time" in silver.columns:
            order.append(F.col("ingest_time").desc())
        w = Window.partitionBy("patient_id", "observation_id", "vital").orderBy(*order)
        df = df.withColumn("_rn", F.row_number().over(w)).where("_rn = 1").drop("_rn")
    return df.select(*ROW_COLUMNS)


def restore_nan(col: str):
    """Arrow turns NaN inside lists into null; XGBoost's missing value is NaN, so put it back."""
    return F.transform(col, lambda x: F.coalesce(x, F.lit(float("nan"))))


def build_examples(rows: DataFrame, cfg: ClinicalConfig, buckets: int = 64) -> DataFrame:
    """Rows (``ROW_COLUMNS``) → one example per reading: vector, labels, NEWS2, crisis now.

    Patients are hashed into ``buckets`` groups and each group is one vectorised pandas call
    (the functions handle many patients at once): far cheaper than one call per patient."""
    schema = example_schema(cfg)

    def per_patient(pdf):  # pandas in (some patients), pandas out; runs on the executors
        out = training_examples(pdf, cfg)
        return out[[f.name for f in schema.fields]]

    bucket = F.pmod(F.xxhash64("patient_id"), F.lit(buckets))
    return (rows.groupBy(bucket.alias("_bucket")).applyInPandas(per_patient, schema)
            .withColumn("features", restore_nan("features")))
