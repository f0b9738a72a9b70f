"""Spark, the streaming queries and the scoring stream (gold)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class SparkConfig(BaseModel):
    """The Spark session every vitalwatch application builds."""

    master: str = Field("local[*]", description="Spark master URL: local[*] on one machine, spark://… on a standalone cluster.")
    app_name: str = Field("vitalwatch", description="Application name shown in the Spark UI and event log.")
    shuffle_partitions: int = Field(4, ge=1, description="spark.sql.shuffle.partitions: one wave of tasks per stage on a small machine; a checkpoint keeps the number it was started with.")
    driver_memory: str = Field("2g", description="The driver JVM's heap.")
    ivy_dir: str | None = Field(None, description="Where Spark's Maven packages are cached; null: <infra.cache_dir>/ivy.")
    jvm_dir: str | None = Field(None, description="vitalwatch's own Spark classes (vitalwatch.jvm), compiled with javac once; null: <infra.cache_dir>/jvm.")
    python_daemon_module: str | None = Field("vitalwatch.infra.pydaemon", description="Python workers' daemon: vitalwatch's re-reads no unchanged jar per task (about 1.2 s a task saved); it needs vitalwatch installed where executors run; null: PySpark's own.")
    extra_conf: dict[str, str] = Field({}, description="Further Spark properties, set as given (the cluster profile's authentication, for example).")
    redaction_regex: str = Field("(?i)secret|password|passwd|token|credential|uri|url|sasl|jaas|api[_.-]?key", description="Options, properties and environment whose key matches are shown as *********(redacted) in plans, the UI and the event log.")


class StreamingConfig(BaseModel):
    """How the streaming queries trigger, deduplicate, share the cores and restart."""

    trigger_interval: str = Field("5 seconds", description="A stage's trigger interval unless stage_triggers names it.")
    dedupe_watermark: str = Field("1 hour", description="Duplicates of one observation value are dropped when they reach the lake within this long of each other (on ingest time, so late events are never dropped).")
    max_files_per_trigger: int = Field(1000, ge=1, description="Delta stream sources (silver, gold): at most this many files per micro-batch.")
    restart_backoff_s: float = Field(5, ge=0, description="A failed stage restarts from its checkpoint after this long, doubled per failure in a row; one good batch resets it, and a stage never stops the application or another stage.")
    restart_backoff_max_s: float = Field(60, gt=0, description="The longest wait between restarts of a failing stage; it is retried forever.")
    stage_triggers: dict[str, str] = Field({}, description="Per stage, a trigger interval over the stage's own (the stage registry, lib/vitalwatch/pipeline/stages.py: gold 500 ms, bronze and silver 15 s, …): the alert path (gold) triggers as soon as it can, while the copies people read need not refresh every few seconds, and each batch they skip is CPU the scoring query gets.")
    scheduler_pools: dict[str, str] = Field({}, description="Per stage, its FAIR scheduler pool (conf/fairscheduler.xml). Over each stage's own pool from the stage registry (the scoring query in \"alerts\", whose tasks go first so alerts never queue behind the lake's batches; the rest in \"lake\"): a stage not named keeps its own.")
    record_progress: bool = Field(True, description="Queries' progress is written to MongoDB pipeline_progress, which the dashboard's health page shows.")


class GoldConfig(BaseModel):
    """The scoring stream: silver rows → per-patient state → features → champion model →
    alerts and gold tables (lib/vitalwatch/pipeline/gold/)."""

    watermark_delay: str = Field("10 minutes", description="Event-time watermark on silver *arrival* time (docs/streaming.md, \"Late readings and bad clocks\").")
    state_ttl_hours: float = Field(24, gt=0, description="A patient with no new reading for this long is discharged from the scoring state.")
    late_tolerance_minutes: float = Field(360, ge=0, description="A reading older than the patient's newest by more than this is not scored.")
    mongo_latest_scores: int = Field(50, ge=1, description="risk_scores kept per patient in MongoDB (the lake keeps all).")
    model_alias: str | None = Field(None, description="The registry alias scored with; null: models.champion_alias.")
    shadow_alias: str | None = Field(None, description="An alias (e.g. challenger) scored beside the champion on the same readings and stored, never alerting (`vitalwatch models compare`).")
    sinks: list[str] = Field(["mongo", "elasticsearch", "kafka"], description="Where scores and alerts are copied; webhooks are the notifier's (alerts.webhooks).")
    source: Literal["kafka", "silver"] = Field("kafka", description="kafka: silver's transform applied to the topic in-stream (the alert path, seconds); silver: the silver Delta table (replays, backfills).")
    state_buckets: int = Field(64, ge=1, description="State is keyed by hash(patient) mod this: one engine call per bucket touched, not per patient; fixed for a checkpoint's life (checked at start).")
    dead_letter_payload_bytes: int = Field(65_536, ge=1024, description="A row a store rejects for good is kept in gold/dead_letter, cut to this many bytes.")
    es_max_document_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="A larger document is dead-lettered, never sent to Elasticsearch (its http.max_content_length is 100 MB).")
