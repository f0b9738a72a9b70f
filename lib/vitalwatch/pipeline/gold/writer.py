"""One micro-batch of the alert path, written: the alert topic first, then the other channels
and the gold tables' topics at once; and where the batch spent its time."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from pyspark.sql import DataFrame

from vitalwatch.config import Settings
from vitalwatch.pipeline.gold.tables import alert_rows, lake_records, pandas_safe, risk_rows

log = logging.getLogger(__name__)


def write_batch(batch: DataFrame, batch_id: int, settings: Settings, sinks) -> None:
    """One micro-batch to the alert topic first, then the other channels and the gold tables'
    topics at once (see :mod:`vitalwatch.pipeline.gold`).

    The stateful step runs once: its output is materialised into the cache first, so the
    writes below (several Spark jobs) read the same rows instead of recomputing the state."""
    from vitalwatch.sinks.events import alert_events

    step = Steps()
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
            step.times.update(run_concurrently(rest))
        finally:
            alerts.unpersist()
        step("rest")
    finally:
        batch.unpersist()
        report_times("gold", batch_id, step.times)


def run_concurrently(tasks: list[tuple[str, Callable[[], None]]]) -> dict[str, float]:
    """Run independent writes at once (most of a small write is driver-side waiting: commit
    protocol, round trips), each on a thread that keeps the caller's scheduler pool; seconds
    each took. The first failure is raised after all have finished."""
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


class Steps:
    """Where a batch spends its time: ``step(name)`` records the seconds since the previous
    step (or since this was made) under ``name`` in :attr:`times`, for :func:`report_times`."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._t = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name], self._t = now - self._t, now


def report_times(query: str, batch_id: int, times: dict[str, float]) -> None:
    """Where a batch spent its time: logged; printed with ``VITALWATCH_PROFILE_GOLD=1``."""
    line = f"{query} batch {batch_id}: " + ", ".join(f"{k} {v:.2f}s" for k, v in times.items())
    log.info(line)
    if os.environ.get("VITALWATCH_PROFILE_GOLD"):
        print(line, flush=True)
