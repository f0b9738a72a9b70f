"""Gold and silver Delta tables → the stores people read, off the alert path.

Each query reads a Delta table as a stream and writes idempotently (keys are observation or
alert ids, the MERGE keeps the newest row):

- ``serve_scores``: ``gold/risk_scores`` → ``gold/patient_status`` (MERGE, newest wins),
  MongoDB ``risk_scores`` (latest N per patient) and ``patients.status``;
- ``es_scores``: ``gold/risk_scores`` → Elasticsearch ``vitalwatch-risk``;
- ``serve_alerts``: ``gold/alerts`` → MongoDB ``alerts``;
- ``es_alerts``: ``gold/alerts`` → Elasticsearch ``vitalwatch-alerts``;
- ``es_vitals``: ``silver/vital_signs`` → Elasticsearch ``vitalwatch-vitals``.

One query per store, each with its own checkpoint: a store that is down fails only its own
queries, which the supervisor restarts from their checkpoints (the batch is replayed, the keys
make that harmless) while the other store's copies and the alerts keep flowing; when it is
back, its queries catch up exactly. Why apart from scoring: these writes cost seconds per
batch, and every second the scoring batch spent on them would be a second the next reading
waits for its alert."""

from __future__ import annotations

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from vitalwatch.config import Settings
from vitalwatch.infra.endpoints import resolve
from vitalwatch.pipeline.gold import ensure_gold
from vitalwatch.pipeline.gold.tables import status_rows
from vitalwatch.pipeline.gold.writer import Steps, report_times
from vitalwatch.pipeline.lake import (
    GOLD_ALERTS,
    GOLD_SCORES,
    GOLD_STATUS,
    SILVER_VITALS,
    ensure_lake,
    stream_table,
)
from vitalwatch.pipeline.triggers import start_foreach_batch
from vitalwatch.sinks.dead_letter import ensure_dead_letter
from vitalwatch.sinks.writers import Sinks


def merge_status(spark: SparkSession, settings: Settings, status: DataFrame) -> None:
    """``gold/patient_status`` ← the newest row per patient (a replay changes nothing)."""
    (DeltaTable.forPath(spark, settings.table_path(*GOLD_STATUS)).alias("t")
     .merge(status.alias("s"), "t.patient_id = s.patient_id")
     .whenMatchedUpdateAll(condition="s.state = 'discharged' OR t.effective_time IS NULL "
                                     "OR s.effective_time >= t.effective_time")
     .whenNotMatchedInsertAll().execute())


def write_scores(batch: DataFrame, batch_id: int, settings: Settings, sinks: Sinks) -> None:
    """``serve_scores``: the status table, then MongoDB's scores and patients' status."""
    step = Steps()
    batch = batch.persist()
    try:
        status = status_rows(batch).persist()
        merge_status(batch.sparkSession, settings, status)
        step("delta_status")
        sinks.store_scores_mongo(batch, status)
        step("mongo")
        status.unpersist()
    finally:
        batch.unpersist()
        report_times("serve_scores", batch_id, step.times)


def _start_copy(spark: SparkSession, settings: Settings, table: tuple[str, str], query_name: str,
                available_now: bool, write) -> StreamingQuery:
    """A query copying ``table`` (as a Delta stream) with ``write(batch, batch_id)``; the rows a
    store refuses for good go to ``gold/dead_letter`` (:mod:`vitalwatch.sinks.dead_letter`)."""
    ensure_dead_letter(spark, settings)
    return start_foreach_batch(stream_table(spark, settings, table), settings, query_name=query_name,
                               checkpoint=settings.checkpoint_path(query_name), available_now=available_now,
                               stage=query_name, write=lambda df, bid, _app: write(df, bid))


def _store_copy(spark: SparkSession, settings: Settings, table: tuple[str, str], store: str, query_name: str,
                available_now: bool, write) -> StreamingQuery:
    """A copy of a gold table into one store: ``write(sinks, batch)``, with only that store's
    sink (none when ``gold.sinks`` leaves it out). Index templates are installed by ``vitalwatch
    search init`` (``infra up``), not here: starting a query makes no call that a store being
    down could fail."""
    ensure_gold(spark, settings)
    sinks = Sinks.from_settings(spark, settings, [store] if store in settings.gold.sinks else [])
    return _start_copy(spark, settings, table, query_name, available_now, lambda df, bid: write(sinks, df, bid))


def start_serve_scores(spark: SparkSession, settings: Settings, *, available_now: bool = False,
                       query_name: str = "serve_scores") -> StreamingQuery:
    return _store_copy(spark, settings, GOLD_SCORES, "mongo", query_name, available_now,
                       lambda sinks, df, bid: write_scores(df, bid, settings, sinks))


def start_es_scores(spark: SparkSession, settings: Settings, *, available_now: bool = False,
                    query_name: str = "es_scores") -> StreamingQuery:
    return _store_copy(spark, settings, GOLD_SCORES, "elasticsearch", query_name, available_now,
                       lambda sinks, df, _bid: sinks.store_scores_es(df))


def start_serve_alerts(spark: SparkSession, settings: Settings, *, available_now: bool = False,
                       query_name: str = "serve_alerts") -> StreamingQuery:
    return _store_copy(spark, settings, GOLD_ALERTS, "mongo", query_name, available_now,
                       lambda sinks, df, _bid: sinks.store_alerts_mongo(df))


def start_es_alerts(spark: SparkSession, settings: Settings, *, available_now: bool = False,
                    query_name: str = "es_alerts") -> StreamingQuery:
    return _store_copy(spark, settings, GOLD_ALERTS, "elasticsearch", query_name, available_now,
                       lambda sinks, df, _bid: sinks.store_alerts_es(df))


def start_vitals_index(spark: SparkSession, settings: Settings, *, available_now: bool = False,
                       query_name: str = "es_vitals") -> StreamingQuery:
    """One Elasticsearch document per silver value, keyed by observation, version and vital."""
    from vitalwatch.sinks.search import vitals_documents, write

    ensure_lake(spark, settings)
    nodes = resolve(settings, ("elasticsearch",)).es_nodes or ""
    cap = settings.gold.es_max_document_bytes
    return _start_copy(spark, settings, SILVER_VITALS, query_name, available_now,
                       lambda df, _bid: write(vitals_documents(df), settings, nodes, "vitals", "doc_id", cap))
