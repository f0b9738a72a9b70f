"""The running queries' progress, recorded for the dashboard's pipeline-health page.

A :class:`StreamingQueryListener` on the driver turns each ``StreamingQueryProgress`` into a
small document (:func:`progress_record`) and a background thread writes them in batches to
MongoDB ``pipeline_progress`` (capped, so it holds the newest events only). Monitoring never
slows or stops the pipeline: the listener only enqueues; when MongoDB is unreachable or the
queue is full, events are dropped and counted, never waited for."""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pyspark.sql.streaming import StreamingQueryListener

log = logging.getLogger(__name__)
PROGRESS = "pipeline_progress"


def _float(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def progress_record(p: dict[str, Any]) -> dict[str, Any]:
    """One progress event (``StreamingQueryProgress.json``) → what the health page shows:
    rates, batch duration, rows held in state, and Kafka lag (offsets behind the newest,
    the largest over the query's Kafka sources and their partitions)."""
    lags = [_float((s.get("metrics") or {}).get("maxOffsetsBehindLatest")) for s in p.get("sources", [])
            if str(s.get("description", "")).startswith("KafkaV2")]
    lags = [x for x in lags if x is not None]
    ops = p.get("stateOperators") or []
    ts = datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")).astimezone(UTC)
    return {
        "query": p.get("name") or p.get("id"), "run_id": p.get("runId"), "batch_id": p.get("batchId"),
        "timestamp": ts, "num_input_rows": p.get("numInputRows"),
        "input_rows_per_s": _float(p.get("inputRowsPerSecond")),
        "processed_rows_per_s": _float(p.get("processedRowsPerSecond")),
        "batch_duration_ms": p.get("batchDuration") or (p.get("durationMs") or {}).get("triggerExecution"),
        "state_rows": sum(int(o.get("numRowsTotal") or 0) for o in ops) if ops else None,
        "state_memory_bytes": sum(int(o.get("memoryUsedBytes") or 0) for o in ops) if ops else None,
        "kafka_lag": max(lags) if lags else None,
    }


class ProgressRecorder(StreamingQueryListener):
    """Enqueue each progress event; :meth:`run` (a daemon thread) writes them with ``write``."""

    def __init__(self, write: Callable[[list[dict[str, Any]]], None], flush_s: float = 2.0,
                 max_queue: int = 10_000) -> None:
        self.write = write
        self.flush_s = flush_s
        self.q: queue.Queue[dict[str, Any]] = queue.Queue(max_queue)
        self.dropped = 0
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name="progress-recorder", daemon=True)
        self._thread.start()

    def onQueryStarted(self, event) -> None:  # Spark's method names
        pass

    def onQueryProgress(self, event) -> None:
        try:
            self.q.put_nowait(progress_record(json.loads(event.progress.json)))
        except queue.Full:
            self.dropped += 1
        except Exception:  # a malformed event must never reach the query
            log.exception("progress event not recorded")
            self.dropped += 1

    def enqueue(self, docs: list[dict[str, Any]]) -> None:
        """Other records for the same collection (stage health): queued, never waited for."""
        for d in docs:
            try:
                self.q.put_nowait(d)
            except queue.Full:
                self.dropped += 1

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        pass

    def run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.flush_s)
            self.flush()

    def flush(self) -> None:
        batch: list[dict[str, Any]] = []
        while True:
            try:
                batch.append(self.q.get_nowait())
            except queue.Empty:
                break
        if not batch:
            return
        try:
            self.write(batch)
            self.written += len(batch)
        except Exception as e:  # MongoDB down: these events are lost, the pipeline is not
            self.dropped += len(batch)
            log.warning("pipeline progress not recorded (%d events): %s", len(batch), str(e).splitlines()[0][:200])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush()


def mongo_writer(uri: str, database: str, timeout_ms: int) -> Callable[[list[dict[str, Any]]], None]:
    import pymongo

    coll = pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms)[database][PROGRESS]
    return lambda docs: coll.insert_many(docs, ordered=False)


def attach(spark, uri: str, database: str, timeout_ms: int) -> ProgressRecorder:
    """Record this application's streaming progress in MongoDB; returns the listener (remove
    it with ``spark.streams.removeListener`` and :meth:`ProgressRecorder.close`)."""
    rec = ProgressRecorder(mongo_writer(uri, database, timeout_ms))
    spark.streams.addListener(rec)
    return rec
