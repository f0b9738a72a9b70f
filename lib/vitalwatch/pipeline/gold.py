"""``silver/vital_signs`` → per-patient state → scores and alerts → gold tables and sinks.

One streaming query: silver rows (the vitals the features use) are grouped by patient into
``applyInPandasWithState`` (RocksDB state store), whose function is
:func:`vitalwatch.scoring.engine.advance` — the same vector, model and policy as batch —
and emits one row per new reading. ``foreachBatch`` then writes, idempotently:

- Delta ``gold/risk_scores`` and ``gold/alerts`` (``txnAppId``/``txnVersion`` = batch id:
  a replayed batch commits nothing twice) and ``gold/patient_status`` (MERGE, newest wins);
- MongoDB, Elasticsearch, the alerts/normal Kafka topics and webhooks
  (:mod:`vitalwatch.sinks`), all keyed by observation or alert id.

**Exactly-once effect.** The state store and the source offsets advance only when a batch
commits; a crash replays the batch with the same state, so it produces the same rows and the
same ``alert_id``s. Delta, MongoDB and Elasticsearch writes are upserts/idempotent commits;
Kafka delivery is at-least-once, and consumers (``vitalwatch alerts watch``,
:mod:`vitalwatch.alerts.feed`) drop a repeated ``alert_id``.

**Watermark.** On ``silver_time`` (when the row reached silver), not effective time: Spark
drops rows behind a stateful operator's watermark, and a device's delayed reading must never
vanish that way. It drives state expiry: a patient with nothing new for
``gold.state_ttl_hours`` of arrival time is discharged from state (a ``discharged`` row).
Lateness of effective time is the engine's documented policy instead.

The model is resolved by alias when the query starts; its name and version are on every
score. A new champion is picked up at the next start of the query."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.streaming.state import GroupStateTimeout

from vitalwatch.alerts.policy import AlertState
from vitalwatch.config import Settings
from vitalwatch.features.build import restore_nan
from vitalwatch.features.vector import BP_VITALS, OTHER_VITALS, ROW_COLUMNS
from vitalwatch.pipeline.lake import SILVER_VITALS, ensure_lake, ensure_table
from vitalwatch.pipeline.triggers import apply_trigger
from vitalwatch.scoring.engine import SOURCE_COLUMNS, ModelRef, advance, empty_rows, output_columns

log = logging.getLogger(__name__)
GOLD_SCORES = ("gold", "risk_scores")
GOLD_ALERTS = ("gold", "alerts")
GOLD_STATUS = ("gold", "patient_status")

STATE_SCHEMA = T.StructType([
    T.StructField("obs_ids", T.ArrayType(T.StringType())),
    T.StructField("times_ms", T.ArrayType(T.LongType())),
    T.StructField("vitals", T.ArrayType(T.StringType())),
    T.StructField("values", T.ArrayType(T.DoubleType())),
    T.StructField("level", T.StringType()),
    T.StructField("eval_ms", T.LongType()),
    T.StructField("last_alert_ms", T.ArrayType(T.LongType())),
    T.StructField("last_arrival_ms", T.LongType()),
])


def scores_schema(settings: Settings) -> T.StructType:
    """What the state function emits, one row per new reading (or discharged patient)."""
    dbl, s, b = T.DoubleType(), T.StringType(), T.BooleanType()
    types = {"patient_id": s, "observation_id": s, "effective_time": T.TimestampType(),
             "features": T.ArrayType(dbl), "score_status": s, "level": s,
             "level_reasons": T.ArrayType(s), "crisis_now": b, "news2_red_flag": b, "model_name": s,
             "model_version": s, "alert_id": s, "alert_kind": s, "alert_level": s,
             "alert_previous_level": s, "alert_late": b, "kafka_timestamp": T.TimestampType(),
             "silver_time": T.TimestampType()}
    return T.StructType([T.StructField(c, types.get(c, dbl)) for c in output_columns(settings.clinical)])


def _state_frame(pid: str, st: tuple) -> tuple[pd.DataFrame, AlertState]:
    rows = pd.DataFrame({"patient_id": pid, "observation_id": list(st[0]),
                         "effective_time": pd.to_datetime(np.asarray(st[1], dtype=np.int64), unit="ms"),
                         "vital": list(st[2]), "value": np.asarray(st[3], dtype=float)})
    return rows, AlertState.from_tuple((st[4], st[5], st[6]))


def state_function(model: ModelRef, settings: Settings):
    """The ``applyInPandasWithState`` function: one patient's new rows → scored readings."""
    clinical, alerts_cfg, gold = settings.clinical, settings.alerts, settings.gold
    ttl_ms = int(gold.state_ttl_hours * 3_600_000)
    cols = output_columns(clinical)

    def fn(key: tuple, pdfs: Iterator[pd.DataFrame], state) -> Iterator[pd.DataFrame]:
        pid = key[0]
        if state.hasTimedOut:  # discharged: nothing arrived for state_ttl
            state.remove()
            row = dict.fromkeys(cols)
            row.update(patient_id=pid, score_status="discharged")
            yield pd.DataFrame([row], columns=cols)
            return
        new = pd.concat(list(pdfs), ignore_index=True)
        if state.exists:
            rows, alert = _state_frame(pid, state.get)
        else:
            rows, alert = empty_rows(), AlertState()
        res = advance(rows, {pid: alert}, new, model, clinical, alerts_cfg, gold.late_tolerance_minutes)
        kept = res.rows
        a = res.alerts.get(pid, alert)
        arrival = int(new["silver_time"].max().value // 1_000_000)
        state.update((kept["observation_id"].tolist(),
                      kept["effective_time"].to_numpy("datetime64[ms]").astype(np.int64).tolist(),
                      kept["vital"].tolist(), kept["value"].astype(float).tolist(), *a.as_tuple(), arrival))
        state.setTimeoutTimestamp(arrival + ttl_ms)
        yield res.out

    return fn


def gold_input(spark: SparkSession, settings: Settings) -> DataFrame:
    """Silver as a stream: the vitals the features use, with the reading's source times."""
    silver = spark.readStream.format("delta").option("maxFilesPerTrigger", settings.streaming.max_files_per_trigger).load(settings.table_path(*SILVER_VITALS))
    return (silver.where(F.col("vital").isin([*BP_VITALS, *OTHER_VITALS]))
            .select(*ROW_COLUMNS, *SOURCE_COLUMNS)
            .withWatermark("silver_time", settings.gold.watermark_delay))


def score_stream(rows: DataFrame, model: ModelRef, settings: Settings) -> DataFrame:
    """Rows → scored readings (the stateful step). Missing vector slots arrive as null (Arrow);
    :func:`risk_rows` turns them back into NaN, the training vectors' missing value."""
    return rows.groupBy("patient_id").applyInPandasWithState(
        state_function(model, settings), scores_schema(settings), STATE_SCHEMA, "append",
        GroupStateTimeout.EventTimeTimeout)


def load_model(settings: Settings) -> ModelRef:
    from vitalwatch.models.registry import load_risk_model

    m = load_risk_model(settings, settings.gold.model_alias)
    return ModelRef(m.name, m.version, m.scorer)


# -- gold tables ------------------------------------------------------------------------------
def risk_rows(batch: DataFrame) -> DataFrame:
    """Scored readings for ``gold/risk_scores``: every new reading, with when it was scored."""
    return (batch.where(F.col("score_status") != "discharged")
            .withColumn("features", restore_nan("features"))
            .withColumn("scored_time", F.current_timestamp())
            .withColumn("effective_date", F.to_date("effective_time")))


def alert_rows(batch: DataFrame) -> DataFrame:
    """The alert events raised by this batch (routing is added by :mod:`vitalwatch.sinks`)."""
    return batch.where(F.col("alert_id").isNotNull())


def status_rows(batch: DataFrame) -> DataFrame:
    """Latest in-order reading (or discharge) per patient in this batch."""
    from pyspark.sql import Window

    live = batch.where(F.col("score_status").isin("scored", "discharged"))
    w = Window.partitionBy("patient_id").orderBy(F.col("effective_time").desc_nulls_first(),
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
    ensure_table(spark, settings.table_path(*GOLD_STATUS), status_rows(empty).schema, [])


STEP_TIMES: dict[str, float] = {}  # seconds per write step of the last batch (profiling, issue 6)


def write_batch(batch: DataFrame, batch_id: int, settings: Settings, app_id: str, sinks) -> None:
    """One micro-batch to every gold table and sink, each idempotent per batch/keys.

    The stateful step runs once: its output is materialised into the cache first, so the
    writes below (several Spark jobs) read the same rows instead of recomputing the state."""
    import time

    from delta.tables import DeltaTable

    from vitalwatch.sinks.events import alert_events

    t = time.perf_counter()
    times = STEP_TIMES
    times.clear()

    def step(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        times[name] = now - t
        t = now

    batch = batch.persist()
    try:
        n = batch.count()
        step("score")
        if n == 0:
            return
        spark = batch.sparkSession
        risk = risk_rows(batch)
        raised = alert_rows(batch).toPandas()
        registry = sinks.care_teams(sorted(set(raised["patient_id"]))) if len(raised) else {}
        alerts = alert_events(spark, raised, settings, registry).persist()
        step("route")
        sinks.notify(risk, alerts, bool(len(raised)), on_step=step)
        (risk.write.format("delta").mode("append").option("txnAppId", f"{app_id}:risk_scores")
         .option("txnVersion", batch_id).save(settings.table_path(*GOLD_SCORES)))
        step("delta_scores")
        if len(raised):  # no empty commits (they cost seconds and wake readers for nothing)
            (alerts.write.format("delta").mode("append").option("txnAppId", f"{app_id}:alerts")
             .option("txnVersion", batch_id).save(settings.table_path(*GOLD_ALERTS)))
        step("delta_alerts")
        status = status_rows(batch).persist()
        (DeltaTable.forPath(spark, settings.table_path(*GOLD_STATUS)).alias("t")
         .merge(status.alias("s"), "t.patient_id = s.patient_id")
         .whenMatchedUpdateAll(condition="s.state = 'discharged' OR t.effective_time IS NULL "
                                         "OR s.effective_time >= t.effective_time")
         .whenNotMatchedInsertAll().execute())
        step("delta_status")
        sinks.write(batch_id, risk, alerts, status, bool(len(raised)), on_step=step)
        alerts.unpersist()
        status.unpersist()
    finally:
        batch.unpersist()
        log.info("gold batch %s: %s", batch_id,
                                         ", ".join(f"{k} {v:.2f}s" for k, v in times.items()))
        if os.environ.get("VITALWATCH_PROFILE_GOLD"):
            print(f"gold batch {batch_id}: " + ", ".join(f"{k} {v:.2f}s" for k, v in times.items()), flush=True)


def start_gold(spark: SparkSession, settings: Settings, *, available_now: bool = False,
               query_name: str = "gold_risk_scores", model: ModelRef | None = None,
               sinks=None) -> StreamingQuery:
    from vitalwatch.sinks import Sinks

    ensure_gold(spark, settings)
    model = model or load_model(settings)
    sinks = sinks or Sinks.from_settings(spark, settings)
    sinks.prepare()
    app_id = f"vitalwatch:{query_name}"
    writer = (score_stream(gold_input(spark, settings), model, settings).writeStream.queryName(query_name)
              .option("checkpointLocation", settings.checkpoint_path(query_name))
              .foreachBatch(lambda df, bid: write_batch(df, bid, settings, app_id, sinks)))
    return apply_trigger(writer, settings, available_now).start()


def start_vitals_index(spark: SparkSession, settings: Settings, *, available_now: bool = False,
                       query_name: str = "es_vitals") -> StreamingQuery:
    """``silver/vital_signs`` → Elasticsearch ``vitalwatch-vitals`` (search and Kibana), one
    document per value keyed by observation, version and vital (idempotent on replay)."""
    from vitalwatch.sinks import Sinks
    from vitalwatch.sinks.search import vitals_documents, write

    ensure_lake(spark, settings)
    sinks = Sinks.from_settings(spark, settings, ["elasticsearch"])
    sinks.prepare()
    nodes = sinks.endpoints.es_nodes or ""

    def write_batch(df: DataFrame, _bid: int) -> None:
        write(vitals_documents(df), settings, nodes, "vitals", "doc_id")

    silver = spark.readStream.format("delta").load(settings.table_path(*SILVER_VITALS))
    writer = (silver.writeStream.queryName(query_name)
              .option("checkpointLocation", settings.checkpoint_path(query_name)).foreachBatch(write_batch))
    return apply_trigger(writer, settings, available_now).start()
