"""The ``model_outcomes`` stage (lake application): ``gold/risk_scores`` → ``gold/model_outcomes``
and the daily ``gold/model_monitoring`` (:mod:`vitalwatch.models.monitoring`).

Each batch of new scored readings decides outcomes of the same patients' earlier readings: a
crisis settles the readings of the longest horizon before it as 1, a reading past a horizon
settles earlier ones as 0 — back to the longest horizon before the patient's previous reading.
So per batch the touched patients' readings from ``models.monitoring.gap_hours`` + the longest
horizon before their earliest new reading on are read back from ``gold/risk_scores``, and the outcomes of those from
(the previous reading − the longest horizon) on computed per patient (``applyInPandas``, the one
implementation in :mod:`vitalwatch.models.outcomes`; :func:`monitoring.changed_outcomes`). The
readings before a pause longer than ``gap_hours`` (a discharge and readmission under one id)
keep the outcomes they had (unknown where the pause censored them). They are MERGEd on (patient, observation, horizon):
a replayed batch or a rebuilt checkpoint writes nothing twice, and a late reading that changes
an outcome already recorded (a crisis turning a 0 into a 1) or the reading that settled it
corrects the row — the table is always what :func:`~vitalwatch.models.monitoring.outcome_rows`
gives on the whole lake. The days whose outcomes changed are then
recomputed into ``gold/model_monitoring`` (MERGE on day, role, version, horizon), one day on the
driver at a time — at most every ``models.monitoring.refresh_minutes`` per day while streaming,
all of them in available-now runs; days still waiting when the stage stopped are found again
at its start (:func:`pending_days`) and refreshed then.

A monitoring row that breaches its bounds is logged as a system alert; the health page shows it.
Nothing here is on the alert path: it runs in the lake application and never alerts a patient."""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery

from vitalwatch.config import Settings
from vitalwatch.models import drift, monitoring
from vitalwatch.models.outcomes import TIMED_STATUSES
from vitalwatch.pipeline.gold import ensure_gold, report_times
from vitalwatch.pipeline.gold.tables import pandas_safe
from vitalwatch.pipeline.lake import (
    GOLD_SCORES,
    MODEL_MONITORING,
    MODEL_OUTCOMES,
    ensure_table,
    read_table,
    stream_table,
)
from vitalwatch.pipeline.stages import BY_NAME
from vitalwatch.pipeline.triggers import start_foreach_batch

log = logging.getLogger(__name__)
QUERY = BY_NAME["model_outcomes"].query
DAYS_PER_REFRESH = 7  # a catch-up over a long history recomputes this many days per refresh

S, D, L, INT = T.StringType(), T.DoubleType(), T.LongType(), T.IntegerType()
OUTCOMES_SCHEMA = T.StructType([
    T.StructField("patient_id", S), T.StructField("observation_id", S),
    T.StructField("effective_time", T.TimestampType()), T.StructField("effective_date", T.DateType()),
    T.StructField("horizon_h", INT), T.StructField("model_version", S), T.StructField("risk", D),
    T.StructField("shadow_model_version", S), T.StructField("shadow_risk", D), T.StructField("outcome", INT),
    T.StructField("outcome_known_time", T.TimestampType())])
MONITORING_SCHEMA = T.StructType([
    T.StructField("day", T.DateType()), T.StructField("role", S), T.StructField("model_version", S),
    T.StructField("horizon_h", INT), T.StructField("readings", L), T.StructField("positives", L),
    *[T.StructField(c, D) for c in ("auroc", "auprc", "ece", "mean_predicted", "observed_rate")],
    T.StructField("decile_predicted", T.ArrayType(D)), T.StructField("decile_observed", T.ArrayType(D)),
    T.StructField("decile_count", T.ArrayType(L)),
    *[T.StructField(c, D) for c in ("patients", "patient_hours", "onsets", *monitoring.EVENT_KEYS)],
    T.StructField("psi", T.MapType(S, D)), T.StructField("psi_max", D), T.StructField("psi_group", S),
    T.StructField("drift_readings", L), T.StructField("reference_version", S),
    T.StructField("breaches", T.ArrayType(S)), T.StructField("computed_time", T.TimestampType())])
SCORE_COLUMNS = ["patient_id", "observation_id", "effective_time", "score_status", "crisis_now", "model_version",
                 "shadow_model_version", "alert_kind", "alert_level"]


