"""A realistic ward in real Delta tables with the pipeline's own schemas and in the real MongoDB,
for the dashboard and API tests and the API benchmark (:mod:`vitalwatch.bench.api`):
``patients`` patients in ``gold/patient_status`` (one of them clearly the highest risk), a few
featured patients with hours of silver vitals (from the simulator through the real parser) and
their scored readings in ``gold/risk_scores``, alert events in ``gold/alerts`` and MongoDB
``alerts``, and the registry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from vitalwatch.config import Settings
from vitalwatch.fhir.parse import ParseRules, parse_observations
from vitalwatch.pipeline.gold import ensure_gold, risk_rows, scores_schema
from vitalwatch.pipeline.gold.tables import status_rows
from vitalwatch.pipeline.lake import (
    GOLD_ALERTS,
    GOLD_SCORES,
    GOLD_STATUS,
    KAFKA_BRONZE_SCHEMA,
    SILVER_VITALS,
)
from vitalwatch.pipeline.silver import to_silver
from vitalwatch.producers.simulator import SimulationPlan, readings, registry_entries
from vitalwatch.sinks.events import alert_events_pdf, alert_schema

LEVELS = ("LOW", "MEDIUM", "HIGH", "CRITICAL")


@dataclass(frozen=True)
class Ward:
    patients: list[str]
    top: str                 # the single highest-risk patient
    featured: list[str]      # patients with silver vitals and a score history
    alert_ids: list[str]     # open alerts (not acknowledged)
    wards: list[str]


def _level(r6: float, thresholds: dict[str, float]) -> str:
    return next((lv for lv in ("CRITICAL", "HIGH", "MEDIUM") if r6 >= thresholds[lv]), "LOW")


def build(spark: SparkSession, s: Settings, admin_db, patients: int, featured: int = 3, hours: float = 6) -> Ward:
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=hours)
    cfg = s.simulator.model_copy(update={"patients": patients, "seed": 11})
    plan = SimulationPlan(start, hours, cfg)
    reg = registry_entries(plan)
    ids = [r["_id"] for r in reg]
    admin_db.patients.insert_many(reg)
    ensure_gold(spark, s)

    # silver: the featured patients' device messages through the real parser
    feat = ids[:featured]
    fplan = SimulationPlan(start, hours, cfg.model_copy(update={"patients": featured}))  # the first ones
    t = datetime.now(UTC).replace(tzinfo=None)
    rows = [(m.key.encode(), m.value, "t", 0, i, t, 0, t, t.date()) for i, m in enumerate(readings(fplan))]
    parsed = parse_observations(spark.createDataFrame(rows, KAFKA_BRONZE_SCHEMA), ParseRules.from_settings(s))
    silver = to_silver(parsed)
    silver.write.format("delta").mode("append").save(s.table_path(*SILVER_VITALS))

    # gold scores: the featured patients' blood-pressure readings, then one latest reading per patient
    bp = (silver.where(F.col("vital").isin("systolic_bp", "diastolic_bp"))
          .groupBy("patient_id", "observation_id", "effective_time").pivot("vital", ["systolic_bp", "diastolic_bp"])
          .agg(F.first("value")).toPandas().rename(columns={"systolic_bp": "systolic", "diastolic_bp": "diastolic"}))
    assert len(bp) > 10 * featured, "the featured patients' blood pressure reached silver"
    rng = np.random.default_rng(5)
    th = s.alerts.policy.thresholds
    score_rows = []

    def row(pid: str, oid: str, t_eff, sbp: float, dbp: float, r6: float) -> dict:
        r = dict.fromkeys(scores_schema(s).fieldNames())
        r.update(patient_id=pid, observation_id=oid, effective_time=pd.Timestamp(t_eff).to_pydatetime().replace(tzinfo=None),
                 systolic=sbp, diastolic=dbp, heart_rate=float(rng.integers(60, 110)), respiratory_rate=16.0,
                 spo2=97.0, temperature=37.0, minutes_since_previous=15.0, features=[float("nan")] * 120,
                 risk_1h=r6 * 0.6, risk_6h=r6, risk_24h=min(1.0, r6 * 1.3), score_status="scored",
                 level=_level(r6, th), level_reasons=["model"], crisis_now=sbp >= 180 or dbp >= 120,
                 news2=float(rng.integers(0, 6)), news2_partial=None, news2_red_flag=False, bp_ratio=sbp / dbp,
                 model_name=s.models.risk_model_name, model_version="7", alert_id=None, alert_kind=None,
                 alert_level=None, alert_previous_level=None, alert_late=False,
                 kafka_timestamp=now.replace(tzinfo=None), silver_time=now.replace(tzinfo=None))
        return r

    for pid, g in bp.sort_values("effective_time").groupby("patient_id"):
        n = len(g)
        for k, r in enumerate(g.itertuples()):
            score_rows.append(row(pid, r.observation_id, r.effective_time, r.systolic, r.diastolic,
                                  0.05 + 0.5 * k / max(n - 1, 1)))
    have = set(bp["patient_id"])
    top = ids[patients // 2]  # not first in any natural order
    for i, pid in enumerate(ids):
        if pid in have and pid != top:
            continue
        r6 = 0.97 if pid == top else float(rng.uniform(0.0, 0.9))
        score_rows.append(row(pid, f"obs-{pid}-last", now - timedelta(minutes=int(rng.integers(1, 90))),
                              150.0 + i % 30, 90.0 + i % 20, r6))
    scores = spark.createDataFrame(pd.DataFrame(score_rows), scores_schema(s))
    risk = risk_rows(scores)
    risk.write.format("delta").mode("append").save(s.table_path(*GOLD_SCORES))
    status_rows(risk).write.format("delta").mode("append").save(s.table_path(*GOLD_STATUS))

    # alerts: the top patient and each featured patient's last reading
    last = pd.DataFrame(score_rows).sort_values("effective_time").groupby("patient_id").tail(1)
    raised = last[last["patient_id"].isin([top, *feat])].copy()
    raised["alert_id"] = [f"al-{p}-{i}" for i, p in enumerate(raised["patient_id"])]
    raised["alert_kind"] = "raised"
    raised["alert_level"] = [_level(r, th) if _level(r, th) != "LOW" else "MEDIUM" for r in raised["risk_6h"]]
    raised["alert_previous_level"] = "LOW"
    registry = {r["_id"]: {"ward": r["ward"], "care_team": r["care_team"]} for r in reg}
    ev = alert_events_pdf(raised, s, registry, now=now)
    spark.createDataFrame(ev, alert_schema(s)).write.format("delta").mode("append").save(s.table_path(*GOLD_ALERTS))
    docs = json.loads(ev.drop(columns=["recipients"]).to_json(orient="records", date_format="iso"))
    admin_db.alerts.insert_many([{"_id": d["alert_id"], **d} for d in docs])
    return Ward(ids, top, feat, ev["alert_id"].tolist(), sorted({r["ward"] for r in reg}))
