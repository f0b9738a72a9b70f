"""Silver rows → per-patient state → scores and alerts → the alert channels and gold tables.

One streaming query, the alert path: silver rows (the vitals the features use) are grouped by
patient into ``applyInPandasWithState`` (RocksDB state store), whose function is
:func:`vitalwatch.scoring.engine.advance` — the same vector, model and policy as batch —
and emits one row per new reading. ``foreachBatch`` then, in this order:

1. publishes alerts to ``vitals.alerts`` — first, since people wait on these;
2. at once: assessments to ``vitals.normal`` and the rows of ``gold/risk_scores``
   and ``gold/alerts`` to their topics (``kafka.topics.gold_scores`` / ``gold_alerts``), keyed
   by reading and alert id.

The ``gold_lake`` stage (:mod:`vitalwatch.pipeline.gold_lake`) writes those two topics to the
Delta tables, dropping a key it has already written, so the alert path does no Delta commit
(measured: 1.5-7 s of each scoring batch on two cores). The stores people read
(``gold/patient_status``, MongoDB, Elasticsearch) are filled from the gold tables by their own
queries (:mod:`vitalwatch.pipeline.serve`), off the alert path too.

**Source** (``gold.source``). ``kafka`` (default): the silver transform
(:func:`vitalwatch.pipeline.silver.to_silver` on the parsed topic) applied in-stream, so an alert
waits for no Delta commit of bronze or silver; the silver query records the same rows (and the
quarantine) in the lake. Duplicates need no watermark here: the engine ignores a repeated
observation. ``silver``: the ``silver/vital_signs`` table as a stream — for replays and
backfills from the lake. Either way the rows are the same function of the same messages.

**Exactly-once effect.** The state store and the source offsets advance only when a batch
commits; a crash replays the batch with the same state, so it produces the same rows, the same
``alert_id``s and the same keys (a discharge is dated by its expiry, not the clock). Kafka
delivery is at-least-once: ``gold_lake`` drops a key it has seen within
``streaming.dedupe_watermark``, and the alert consumers (``vitalwatch alerts watch``,
:mod:`vitalwatch.alerts.feed`) drop a repeated ``alert_id``.

**Watermark.** On ``silver_time`` (when the row was accepted), not effective time: Spark
drops rows behind a stateful operator's watermark, and a device's delayed reading must never
vanish that way. It drives state expiry: a patient with nothing new for
``gold.state_ttl_hours`` of arrival time is discharged from state (a ``discharged`` row in
``gold/risk_scores``, no observation). Lateness of effective time is the engine's documented
policy instead.

The model is resolved by alias when the query starts; its name and version are on every
score. A new champion is picked up at the next start of the query. When no champion can be
loaded (registry down, none yet, files refused by their checksum) the query scores by the
rules alone and reports itself degraded until the champion loads (:func:`load_model_or_rules`)."""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass

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
from vitalwatch.features.vector import BP_VITALS, OTHER_VITALS, feature_names
from vitalwatch.infra.endpoints import Endpoints, resolve
from vitalwatch.pipeline.checkpoints import check_layout
from vitalwatch.pipeline.lake import SILVER_VITALS, ensure_lake, ensure_table
from vitalwatch.pipeline.triggers import start_foreach_batch
from vitalwatch.scoring.engine import (
    SOURCE_COLUMNS,
    ModelRef,
    advance_safely,
    empty_rows,
    output_columns,
)

log = logging.getLogger(__name__)
GOLD_SCORES = ("gold", "risk_scores")
GOLD_ALERTS = ("gold", "alerts")
GOLD_STATUS = ("gold", "patient_status")
JSON_TIMESTAMP = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"  # the gold tables' topics keep microseconds
QUERY = "gold_risk_scores"  # the scoring query's name (its checkpoint adds gold.source)
# mongo: the registry, for routing (cached; never waited on). Webhooks are not here: the notifier
# (``vitalwatch notify``) delivers them from the alert topic, so no receiver can delay an alert.
ALERT_PATH_SINKS = ("kafka", "mongo")

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


def gold_input(spark: SparkSession, settings: Settings, endpoints: Endpoints | None = None) -> DataFrame:
    """Silver rows as a stream (``gold.source``, see module doc): the vitals the features use,
    with the reading's source times."""
    if settings.gold.source == "kafka":
        from vitalwatch.fhir.parse import ParseRules, alertable, parse_observations
        from vitalwatch.pipeline.bronze import kafka_stream, to_bronze

        endpoints = endpoints or resolve(settings, ("kafka",))
        raw = to_bronze(kafka_stream(spark, settings, endpoints, settings.kafka.topics.observations))
        silver = alertable(parse_observations(raw, ParseRules.from_settings(settings))).withColumn(
            "silver_time", F.current_timestamp())
    else:
        silver = (spark.readStream.format("delta")
                  .option("maxFilesPerTrigger", settings.streaming.max_files_per_trigger)
                  .load(settings.table_path(*SILVER_VITALS)))
    return keyed_rows(silver, settings)


