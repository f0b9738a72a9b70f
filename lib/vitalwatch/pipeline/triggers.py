"""Starting a streaming query the same way everywhere: trigger, scheduler pool, and the
idempotency id its ``foreachBatch`` writes carry.

A stage's trigger and pool come from its :class:`~vitalwatch.pipeline.stages.Stage`, unless the
profile overrides them (``streaming.stage_triggers``, ``streaming.scheduler_pools``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pyspark import SparkContext
from pyspark.sql import DataFrame
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from vitalwatch.config import Settings
from vitalwatch.pipeline.stages import BY_NAME, DEFAULT_POOL, REGISTRY

POOL_PROPERTY = "spark.scheduler.pool"


def interval_seconds(interval: str) -> float:
    """A Spark interval string ("500 milliseconds", "15 seconds", "1 minute") in seconds."""
    n, unit = interval.split()[:2]
    return float(n) * {"milli": 0.001, "secon": 1, "minut": 60, "hour": 3600}[unit[:5].rstrip("s")]


def slowest_trigger_s(settings: Settings) -> float:
    """The longest trigger interval of any stage: how long a caught-up pipeline can stay quiet."""
    s = settings.streaming
    return max(interval_seconds(x) for x in (s.trigger_interval, *s.stage_triggers.values(),
                                              *triggers(settings).values()))


def trigger_for(settings: Settings, stage: str | None) -> str:
    """A stage's trigger interval: the profile's (``streaming.stage_triggers``), else the
    stage's default (:mod:`~vitalwatch.pipeline.stages`), else ``streaming.trigger_interval``."""
    st = settings.streaming
    default = BY_NAME[stage].trigger if stage in BY_NAME else None
    return st.stage_triggers.get(stage or "") or default or st.trigger_interval


def triggers(settings: Settings) -> dict[str, str]:
    """Every stage's trigger interval under ``settings``."""
    return {s.name: trigger_for(settings, s.name) for s in REGISTRY}


def apply_trigger(writer: DataStreamWriter, settings: Settings, available_now: bool,
                  stage: str | None = None) -> DataStreamWriter:
    """``available_now``: process what is there and stop (catch-up, tests); else run forever
    on the stage's interval (:func:`trigger_for`)."""
    if available_now:
        return writer.trigger(availableNow=True)
    return writer.trigger(processingTime=trigger_for(settings, stage))


def pool_for(settings: Settings, stage: str) -> str:
    """A stage's FAIR pool: the profile's (``streaming.scheduler_pools``), else the stage's own,
    else ``lake``. Per stage, so a profile that moves one stage never moves the alert path."""
    own = BY_NAME[stage].pool if stage in BY_NAME else DEFAULT_POOL
    return settings.streaming.scheduler_pools.get(stage, own)


@contextmanager
def in_pool(sc: SparkContext, pool: str) -> Iterator[None]:
    """Queries started inside run their jobs in FAIR scheduler ``pool`` (a thread-local
    property a streaming query copies when it starts)."""
    previous = sc.getLocalProperty(POOL_PROPERTY)
    sc.setLocalProperty(POOL_PROPERTY, pool)
    try:
        yield
    finally:
        sc.setLocalProperty(POOL_PROPERTY, previous)  # type: ignore[arg-type]


def start_foreach_batch(stream: DataFrame, settings: Settings, *, query_name: str, checkpoint: str,
                        write: Callable[[DataFrame, int, str], None], available_now: bool,
                        pool: str | None = None, stage: str | None = None) -> StreamingQuery:
    """Start ``stream`` calling ``write(batch, batch_id, app_id)`` for each micro-batch.

    ``app_id`` is the Delta ``txnAppId`` of the query's writes. It carries the query's id,
    which Spark keeps in the checkpoint: the same across restarts (so a replayed batch id
    commits nothing twice) and new for a new checkpoint (whose batch ids restart at 0 and
    would otherwise be skipped by Delta as already written).

    The batch's jobs run in the FAIR scheduler ``pool`` (default: the starting thread's, see
    :func:`in_pool`): set on the thread that starts the query (its own jobs) and again in the
    callback (``foreachBatch``'s jobs run on the Python callback's thread, which does not
    inherit it)."""
    ready = threading.Event()
    ids: dict[str, str] = {}
    sc = stream.sparkSession.sparkContext
    pool = pool or sc.getLocalProperty(POOL_PROPERTY) or DEFAULT_POOL

    def run(batch: DataFrame, batch_id: int) -> None:
        ready.wait()
        batch.sparkSession.sparkContext.setLocalProperty(POOL_PROPERTY, pool)
        write(batch, batch_id, ids["app_id"])

    with in_pool(sc, pool):
        writer = (stream.writeStream.queryName(query_name).option("checkpointLocation", checkpoint)
                  .foreachBatch(run))
        q = apply_trigger(writer, settings, available_now, stage).start()
    ids["app_id"] = f"vitalwatch:{query_name}:{q.id}"
    ready.set()
    return q
