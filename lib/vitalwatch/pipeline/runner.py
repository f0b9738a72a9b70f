"""Starting and supervising the streaming queries of one Spark application.

Stages: ``bronze`` (Kafka → Delta), ``silver`` (bronze → silver + quarantine), ``gold`` (the
alert path: scoring, alerts, the gold tables' topics), ``gold_lake`` (those topics → the gold
Delta tables), ``model_outcomes`` (the model on delayed outcomes, :mod:`~vitalwatch.pipeline.model_outcomes`),
``serve_scores`` / ``es_scores`` / ``serve_alerts`` / ``es_alerts`` / ``es_vitals``
(gold and silver → patient_status, MongoDB, Elasticsearch, one query per store;
:mod:`vitalwatch.pipeline.serving`). Each is described once in :mod:`vitalwatch.pipeline.stages`.

``available_now`` processes everything available and stops: the batch catch-up mode used by
tests and backfills. A stage starts once the stages it reads from
(:func:`~vitalwatch.pipeline.stages.stage_inputs`) have finished, and stages that do not
depend on each other run at once (bronze beside gold, silver beside gold_lake, the serving
queries together): most of a small batch is driver-side waiting, so the waves overlap well
even on two cores. Otherwise all stages run
concurrently until stopped or a duration passes, the scoring query in its own FAIR pool.

**Failures.** A query that fails (a sink or the broker is down, say) is restarted from its
checkpoint on its own back-off timer, forever (:mod:`vitalwatch.pipeline.supervisor`); the
failed micro-batch is replayed, and because every write is idempotent nothing is lost or
doubled. A failing stage is reported degraded; it never stops the application or another
stage. Which stages run together is the application's choice
(:data:`vitalwatch.pipeline.APPS`): the alert path runs alone in its own application."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from vitalwatch.config import Settings
from vitalwatch.infra.endpoints import Endpoints
from vitalwatch.pipeline import STAGES
from vitalwatch.pipeline.stages import stage, stage_inputs
from vitalwatch.pipeline.supervisor import StageHealth, Supervisor
from vitalwatch.pipeline.triggers import in_pool, pool_for


def start_stage(spark: SparkSession, settings: Settings, endpoints: Endpoints, name: str,
                available_now: bool) -> StreamingQuery:
    """Start one stage's query (its :class:`~vitalwatch.pipeline.stages.Stage` says how) in its
    FAIR scheduler pool (:func:`~vitalwatch.pipeline.triggers.pool_for`)."""
    st = stage(name)
    with in_pool(spark.sparkContext, pool_for(settings, name)):
        return st.start_query(spark, settings, endpoints, available_now)


def run_available_now(spark: SparkSession, settings: Settings, endpoints: Endpoints,
                      stages: Sequence[str] = STAGES, *, poll_s: float = 0.2) -> dict[str, int]:
    """Process everything available through ``stages``, each after the stages it reads from
    (see module doc); rows read per stage. A failure stops the stages still running."""
    inputs = stage_inputs(settings)
    unknown = [s for s in stages if s not in inputs]
    if unknown:
        raise ValueError(f"unknown stage {unknown[0]!r}; stages: {', '.join(STAGES)}")
    pending, running, out = list(stages), {}, {}
    try:
        while pending or running:
            for stage in [s for s in pending if not set(inputs[s]) & {*pending, *running}]:
                running[stage] = start_stage(spark, settings, endpoints, stage, available_now=True)
                pending.remove(stage)
            while not (done := [s for s, q in running.items() if not q.isActive]):
                time.sleep(poll_s)
            for stage in done:
                q = running.pop(stage)
                if q.exception():
                    raise RuntimeError(f"{stage} failed: {q.exception()}")
                out[stage] = sum(int(p.get("numInputRows", 0)) for p in q.recentProgress)
    finally:
        for q in running.values():
            if q.isActive:
                q.stop()
    return out


def run_continuous(spark: SparkSession, settings: Settings, endpoints: Endpoints,
                   stages: Sequence[str] = STAGES, *, app: str = "pipeline", duration_s: float | None = None,
                   on_tick: Callable[[list[StreamingQuery]], None] | None = None,
                   tick_s: float = 5.0, should_stop: Callable[[], bool] | None = None,
                   on_failure: Callable[[StageHealth], None] | None = None) -> dict[str, int]:
    """Run ``stages`` until ``duration_s`` passes or ``should_stop`` says so, each kept running
    by the :class:`~vitalwatch.pipeline.supervisor.Supervisor` (see module doc); its health is
    written under ``app``'s name (:mod:`vitalwatch.pipeline.health`). Returns restarts per stage."""
    from vitalwatch.pipeline.health import reporter, write_file

    recorder = _record_progress(spark, settings, endpoints)
    sup = Supervisor(spark, settings, stages,
                     lambda stage: start_stage(spark, settings, endpoints, stage, available_now=False),
                     on_change=reporter(settings, app, recorder.enqueue if recorder else None),
                     on_failure=on_failure)
    deadline = time.monotonic() + duration_s if duration_s else None
    try:
        sup.start_all()
        while True:
            time.sleep(tick_s)
            sup.check()
            write_file(settings, app, list(sup.health.values()))  # a heartbeat, and what `run` waits on
            if on_tick:
                on_tick(sup.active())
            if (deadline and time.monotonic() >= deadline) or (should_stop and should_stop()):
                break
    finally:
        sup.stop()
        if recorder is not None:
            spark.streams.removeListener(recorder)
            recorder.close()
    return sup.restarts()


def _record_progress(spark: SparkSession, settings: Settings, endpoints: Endpoints):
    """The progress recorder (MongoDB ``pipeline_progress``), unless switched off or there is no
    MongoDB; the pipeline's own account writes it."""
    if not (settings.streaming.record_progress and (endpoints.mongo_uri or settings.mongo.uri)):
        return None
    from vitalwatch.pipeline.monitor import attach
    from vitalwatch.sinks.mongo import pipeline_uri

    return attach(spark, pipeline_uri(settings, endpoints.mongo_uri or ""), settings.mongo.database,
                  settings.mongo.server_selection_timeout_ms)