def keyed_rows(silver: DataFrame, settings: Settings) -> DataFrame:
    """Silver rows → what the state function reads (:data:`INPUT_COLUMNS`): the vitals the
    features use, their state bucket (``gold.state_buckets``) and the arrival-time watermark
    (module doc). ``untimely``: a value outside the time bounds (quarantined in silver), read
    only so that a crisis in it still alerts."""
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
    :func:`risk_rows` turns them back into NaN, the training vectors' missing value."""
    scored = rows.groupBy("bucket").applyInPandasWithState(
        state_function(model, settings), engine_schema(settings), STATE_SCHEMA, "append",
        GroupStateTimeout.EventTimeTimeout)
    return with_effective_time(scored)


def with_effective_time(scored: DataFrame) -> DataFrame:
    """``effective_us`` (as the engine emits it) → ``effective_time``, in its place."""
    cols = [F.timestamp_micros("effective_us").alias("effective_time") if c == "effective_us" else F.col(c)
            for c in scored.columns]
    return scored.select(*cols)


NO_MODEL_VERSION = "none"  # model_version of readings scored without a model


def load_model(settings: Settings) -> ModelRef:
    """The champion (``gold.model_alias``) with, when ``gold.shadow_alias`` names one, the
    shadow model scored beside it; a shadow that cannot be loaded is logged and left out."""
    from vitalwatch.models.registry import load_risk_model

    m = load_risk_model(settings, settings.gold.model_alias)
    return ModelRef(m.name, m.version, m.scorer, load_shadow(settings, m.version))


def load_shadow(settings: Settings, champion_version: str) -> ModelRef | None:
    from vitalwatch.models.registry import load_risk_model
    from vitalwatch.pipeline.supervisor import first_line

    alias = settings.gold.shadow_alias
    if not alias:
        return None
    try:
        m = load_risk_model(settings, alias)
    except Exception as e:  # no such alias yet, a checksum refused: scoring goes on without it
        log.warning("no shadow model %s@%s: %s", settings.models.risk_model_name, alias, first_line(e))
        return None
    if m.version == champion_version:
        log.info("shadow alias %s is the champion (version %s): no shadow scoring", alias, m.version)
        return None
    ref = ModelRef(m.name, m.version, m.scorer)
    try:  # it travels with every task and scores every batch: refuse here what would fail there
        pickle.loads(pickle.dumps(ref)).scorer.predict(np.full((1, len(feature_names(settings.clinical.history_readings))), np.nan))
    except Exception as e:
        log.warning("shadow model %s version %s cannot score here (%s): left out", m.name, m.version, first_line(e))
        return None
    return ref


def load_model_or_rules(settings: Settings) -> tuple[ModelRef, str | None]:
    """The champion, or — when it cannot be loaded or is refused — scoring by the rules alone
    (:class:`~vitalwatch.models.scorer.NoModel`, ``model_version`` ``none``) and why: the alert
    path must never wait for the registry."""
    from vitalwatch.models.scorer import NoModel
    from vitalwatch.pipeline.supervisor import first_line

    try:
        return load_model(settings), None
    except Exception as e:  # the registry down, no champion, a checksum refused
        reason = f"scoring without a model (crisis and NEWS2 rules only): {first_line(e)}"
        log.error("%s", reason)
        return ModelRef(settings.models.risk_model_name, NO_MODEL_VERSION,
                        NoModel(list(settings.clinical.horizons_hours))), reason


def champion_loadable(settings: Settings) -> bool:
    try:
        load_model(settings)
    except Exception as e:
        log.info("champion still not loadable: %s", e)
        return False
    return True


# -- gold tables ------------------------------------------------------------------------------
def risk_rows(batch: DataFrame) -> DataFrame:
    """Rows for ``gold/risk_scores``: every new reading, with when it was scored, and the
    ``discharged`` markers of expired patients (no observation; dated when they expired).
    ``effective_date`` (the partition) is a function of the row alone — a discharge's is its
    expiry's — so a replayed row lands in the same partition as its first copy."""
    return (batch.withColumn("features", restore_nan("features"))
            .withColumn("scored_time", F.current_timestamp())
            .withColumn("effective_date", F.coalesce(F.to_date("effective_time"), F.to_date("silver_time"))))


def readings(risk: DataFrame) -> DataFrame:
    """``gold/risk_scores`` rows that are readings (not discharge markers)."""
    return risk.where(F.col("observation_id").isNotNull())


# The times pandas can hold (its nanosecond timestamps): an untimely reading's claimed time may
# lie outside (year 9999); where rows go through pandas on the driver it is then left out.
PANDAS_TIME_RANGE = ("1677-09-22 00:00:00", "2262-04-11 00:00:00")


def pandas_safe(df: DataFrame) -> DataFrame:
    """``df`` with an ``effective_time`` pandas cannot hold set to null (the row is kept)."""
    t = F.col("effective_time")
    ok = t.between(F.lit(PANDAS_TIME_RANGE[0]).cast("timestamp"), F.lit(PANDAS_TIME_RANGE[1]).cast("timestamp"))
    return df.withColumn("effective_time", F.when(ok, t))


