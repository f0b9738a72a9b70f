"""The alert path's stateful step: silver rows keyed by patient bucket → the state function
(:func:`vitalwatch.scoring.engine.advance`) → one scored row per new reading.

Why buckets, why the watermark is on arrival time, why the state is dated by expiry: see
:mod:`vitalwatch.pipeline.gold`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming.state import GroupStateTimeout

from vitalwatch.alerts.policy import AlertState
from vitalwatch.config import Settings
from vitalwatch.features.vector import BP_VITALS, OTHER_VITALS
from vitalwatch.scoring.engine import (
    SOURCE_COLUMNS,
    ModelRef,
    advance_safely,
    empty_rows,
    output_columns,
)

# State per bucket of patients (``gold.state_buckets``): the retained silver rows of all its
# patients, and each patient's alert state and last arrival, as parallel arrays.
STATE_SCHEMA = T.StructType([
    T.StructField("patient_ids", T.ArrayType(T.StringType())),
    T.StructField("obs_ids", T.ArrayType(T.StringType())),
    T.StructField("times_ms", T.ArrayType(T.LongType())),
    T.StructField("vitals", T.ArrayType(T.StringType())),
    T.StructField("values", T.ArrayType(T.DoubleType())),
    T.StructField("a_patient_ids", T.ArrayType(T.StringType())),
    T.StructField("a_levels", T.ArrayType(T.StringType())),
    T.StructField("a_eval_ms", T.ArrayType(T.LongType())),
    T.StructField("a_last_alert_ms", T.ArrayType(T.ArrayType(T.LongType()))),
    T.StructField("a_last_arrival_ms", T.ArrayType(T.LongType())),
    T.StructField("versions", T.ArrayType(T.StringType())),
    T.StructField("arrivals_ms", T.ArrayType(T.LongType())),
])
# What the state function reads per row. Times cross into Python as int64 (microseconds), so no
# time Spark accepts can break Arrow's conversion to pandas or the state.
INPUT_COLUMNS = ["patient_id", "observation_id", "effective_us", "vital", "value", "version_id", "untimely"]


def engine_schema(settings: Settings) -> T.StructType:
    """What the state function emits, one row per new reading (or discharged patient); its
    effective time as int64 microseconds (:func:`scores_schema` has it as a timestamp)."""
    dbl, s, b = T.DoubleType(), T.StringType(), T.BooleanType()
    types = {"patient_id": s, "observation_id": s, "effective_us": T.LongType(),
             "features": T.ArrayType(dbl), "score_status": s, "level": s,
             "level_reasons": T.ArrayType(s), "crisis_now": b, "news2_red_flag": b, "model_name": s,
             "model_version": s, "alert_id": s, "alert_kind": s, "alert_level": s,
             "alert_previous_level": s, "alert_late": b, "kafka_timestamp": T.TimestampType(),
             "silver_time": T.TimestampType(), "shadow_model_version": s}
    return T.StructType([T.StructField(c, types.get(c, dbl)) for c in output_columns(settings.clinical)])


def scores_schema(settings: Settings) -> T.StructType:
    """The scored rows as the alert path's batches hold them (``effective_time`` a timestamp)."""
    return T.StructType([T.StructField("effective_time", T.TimestampType()) if f.name == "effective_us" else f
                         for f in engine_schema(settings).fields])


@dataclass
class BucketState:
    """One bucket's state: retained rows, alert state and last arrival (ms) per patient."""

    rows: pd.DataFrame
    alerts: dict[str, AlertState]
    arrival_ms: dict[str, int]

    @classmethod
    def load(cls, st: tuple | None) -> BucketState:
        if st is None:
            return cls(empty_rows(), {}, {})
        rows = pd.DataFrame({"patient_id": list(st[0]), "observation_id": list(st[1]),
                             "effective_time": pd.to_datetime(np.asarray(st[2], dtype=np.int64), unit="ms"),
                             "vital": list(st[3]), "value": np.asarray(st[4], dtype=float),
                             "version_id": list(st[10]), "arrival_ms": np.asarray(st[11], dtype=np.int64)})
        alerts = {p: AlertState.from_tuple((lv, ev, la)) for p, lv, ev, la in zip(st[5], st[6], st[7], st[8], strict=True)}
        return cls(rows, alerts, dict(zip(st[5], (int(x) for x in st[9]), strict=True)))

    def dump(self) -> tuple:
        r, pids = self.rows, sorted(self.arrival_ms)
        tuples = [self.alerts.get(p, AlertState()).as_tuple() for p in pids]
        return (r["patient_id"].tolist(), r["observation_id"].tolist(),
                r["effective_time"].to_numpy("datetime64[ms]").astype(np.int64).tolist(),
                r["vital"].tolist(), r["value"].astype(float).tolist(),
                pids, [t[0] for t in tuples], [t[1] for t in tuples], [t[2] for t in tuples],
                [self.arrival_ms[p] for p in pids], r["version_id"].tolist(),
                r["arrival_ms"].astype(np.int64).tolist())

    def discharge(self, before_ms: int) -> list[str]:
        """Drop the patients whose last arrival is before ``before_ms``; their ids."""
        gone = sorted(p for p, t in self.arrival_ms.items() if t < before_ms)
        if gone:
            self.rows = self.rows[~self.rows["patient_id"].isin(gone)].reset_index(drop=True)
            for p in gone:
                self.alerts.pop(p, None)
                self.arrival_ms.pop(p)
        return gone