@dataclass
class Monitor:
    """What the stage keeps between batches: the reference it judges drift against, and the
    days waiting for (or recently given) a monitoring row."""

    reference: dict | None
    reference_version: str | None
    force: bool  # available-now: every batch refreshes its days
    dirty: set[dt.date] = field(default_factory=set)
    refreshed: dict[dt.date, float] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)
    checked: float = field(default_factory=time.monotonic)  # when the champion's version was last looked up


def ensure_monitoring(spark: SparkSession, settings: Settings) -> None:
    ensure_table(spark, settings.table_path(*MODEL_OUTCOMES),
                 T.StructType([*OUTCOMES_SCHEMA.fields, T.StructField("recorded_time", T.TimestampType())]),
                 ["effective_date"])
    ensure_table(spark, settings.table_path(*MODEL_MONITORING), MONITORING_SCHEMA, [])


def touched_readings(batch: DataFrame) -> DataFrame:
    """The patients of a batch's trusted readings and each one's earliest reading time."""
    timed = pandas_safe(batch).where(F.col("observation_id").isNotNull() & F.col("effective_time").isNotNull()
                                     & F.col("score_status").isin(*TIMED_STATUSES))
    return timed.groupBy("patient_id").agg(F.min("effective_time").alias("since"))


def window_rows(scores: DataFrame, touched: DataFrame, oldest: dt.date, settings: Settings) -> DataFrame:
    """The touched patients' readings from ``monitoring.gap_hours`` + the longest horizon before
    their earliest new one on (``oldest``: that bound's date, for partition pruning), with ``since``."""
    hs = settings.clinical.horizons_hours
    cols = [*SCORE_COLUMNS, *(f"risk_{h}h" for h in hs), *(f"shadow_risk_{h}h" for h in hs)]
    back_min = int((settings.models.monitoring.gap_hours + max(hs)) * 60)
    return (pandas_safe(scores.where(F.col("effective_date") >= F.lit(oldest))).select(*cols)
            .where(F.col("observation_id").isNotNull())
            .join(F.broadcast(touched), "patient_id")
            .where(F.col("effective_time") >= F.col("since") - F.expr(f"INTERVAL {back_min} MINUTES")))


def known_outcomes(window: DataFrame, settings: Settings) -> DataFrame:
    """Known outcomes of the readings whose outcomes the new ones can change, per patient
    (:func:`monitoring.changed_outcomes`)."""
    hs = list(settings.clinical.horizons_hours)

    def per_patient(pdf: pd.DataFrame) -> pd.DataFrame:
        return monitoring.changed_outcomes(pdf, hs)

    return window.groupBy("patient_id").applyInPandas(per_patient, OUTCOMES_SCHEMA)


def merge_outcomes(spark: SparkSession, settings: Settings, rows: DataFrame, dates: list[dt.date]) -> None:
    """Insert new outcomes; correct one a late reading changed (module doc)."""
    from delta.tables import DeltaTable

    rows = rows.dropDuplicates(["patient_id", "observation_id", "horizon_h"]).withColumn(
        "recorded_time", F.current_timestamp())
    same = F.col("t.effective_date").isin(dates) & _same("t", "s", "effective_date", "patient_id", "observation_id",
                                                         "horizon_h")
    (DeltaTable.forPath(spark, settings.table_path(*MODEL_OUTCOMES)).alias("t").merge(rows.alias("s"), same)
     .whenMatchedUpdate("t.outcome <> s.outcome OR NOT (t.outcome_known_time <=> s.outcome_known_time)", {c: f"s.{c}" for c in ("outcome", "outcome_known_time",
                                                                          "recorded_time")})
     .whenNotMatchedInsertAll().execute())


def write_batch(batch: DataFrame, batch_id: int, settings: Settings, mon: Monitor) -> None:
    spark = batch.sparkSession
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    touched = touched_readings(batch).persist()
    rows = None
    try:
        gap_days = math.ceil((settings.models.monitoring.gap_hours + max(settings.clinical.horizons_hours)) / 24)
        oldest = touched.agg(F.date_sub(F.to_date(F.min("since")), gap_days)).first()[0]  # a date: no time zone
        if oldest is not None:
            scores = read_table(spark, settings, GOLD_SCORES)
            rows = known_outcomes(window_rows(scores, touched, oldest, settings), settings).persist()
            dates = sorted(r[0] for r in rows.select("effective_date").distinct().collect())
            if dates:
                merge_outcomes(spark, settings, rows, dates)
            mon.dirty.update(dates)
            times["outcomes"] = time.perf_counter() - t0
    finally:
        touched.unpersist()
        if rows is not None:
            rows.unpersist()
    t1 = time.perf_counter()
    if refresh_due(spark, settings, mon):
        times["monitoring"] = time.perf_counter() - t1
    report_times(QUERY, batch_id, times)