def alert_rows(batch: DataFrame) -> DataFrame:
    """The alert events raised by this batch (routing is added by :mod:`vitalwatch.sinks`)."""
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


STEP_TIMES: dict[str, float] = {}  # seconds per step of the last batch (profiling, issue 6)


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


def write_batch(batch: DataFrame, batch_id: int, settings: Settings, sinks) -> None:
    """One micro-batch to the alert topic first, then the other channels and the gold tables'
    topics at once (see module doc).

    The stateful step runs once: its output is materialised into the cache first, so the
    writes below (several Spark jobs) read the same rows instead of recomputing the state."""
    import time

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
        raised = pandas_safe(alert_rows(batch)).toPandas()
        registry = sinks.care_teams(sorted(set(raised["patient_id"]))) if len(raised) else {}
        alerts = alert_events(spark, raised, settings, registry).persist()
        step("route")
        if len(raised):
            sinks.publish_alerts(alerts)
        step("kafka_alerts")

        records = lake_records(risk, alerts if len(raised) else None, settings)
        rest = [*sinks.follow_ups(risk, alerts, bool(len(raised))), ("kafka_lake", lambda: sinks.publish_records(records))]
        try:
            times.update(run_concurrently(rest))
        finally:
            alerts.unpersist()
        step("rest")
    finally:
        batch.unpersist()
        report_times("gold", batch_id, times)


def run_concurrently(tasks: list[tuple[str, Callable[[], None]]]) -> dict[str, float]:
    """Run independent writes at once (most of a small write is driver-side waiting: commit
    protocol, round trips), each on a thread that keeps the caller's scheduler pool; seconds
    each took. The first failure is raised after all have finished."""
    import time

    from pyspark import InheritableThread

    took: dict[str, float] = {}
    errors: list[BaseException] = []

    def run(name: str, fn: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        try:
            fn()
        except BaseException as e:
            errors.append(e)
        took[name] = time.perf_counter() - t0

    threads = [InheritableThread(target=run, args=task) for task in tasks]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return took


def report_times(query: str, batch_id: int, times: dict[str, float]) -> None:
    """Where a batch spent its time: logged; printed with ``VITALWATCH_PROFILE_GOLD=1``."""
    line = f"{query} batch {batch_id}: " + ", ".join(f"{k} {v:.2f}s" for k, v in times.items())
    log.info(line)
    if os.environ.get("VITALWATCH_PROFILE_GOLD"):
        print(line, flush=True)


STATE_VERSION = 2  # 2: times as int64, rows keyed by patient with version and arrival (input-safety issue)
LEGACY_LAYOUT = {"state_buckets": 64}  # checkpoints written before the record existed


def check_state_layout(spark: SparkSession, checkpoint: str, settings: Settings) -> None:
    """Refuse to resume a checkpoint whose scoring state has another layout.

    Patients are hashed into ``gold.state_buckets`` buckets, so with another count each patient
    would be looked up in the wrong bucket and scored without its history, silently; a state
    written by another :data:`STATE_VERSION` cannot be read."""
    check_layout(spark, checkpoint, {"state_buckets": settings.gold.state_buckets, "state_version": STATE_VERSION},
                 LEGACY_LAYOUT, "restarting would score patients without their history. Keep the setting, or "
                 "start a new checkpoint (lake.checkpoint_root) and rescore from the lake")


def checkpoint_name(settings: Settings, query_name: str) -> str:
    """Per source: a Kafka-fed and a silver-fed scoring query cannot share offsets."""
    return f"{query_name}-{settings.gold.source}"


def start_gold(spark: SparkSession, settings: Settings, *, available_now: bool = False,
               query_name: str = QUERY, model: ModelRef | None = None,
               sinks=None, endpoints: Endpoints | None = None) -> StreamingQuery:
    from vitalwatch.sinks import Sinks

    ensure_gold(spark, settings)
    reason = None
    if model is None:
        model, reason = load_model_or_rules(settings)
    sinks = sinks or Sinks.from_settings(spark, settings, [x for x in settings.gold.sinks if x in ALERT_PATH_SINKS])
    checkpoint = settings.checkpoint_path(checkpoint_name(settings, query_name))
    check_state_layout(spark, checkpoint, settings)
    rows = score_stream(gold_input(spark, settings, endpoints), model, settings)
    q = start_foreach_batch(rows, settings, query_name=query_name, checkpoint=checkpoint,
                            write=lambda df, bid, _app_id: write_batch(df, bid, settings, sinks),
                            available_now=available_now, stage="gold")
    if reason is not None:  # the supervisor shows it degraded and restarts it once the champion loads
        q.degraded_reason = reason  # type: ignore[attr-defined]
        q.recovered = lambda: champion_loadable(settings)  # type: ignore[attr-defined]
    return q
