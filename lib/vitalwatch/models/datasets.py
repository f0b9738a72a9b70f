"""Training data for the crisis-risk model, as silver-shaped rows (``ROW_COLUMNS``).

- **Real ICU data** (PhysioNet/CinC 2019 set B subset): real trajectories, the data the model
  is judged on. Each hourly row becomes the values the ICU replay would send through Kafka
  (``base_time + ICULOS`` hours), so training sees what production sees.
- **Synthetic sequences** from the simulator's physiology (as the source project generated
  5,000 sequences): volume and speed — fast tests, load and a sanity check that the model
  learns the simulated onset episodes. Never used to report real-world quality.

Both are split by patient (:func:`assign_split`), so no patient is in two splits.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vitalwatch.config import SplitConfig, SyntheticConfig
from vitalwatch.features.vector import ROW_COLUMNS

ICU_COLUMNS = {"SBP": "systolic_bp", "DBP": "diastolic_bp", "HR": "heart_rate",
               "Resp": "respiratory_rate", "O2Sat": "spo2", "Temp": "body_temperature"}
SPLITS = ("train", "validation", "test")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def icu_rows(spark: SparkSession, path: Path, base_time: datetime, patients: int | None = None) -> DataFrame:
    """The ICU file as silver-shaped rows; ``patients`` keeps the first N patient ids (sorted)."""
    raw = spark.read.csv(str(path), sep="|", header=True)
    if patients:
        keep = [r.patient_id for r in raw.select("patient_id").distinct().orderBy("patient_id").limit(patients).collect()]
        raw = raw.where(F.col("patient_id").isin(keep))
    base = F.lit(base_time.astimezone(UTC).replace(tzinfo=None)).cast("timestamp")
    t = (base.cast("double") + F.col("ICULOS").cast("double") * 3600).cast("timestamp")
    pid = F.concat(F.lit("icu-"), F.col("patient_id"))
    stamp = F.col("ICULOS").cast("int").cast("string")
    values = F.array(*[
        F.struct(F.lit(vital).alias("vital"), F.col(col).cast("double").alias("value"),
                 F.lit("bp" if vital in ("systolic_bp", "diastolic_bp") else vital).alias("kind"))
        for col, vital in ICU_COLUMNS.items()])
    v = F.explode(values).alias("v")
    return (raw.select(pid.alias("patient_id"), stamp.alias("stamp"), t.alias("effective_time"), v)
            .where(F.col("v.value").isNotNull() & ~F.isnan("v.value"))
            .select("patient_id",
                    F.concat_ws("-", "patient_id", "stamp", "v.kind").alias("observation_id"),
                    "effective_time", F.col("v.vital").alias("vital"), F.col("v.value").alias("value")))


def synthetic_rows(spark: SparkSession, cfg: SyntheticConfig, sequences: int | None = None) -> DataFrame:
    """``sequences`` simulated patients over ``cfg.hours`` at ``cfg.cadence_minutes``."""
    return spark.createDataFrame(synthetic_pandas(cfg, sequences)[ROW_COLUMNS])


def synthetic_pandas(cfg: SyntheticConfig, sequences: int | None = None) -> pd.DataFrame:
    from vitalwatch.producers.physiology import make_patients

    n = sequences or cfg.sequences
    start = datetime(2026, 1, 1, tzinfo=UTC)
    steps = int(cfg.hours * 60 / cfg.cadence_minutes)
    recs = []
    for p in make_patients(n, cfg.seed, cfg.profile_mix, cfg.hours):
        pid = f"syn-{p.patient_id[1:]}"
        phase = p.rng.uniform(0, cfg.cadence_minutes)
        for k in range(steps):
            t = start + timedelta(minutes=k * cfg.cadence_minutes + phase)
            v = p.vitals(t, (t - start).total_seconds() / 3600)
            recs.append((pid, f"{pid}-{k}", t, v["systolic"], v["diastolic"], v["heart_rate"],
                         v["respiratory_rate"], v["spo2"], v["body_temperature"]))
    wide = pd.DataFrame(recs, columns=["patient_id", "reading", "effective_time", "systolic_bp",
                                       "diastolic_bp", "heart_rate", "respiratory_rate", "spo2",
                                       "body_temperature"])
    wide["effective_time"] = wide["effective_time"].dt.tz_localize(None)
    long = wide.melt(id_vars=["patient_id", "reading", "effective_time"], var_name="vital", value_name="value")
    kind = np.where(long["vital"].isin(["systolic_bp", "diastolic_bp"]), "bp", long["vital"])
    long["observation_id"] = long["reading"] + "-" + kind
    return long.sort_values(["patient_id", "effective_time"], kind="mergesort").reset_index(drop=True)


def assign_split(df: DataFrame, cfg: SplitConfig, seed: int) -> DataFrame:
    """A ``split`` column from a hash of the patient id: deterministic, and every reading of a
    patient lands in the same split."""
    total = cfg.train + cfg.validation + cfg.test
    u = (F.abs(F.xxhash64(F.lit(str(seed)), F.col("patient_id"))) % 1_000_000) / 1_000_000.0
    a, b = cfg.train / total, (cfg.train + cfg.validation) / total
    return df.withColumn("split", F.when(u < a, "train").when(u < b, "validation").otherwise("test"))