def refresh_due(spark: SparkSession, settings: Settings, mon: Monitor) -> bool:
    """:func:`refresh` once, or — available-now — until no day is left (a catch-up can dirty
    more days than one refresh takes)."""
    did = refresh(spark, settings, mon)
    while mon.force and did and refresh(spark, settings, mon):
        pass
    return did


def due_days(mon: Monitor, settings: Settings) -> list[dt.date]:
    wait = settings.models.monitoring.refresh_minutes * 60
    now = time.monotonic()
    due = sorted(d for d in mon.dirty if mon.force or now - mon.refreshed.get(d, -np.inf) >= wait)
    return due[:DAYS_PER_REFRESH]


def refresh(spark: SparkSession, settings: Settings, mon: Monitor) -> bool:
    """Recompute the monitoring rows of the days due (module doc), one day on the driver at a
    time; whether any was."""
    days = due_days(mon, settings)
    if not days:
        return False
    follow_champion(mon, settings)
    cfg, window_h = settings.models.monitoring, settings.models.event_evaluation.window_h
    drift_counts = _drift_counts(spark, settings, days, mon.reference)
    rows = []
    for day in days:
        counts = drift_counts.get(day)
        psi = drift.psi(counts, mon.reference) if counts and mon.reference else None
        n = int(counts["sbp_latest"].sum()) if counts and "sbp_latest" in counts else 0  # one value per vector
        ev = monitoring.day_events(_context(spark, settings, day, window_h), pd.Timestamp(day), window_h)
        for r in monitoring.day_rows(_day_outcomes(spark, settings, day), ev, psi, n, mon.reference_version, cfg,
                                     settings.models.ece_bins):
            rows.append({"day": day, **r})
    if rows:
        merge_monitoring(spark, settings, rows)
    _report(rows, mon)
    now = time.monotonic()
    for d in days:
        mon.dirty.discard(d)
        mon.refreshed[d] = now
    return True


def _day_outcomes(spark: SparkSession, settings: Settings, day: dt.date) -> pd.DataFrame:
    """A day's known outcomes, only the columns its quality needs."""
    return (read_table(spark, settings, MODEL_OUTCOMES)
            .where(F.col("effective_date") == F.lit(day))
            .select(*monitoring.QUALITY_COLUMNS).toPandas())


def _context(spark: SparkSession, settings: Settings, day: dt.date, window_h: float) -> pd.DataFrame:
    """The day's readings with their alert events, and the ``window_h`` before it."""
    start = F.to_timestamp(F.lit(day.isoformat()))  # midnight in the session's time zone (UTC), as effective_date
    before = sorted({day - dt.timedelta(days=k) for k in range(math.ceil(window_h / 24) + 1)})
    scores = read_table(spark, settings, GOLD_SCORES)
    rows = (pandas_safe(scores.where(F.col("effective_date").isin(before)))
            .where(F.col("observation_id").isNotNull() & F.col("effective_time").isNotNull()
                   & (F.col("effective_time") >= start - F.expr(f"INTERVAL {int(window_h * 60)} MINUTES")))
            .select(*SCORE_COLUMNS))
    return rows.toPandas()


def _drift_counts(spark: SparkSession, settings: Settings, days: list[dt.date],
                  ref: dict | None) -> dict[dt.date, dict[str, np.ndarray]]:
    """Per day, the scored vectors' counts per slot-group bin (:func:`drift.counts`), summed
    over partitions where the vectors are (they never reach the driver)."""
    if not ref:
        return {}
    scores = read_table(spark, settings, GOLD_SCORES)
    vectors = scores.where(F.col("effective_date").isin(days) & (F.col("score_status") == "scored")).select(
        "effective_date", "features")

    def count(batches):
        for pdf in batches:
            for day, g in pdf.groupby("effective_date"):
                x = np.array(g["features"].tolist(), dtype=float).reshape(len(g), -1)
                for group, c in drift.counts(x, ref).items():
                    yield pd.DataFrame({"effective_date": day, "grp": group, "bin": np.arange(len(c)), "n": c})

    schema = "effective_date date, grp string, bin int, n long"
    summed = vectors.mapInPandas(count, schema).groupBy("effective_date", "grp", "bin").agg(F.sum("n").alias("n"))
    out: dict[dt.date, dict[str, np.ndarray]] = {}
    for r in summed.collect():
        size = len(ref["groups"][r["grp"]]["edges"]) + 2
        out.setdefault(r["effective_date"], {}).setdefault(r["grp"], np.zeros(size, np.int64))[r["bin"]] = r["n"]
    return out


