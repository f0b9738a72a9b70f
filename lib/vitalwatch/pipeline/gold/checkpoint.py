"""The scoring checkpoint's guard: its state is resumed only with the layout it was written in."""

from __future__ import annotations

from pyspark.sql import SparkSession

from vitalwatch.config import Settings
from vitalwatch.pipeline.checkpoints import check_layout

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