def state_function(model: ModelRef, settings: Settings):
    """The ``applyInPandasWithState`` function: one bucket's new rows → scored readings.

    Keyed by bucket, not patient: :func:`~vitalwatch.scoring.engine.advance` costs about the
    same for one patient as for fifty (measured: 60-190 ms a call), so a batch pays it once per
    bucket touched instead of once per patient. Only the patients with new rows are advanced."""
    clinical, alerts_cfg, gold = settings.clinical, settings.alerts, settings.gold
    ttl_ms = int(gold.state_ttl_hours * 3_600_000)
    skew_ms = settings.fhir.max_clock_skew_ms
    cols = output_columns(clinical)

    def discharged(expiry_ms: dict[str, int]) -> pd.DataFrame:
        """Markers dated by expiry (last arrival + TTL), not the clock: a replayed batch must
        give the same rows, whose keys ``gold_lake`` deduplicates on."""
        return pd.DataFrame([{**dict.fromkeys(cols), "patient_id": p, "score_status": "discharged",
                              "silver_time": pd.Timestamp(ms, unit="ms")} for p, ms in sorted(expiry_ms.items())],
                            columns=cols)

    def fn(key: tuple, pdfs: Iterator[pd.DataFrame], state) -> Iterator[pd.DataFrame]:
        st = BucketState.load(state.get if state.exists else None)
        last_ms = dict(st.arrival_ms)
        if state.hasTimedOut:  # the watermark passed the earliest patient's expiry
            gone = st.discharge(state.getCurrentWatermarkMs() - ttl_ms + 1)
        else:
            new = pd.concat(list(pdfs), ignore_index=True)
            touched = set(new["patient_id"])
            mine = st.rows["patient_id"].isin(touched).to_numpy()
            res = advance_safely(st.rows[mine], {p: st.alerts[p] for p in touched if p in st.alerts}, new, model,
                                 clinical, alerts_cfg, gold.late_tolerance_minutes, skew_ms)
            kept = [f for f in (st.rows[~mine], res.rows) if len(f)]
            st.rows = pd.concat(kept, ignore_index=True) if kept else empty_rows()
            st.alerts.update({p: res.alerts[p] for p in touched if p in res.alerts})
            arrival = new.groupby("patient_id")["silver_time"].max()
            st.arrival_ms.update({p: int(t.value // 1_000_000) for p, t in arrival.items()})
            gone = st.discharge(int(arrival.max().value // 1_000_000) - ttl_ms)
            yield res.out[cols]
        if gone:
            yield discharged({p: last_ms[p] + ttl_ms for p in gone})
        if st.arrival_ms:
            state.update(st.dump())
            state.setTimeoutTimestamp(min(st.arrival_ms.values()) + ttl_ms)
        else:
            state.remove()

    return fn


def keyed_rows(silver: DataFrame, settings: Settings) -> DataFrame:
    """Silver rows → what the state function reads (:data:`INPUT_COLUMNS`): the vitals the
    features use, their state bucket (``gold.state_buckets``) and the arrival-time watermark
    (:mod:`vitalwatch.pipeline.gold`). ``untimely``: a value outside the time bounds
    (quarantined in silver), read only so that a crisis in it still alerts."""
    bucket = F.pmod(F.xxhash64("patient_id"), F.lit(settings.gold.state_buckets)).cast("int")
    flag = F.col("untimely") if "untimely" in silver.columns else F.lit(False)
    version = F.col("version_id") if "version_id" in silver.columns else F.lit(None).cast("string")
    return (silver.where(F.col("vital").isin([*BP_VITALS, *OTHER_VITALS]))
            .select("patient_id", "observation_id", F.unix_micros("effective_time").alias("effective_us"), "vital",
                    "value", F.coalesce(version, F.lit("")).alias("version_id"), flag.alias("untimely"),
                    *SOURCE_COLUMNS, bucket.alias("bucket"))
            .withWatermark("silver_time", settings.gold.watermark_delay))


def score_stream(rows: DataFrame, model: ModelRef, settings: Settings) -> DataFrame:
    """Rows → scored readings (the stateful step). Missing vector slots arrive as null (Arrow);
    :func:`~vitalwatch.pipeline.gold.tables.risk_rows` turns them back into NaN, the training
    vectors' missing value."""
    scored = rows.groupBy("bucket").applyInPandasWithState(
        state_function(model, settings), engine_schema(settings), STATE_SCHEMA, "append",
        GroupStateTimeout.EventTimeTimeout)
    return with_effective_time(scored)


def with_effective_time(scored: DataFrame) -> DataFrame:
    """``effective_us`` (as the engine emits it) → ``effective_time``, in its place."""
    cols = [F.timestamp_micros("effective_us").alias("effective_time") if c == "effective_us" else F.col(c)
            for c in scored.columns]
    return scored.select(*cols)