def merge_monitoring(spark: SparkSession, settings: Settings, rows: list[dict]) -> None:
    """Upsert monitoring rows (:func:`monitoring.day_rows` plus ``day``) on day, role, version, horizon."""
    from delta.tables import DeltaTable

    clean = [{k: _plain(r.get(k)) for k in MONITORING_SCHEMA.fieldNames()} for r in rows]
    df = spark.createDataFrame(clean, MONITORING_SCHEMA).withColumn("computed_time", F.current_timestamp())
    (DeltaTable.forPath(spark, settings.table_path(*MODEL_MONITORING)).alias("t")
     .merge(df.alias("s"), _same("t", "s", "day", "role", "model_version", "horizon_h"))
     .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())


def _report(rows: list[dict], mon: Monitor) -> None:
    for r in rows:
        for b in r["breaches"]:
            if (msg := f"{r['day']}: {b}") not in mon.reported:
                mon.reported.add(msg)
                log.warning("system alert (model monitoring): %s", msg)


def _same(t: str, s: str, *cols: str) -> Column:
    cond = F.lit(True)
    for c in cols:
        cond = cond & (F.col(f"{t}.{c}") == F.col(f"{s}.{c}"))
    return cond


def _plain(v):
    """numpy scalars and NaN as Spark's createDataFrame takes them."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def follow_champion(mon: Monitor, settings: Settings) -> None:
    """Load the reference again when the champion moved (or none was loaded), looking at most
    every ``refresh_minutes``: a promotion is judged against its own training data."""
    from vitalwatch.models.registry import client

    if not mon.force and time.monotonic() - mon.checked < settings.models.monitoring.refresh_minutes * 60:
        return
    mon.checked = time.monotonic()
    try:
        m = settings.models
        version = str(client(settings).get_model_version_by_alias(m.risk_model_name,
                                                                  settings.gold.model_alias or m.champion_alias).version)
    except Exception as e:  # the registry down: keep the reference there is
        log.warning("model monitoring: champion not looked up (%s)", type(e).__name__)
        return
    if version != mon.reference_version:  # (a version without a reference is not loaded again)
        mon.reference, mon.reference_version = load_reference(settings)


def pending_days(spark: SparkSession, settings: Settings) -> set[dt.date]:
    """Days with outcomes recorded after their last monitoring row: a stage stopped inside a
    refresh wait must not forget them (its waiting days live only in memory)."""
    out = (read_table(spark, settings, MODEL_OUTCOMES)
           .groupBy("effective_date").agg(F.max("recorded_time").alias("recorded")))
    mon = (read_table(spark, settings, MODEL_MONITORING)
           .groupBy("day").agg(F.max("computed_time").alias("computed")))
    late = out.join(mon, out["effective_date"] == mon["day"], "left").where(
        F.col("computed").isNull() | (F.col("recorded") > F.col("computed")))
    return {r[0] for r in late.select("effective_date").collect()}


def load_reference(settings: Settings) -> tuple[dict | None, str | None]:
    """The champion's training reference and version; (None, version or None) when it has none
    or cannot be loaded — then there is no drift, and the rest of monitoring goes on."""
    from vitalwatch.models.registry import load_risk_model
    from vitalwatch.pipeline.supervisor import first_line

    try:
        m = load_risk_model(settings, settings.gold.model_alias)
    except Exception as e:
        log.warning("model monitoring without drift: no champion loaded (%s)", first_line(e))
        return None, None
    if m.scorer.reference is None:
        log.warning("model monitoring without drift: version %s has no training reference (trained before "
                    "references were stored: retrain)", m.version)
    return m.scorer.reference, m.version


def start_model_outcomes(spark: SparkSession, settings: Settings, *, available_now: bool = False,
                         query_name: str = QUERY) -> StreamingQuery:
    ensure_gold(spark, settings)
    ensure_monitoring(spark, settings)
    ref, version = load_reference(settings)
    mon = Monitor(ref, version, force=available_now or settings.models.monitoring.refresh_minutes == 0,
                  dirty=pending_days(spark, settings))
    refresh_due(spark, settings, mon)  # days left waiting by the last run: batches come only with data
    return start_foreach_batch(stream_table(spark, settings, GOLD_SCORES), settings, query_name=query_name,
                               checkpoint=settings.checkpoint_path(query_name), available_now=available_now, stage=QUERY,
                               write=lambda df, bid, _app: write_batch(df, bid, settings, mon))
