"""Keeping every stage of an application running, whatever fails around it.

A monitoring product must not go quiet because a store, a receiver or the lake is down. So a
stage that fails (its query ends with an error, or starting it raises) is restarted from its
checkpoint on *its own* timer — after ``streaming.restart_backoff_s``, doubled for each
failure in a row up to ``streaming.restart_backoff_max_s`` — forever. Nothing waits on that
timer: the other stages keep running, and a restart that raises (a store still down during
start-up) is one more failure, never an exception out of the loop. The count resets as soon
as the stage completes a batch (a trigger that ran without error).

While a stage is failing it is *degraded*: :meth:`StageHealth.line` says so
("degraded: <stage> failing since <time>: <error>"), and the application's health is written
where people look (:mod:`vitalwatch.pipeline.health`). The only failure that ends the
application is its Spark context dying: then no restart can help, and the process exits so
that whatever runs it (``vitalwatch run``, Docker's restart policy, the cluster manager)
starts it again."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from vitalwatch.config import Settings

log = logging.getLogger(__name__)


class SparkContextLost(RuntimeError):
    """The application's Spark context has stopped: only a new process can recover."""


@dataclass
class StageHealth:
    """One stage's state as people should see it."""

    stage: str
    failures: int = 0                      # in a row; 0 = healthy
    failing_since: datetime | None = None  # the first failure of the current run of failures
    error: str | None = None               # the latest one, first line
    next_try: float = 0.0                  # monotonic time of the next restart (when not running)
    restarts: int = 0                      # in this process's life
    started_at: float = 0.0                # monotonic time the current query was started
    progressed: bool = False               # the current query has completed a trigger
    last_input_rows: int | None = None     # rows its last trigger read (0: caught up)
    next_probe: float = 0.0                # running degraded: monotonic time of the next recovery probe

    @property
    def degraded(self) -> bool:
        return self.failing_since is not None

    def line(self) -> str:
        if not self.degraded:
            return f"ok: {self.stage}"
        return f"degraded: {self.stage} failing since {self.failing_since:%Y-%m-%d %H:%M:%S} UTC: {self.error}"

    def record(self) -> dict:
        return {"stage": self.stage, "state": "degraded" if self.degraded else "ok", "failures": self.failures,
                "failing_since": self.failing_since, "error": self.error, "restarts": self.restarts,
                "progressed": self.progressed, "last_input_rows": self.last_input_rows, "line": self.line()}


def backoff_s(settings: Settings, failures: int) -> float:
    """Seconds before restart number ``failures`` (1-based) of a run of failures."""
    st = settings.streaming
    return min(st.restart_backoff_s * 2 ** max(failures - 1, 0), st.restart_backoff_max_s)


_CAUSE = re.compile(r"^\s*(?:Caused by: )?(?:[A-Za-z_][\w.$]*\.)?([A-Za-z_]\w*(?:Error|Exception|Timeout|Failure)\w*)"
                    r": ?(.*)$")
_WRAPPERS = {"Py4JJavaError", "StreamingQueryException", "PythonException", "CapturedException",
             "ForeachBatchFunctionException"}


def first_line(err: BaseException | object) -> str:
    """What failed, in one line: the innermost ``SomeError: message`` of a (Python or JVM)
    trace that is not a wrapper (``Py4JJavaError: An error occurred while calling o1.save``)
    — a foreachBatch failure's first line is only "An exception was raised by the Python
    Proxy" — else the first line."""
    text = str(err).strip()
    causes = [m for m in map(_CAUSE.match, text.splitlines()) if m and m.group(2) and m.group(1) not in _WRAPPERS]
    if causes:
        name, msg = causes[-1].groups()
        return f"{name}: {msg.strip()}"[:300]
    return (text.splitlines() or [type(err).__name__])[0][:300]


