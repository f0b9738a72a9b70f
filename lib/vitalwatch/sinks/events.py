"""The alert event (versioned JSON on ``vitals.alerts``, a row of ``gold/alerts``, a MongoDB
and an Elasticsearch document) and the below-threshold assessment for ``vitals.normal``.

Schema version 1 fields: ``schema_version, alert_id, kind, level, previous_level,
patient_id, observation_id, effective_time, reasons, late, risk_<h>h…, news2, crisis_now,
systolic, diastolic, heart_rate, model_name, model_version, ward, recipients[{role,id}],
source, raised_time, source_kafka_time``. ``source`` is ``server`` (this pipeline; only
the pipeline's Kafka principal may write the alert topic)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from vitalwatch.alerts.policy import recipients
from vitalwatch.config import Settings

RECIPIENT = T.StructType([T.StructField("role", T.StringType()), T.StructField("id", T.StringType())])


def alert_schema(settings: Settings) -> T.StructType:
    s, d, ts = T.StringType(), T.DoubleType(), T.TimestampType()
    f = [("schema_version", T.IntegerType()), ("alert_id", s), ("kind", s), ("level", s),
         ("previous_level", s), ("patient_id", s), ("observation_id", s), ("effective_time", ts),
         ("reasons", T.ArrayType(s)), ("late", T.BooleanType())]
    f += [(f"risk_{h}h", d) for h in settings.clinical.horizons_hours]
    f += [("news2", d), ("crisis_now", T.BooleanType()), ("systolic", d), ("diastolic", d),
          ("heart_rate", d), ("model_name", s), ("model_version", s), ("ward", s),
          ("recipients", T.ArrayType(RECIPIENT)), ("source", s), ("raised_time", ts),
          ("source_kafka_time", ts)]
    return T.StructType([T.StructField(n, t) for n, t in f])


def alert_events_pdf(rows: pd.DataFrame, settings: Settings, registry: dict[str, dict[str, Any]],
                     now: datetime | None = None) -> pd.DataFrame:
    """Scored rows that carry an alert → alert events, routed through the patient registry
    (``{patient_id: {"ward": …, "care_team": {role: caregiver}}}``)."""
    now = (now or datetime.now(UTC)).replace(tzinfo=None)
    out = []
    for r in rows.itertuples(index=False):
        reg = registry.get(r.patient_id, {})
        ev = {"schema_version": settings.alerts.schema_version, "alert_id": r.alert_id, "kind": r.alert_kind,
              "level": r.alert_level, "previous_level": r.alert_previous_level, "patient_id": r.patient_id,
              "observation_id": r.observation_id, "effective_time": r.effective_time,
              "reasons": list(r.level_reasons) if r.level_reasons is not None else [],
              "late": bool(r.alert_late)}
        for h in settings.clinical.horizons_hours:
            ev[f"risk_{h}h"] = getattr(r, f"risk_{h}h")
        ev.update(news2=r.news2, crisis_now=bool(r.crisis_now), systolic=r.systolic, diastolic=r.diastolic,
                  heart_rate=r.heart_rate, model_name=r.model_name, model_version=r.model_version,
                  ward=reg.get("ward") or "unassigned",
                  recipients=recipients(r.alert_level, reg.get("care_team"), settings.alerts),
                  source="server", raised_time=now, source_kafka_time=r.kafka_timestamp)
        out.append(ev)
    return pd.DataFrame(out, columns=[f.name for f in alert_schema(settings).fields])


def alert_events(spark, raised: pd.DataFrame, settings: Settings,
                 registry: dict[str, dict[str, Any]]) -> DataFrame:
    """:func:`alert_events_pdf` as a DataFrame (alerts per batch are few: built on the driver)."""
    pdf = alert_events_pdf(raised, settings, registry)
    schema = alert_schema(settings)
    if pdf.empty:
        return spark.createDataFrame([], schema)
    pdf = pdf.astype(object).where(pdf.notna(), None)
    return spark.createDataFrame(pdf, schema)


def kafka_records(df: DataFrame) -> DataFrame:
    """key = patient id (one patient's events stay ordered), value = the event as JSON."""
    return df.select(F.col("patient_id").alias("key"), F.to_json(F.struct(*df.columns)).alias("value"))


def normal_assessments(risk: DataFrame, settings: Settings) -> DataFrame:
    """Below-alert assessments for ``vitals.normal`` (the source project's ``Normal`` topic)."""
    risks = [f"risk_{h}h" for h in settings.clinical.horizons_hours]
    return (risk.where((F.col("score_status") == "scored") & (F.col("level") == "LOW") & F.col("alert_id").isNull())
            .select(F.lit(settings.alerts.schema_version).alias("schema_version"),
                    F.col("observation_id").alias("assessment_id"), "patient_id", "observation_id",
                    "effective_time", *risks, "level", "news2", "systolic", "diastolic", "heart_rate",
                    "model_name", "model_version", F.col("scored_time").alias("assessed_time")))
