"""Starting and supervising the streaming queries of one Spark application.

``available_now`` runs each stage to completion in order (bronze, then silver reads what
bronze wrote): the batch catch-up mode used by tests and backfills. Otherwise all stages run
concurrently until stopped, a duration passes, or one fails."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from vitalwatch.config import Settings
from vitalwatch.infra.endpoints import Endpoints
from vitalwatch.pipeline.bronze import start_bronze
from vitalwatch.pipeline.silver import start_silver

STAGES = ("bronze", "silver")


def start_stage(spark: SparkSession, settings: Settings, endpoints: Endpoints, stage: str,
                available_now: bool) -> StreamingQuery:
    if stage == "bronze":
        return start_bronze(spark, settings, endpoints, available_now=available_now)
    if stage == "silver":
        return start_silver(spark, settings, available_now=available_now)
    raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")


def run_available_now(spark: SparkSession, settings: Settings, endpoints: Endpoints,
                      stages: Sequence[str] = STAGES) -> dict[str, int]:
    """Process everything available through ``stages`` in order; rows read per stage."""
    out = {}
    for stage in stages:
        q = start_stage(spark, settings, endpoints, stage, available_now=True)
        q.awaitTermination()
        if q.exception():
            raise RuntimeError(f"{stage} failed: {q.exception()}")
        out[stage] = sum(int(p.get("numInputRows", 0)) for p in q.recentProgress)
    return out


def run_continuous(spark: SparkSession, settings: Settings, endpoints: Endpoints,
                   stages: Sequence[str] = STAGES, *, duration_s: float | None = None,
                   on_tick: Callable[[list[StreamingQuery]], None] | None = None,
                   tick_s: float = 5.0, should_stop: Callable[[], bool] | None = None) -> None:
    """Run all stages until ``duration_s`` passes, ``should_stop`` says so, or a query fails."""
    queries = [start_stage(spark, settings, endpoints, s, available_now=False) for s in stages]
    deadline = time.monotonic() + duration_s if duration_s else None
    try:
        while True:
            time.sleep(tick_s)
            for q in queries:
                if not q.isActive and q.exception():
                    raise RuntimeError(f"query {q.name} failed: {q.exception()}")
            if on_tick:
                on_tick(queries)
            if (deadline and time.monotonic() >= deadline) or (should_stop and should_stop()):
                break
    finally:
        for q in queries:
            if q.isActive:
                q.stop()