class Supervisor:
    """Starts ``stages`` with ``start(stage)`` and keeps them running (see module doc).

    ``on_change(health)`` is called with every stage's health whenever one fails or recovers;
    ``clock`` is injectable so the back-off can be tested without waiting."""

    def __init__(self, spark: SparkSession, settings: Settings, stages: Sequence[str],
                 start: Callable[[str], StreamingQuery], *,
                 on_change: Callable[[list[StageHealth]], None] | None = None,
                 on_failure: Callable[[StageHealth], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.spark, self.settings, self.start_fn = spark, settings, start
        self.on_change, self.on_failure, self.clock = on_change, on_failure, clock
        self.health = {s: StageHealth(s) for s in stages}
        self.queries: dict[str, StreamingQuery | None] = dict.fromkeys(stages)

    def start_all(self) -> None:
        for stage in self.health:
            self._try_start(stage)
        self._changed()

    def check(self) -> None:
        """One pass: note failures and recoveries, restart the stages whose back-off is over."""
        changed = False
        for stage, h in self.health.items():
            q = self.queries[stage]
            if q is not None and q.isActive:
                last = q.lastProgress
                h.progressed, h.last_input_rows = last is not None, (last or {}).get("numInputRows")
                if getattr(q, "degraded_reason", None):
                    changed |= self._running_degraded(stage, q, h)
                    continue
                if h.degraded and self._completed_batch(q, h):
                    log.info("%s recovered after %d failures", stage, h.failures)
                    h.failures, h.failing_since, h.error = 0, None, None
                    changed = True
                continue
            if q is not None:  # it ended: with an error, or stopped by someone else
                self.queries[stage] = None
                h.progressed, h.last_input_rows = False, None
                self._fail(stage, q.exception() or "the query stopped")
                changed = True
            if self.clock() >= h.next_try:
                changed |= not self._try_start(stage)
        if changed:
            self._changed()

    def stop(self) -> None:
        for q in self.queries.values():
            if q is not None and q.isActive:
                try:
                    q.stop()
                except Exception as e:  # stopping must not hide the others' stop
                    log.warning("stopping %s: %s", q.name, first_line(e))

    def active(self) -> list[StreamingQuery]:
        return [q for q in self.queries.values() if q is not None]

    def restarts(self) -> dict[str, int]:
        return {s: h.restarts for s, h in self.health.items()}

    # -- internals ---------------------------------------------------------------------------
    def _try_start(self, stage: str) -> bool:
        h = self.health[stage]
        try:
            self._ensure_context()
            self.queries[stage] = self.start_fn(stage)
        except SparkContextLost:
            raise
        except Exception as e:  # a store down at start-up: one more failure, retried later
            self._fail(stage, e)
            return False
        if h.failures:
            h.restarts += 1
        h.started_at = self.clock()
        return True

    def _running_degraded(self, stage: str, q: StreamingQuery, h: StageHealth) -> bool:
        """A query that runs in a degraded mode (``q.degraded_reason``, e.g. scoring without a
        model): shown as degraded; every ``models.reload_check_s`` its ``q.recovered()`` is
        asked, and once it says yes the query is restarted to leave that mode. Whether the
        health changed."""
        reason = str(q.degraded_reason)  # type: ignore[attr-defined]
        changed = h.error != reason
        h.failing_since, h.error = h.failing_since or datetime.now(UTC), reason
        if self.clock() < h.next_probe:
            return changed
        h.next_probe = self.clock() + self.settings.models.reload_check_s
        try:
            ok = bool(q.recovered())  # type: ignore[attr-defined]
        except Exception as e:
            log.warning("%s: recovery probe failed: %s", stage, first_line(e))
            ok = False
        if not ok:
            return changed
        log.warning("%s: leaving its degraded mode (%s): restarting it", stage, reason)
        try:
            q.stop()
        except Exception as e:
            log.warning("stopping %s: %s", stage, first_line(e))
        self.queries[stage] = None
        if self._try_start(stage) and not getattr(self.queries[stage], "degraded_reason", None):
            h.failures, h.failing_since, h.error = 0, None, None
        return True

    def _fail(self, stage: str, err: BaseException | object) -> None:
        h = self.health[stage]
        h.failures += 1
        h.failing_since = h.failing_since or datetime.now(UTC)
        h.error = first_line(err)
        wait = backoff_s(self.settings, h.failures)
        h.next_try = self.clock() + wait
        log.warning("%s (failure %d in a row; retry in %.0f s)", h.line(), h.failures, wait)
        if self.on_failure:
            self.on_failure(h)

    def _completed_batch(self, q: StreamingQuery, h: StageHealth) -> bool:
        """Has the query (started at ``h.started_at``) finished a trigger without error?"""
        return bool(q.recentProgress)

    def _ensure_context(self) -> None:
        sc = self.spark.sparkContext
        if sc._jsc is None or sc._jsc.sc().isStopped():  # type: ignore[union-attr]
            raise SparkContextLost("the Spark context has stopped")

    def _changed(self) -> None:
        if self.on_change:
            try:
                self.on_change(list(self.health.values()))
            except Exception as e:  # reporting health must never stop the stages
                log.warning("stage health not reported: %s", first_line(e))
