"""Memory of the scoring state per number of patients, on the real stateful operator.

For ``patients`` patients, a silver-shaped Delta table with ``readings`` blood-pressure
readings each (every 15 min, with heart rate, respiratory rate, SpO2 and temperature at the
same instant; all arrived now, so nobody is discharged) is scored once by the gold query's
stateful step (:func:`vitalwatch.pipeline.gold.state.score_stream`: the same state function, state
schema, RocksDB provider and ``gold.state_buckets``) into Spark's ``noop`` sink, available-now.
Then:
- the state store as Spark reports it (rows = buckets, memory, RocksDB metrics) and the bytes of
  the checkpoint's ``state/`` directory;
- resident memory of the Spark JVM and of its Python workers: before, and the peak while scoring
  (sampled every 0.5 s)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vitalwatch.config import Settings

VITALS = {"systolic_bp": (130.0, 18.0), "diastolic_bp": (80.0, 10.0), "heart_rate": (80.0, 12.0),
          "respiratory_rate": (16.0, 3.0), "spo2": (96.0, 2.0), "body_temperature": (37.0, 0.4)}


def silver_rows(spark: SparkSession, patients: int, readings: int) -> DataFrame:
    """Silver-shaped rows (the columns the scoring step reads), generated in Spark."""
    now = F.current_timestamp()
    base = (spark.range(patients * readings)
            .select((F.col("id") % patients).alias("p"), (F.col("id") / patients).cast("long").alias("k")))
    vit = F.explode(F.array(*[F.struct(F.lit(v).alias("vital"), F.lit(m).alias("mean"), F.lit(sd).alias("sd"))
                              for v, (m, sd) in VITALS.items()])).alias("v")
    return base.select("p", "k", vit).select(
        F.format_string("bench-%07d", "p").alias("patient_id"),
        F.format_string("obs-%07d-%04d", "p", "k").alias("observation_id"),
        (F.lit("2026-01-01 00:00:00").cast("timestamp") + F.make_interval(mins=F.col("k") * 15)).alias("effective_time"),
        F.col("v.vital").alias("vital"),
        F.round(F.col("v.mean") + F.col("v.sd") * F.randn(7), 1).alias("value"),
        now.alias("kafka_timestamp"), now.alias("silver_time"))


def _rss(pid: int) -> tuple[int, int]:
    """Resident bytes of the process ``pid`` and of its Python worker descendants."""
    import psutil

    def worker_rss(c: psutil.Process) -> int:
        try:  # a worker may exit between listing and reading it (seen under load)
            return c.memory_info().rss if "python" in c.name().lower() else 0
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied, FileNotFoundError):
            return 0

    jvm = psutil.Process(pid)
    return jvm.memory_info().rss, sum(worker_rss(c) for c in jvm.children(recursive=True))


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def measure(spark: SparkSession, settings: Settings, model, patients: int, readings: int, work: Path) -> dict:
    from vitalwatch.pipeline.gold.state import keyed_rows, score_stream

    work.mkdir(parents=True, exist_ok=True)
    table, chk = work / f"silver-{patients}", work / f"chk-{patients}"
    silver_rows(spark, patients, readings).write.format("delta").mode("overwrite").save(str(table))
    jvm_pid = int(spark.sparkContext._jvm.ProcessHandle.current().pid())
    before = _rss(jvm_pid)
    g = settings.gold
    buckets_used = keyed_rows(spark.read.format("delta").load(str(table)), settings).select("bucket").distinct().count()
    stream = keyed_rows(spark.readStream.format("delta").load(str(table)), settings)
    peak = list(before)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            jvm_now, workers_now = _rss(jvm_pid)
            peak[0], peak[1] = max(peak[0], jvm_now), max(peak[1], workers_now)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    q = (score_stream(stream, model, settings).writeStream
         .foreachBatch(lambda df, _i: df.write.format("noop").mode("overwrite").save())
         .option("checkpointLocation", str(chk)).trigger(availableNow=True).start())
    q.awaitTermination()
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    prog = next(p for p in reversed(q.recentProgress) if p.get("stateOperators"))
    op = prog["stateOperators"][0]
    state_bytes = _du(chk / "state")
    return {
        "patients": patients, "readings_per_patient": readings, "silver_rows": patients * readings * len(VITALS),
        "rows_read": sum(p["numInputRows"] for p in q.recentProgress), "seconds": seconds,
        "state_buckets": g.state_buckets, "buckets_used": buckets_used, "state_rows": op.get("numRowsTotal"),
        "state_memory_bytes": op.get("memoryUsedBytes"), "state_custom": op.get("customMetrics", {}),
        "checkpoint_state_bytes": state_bytes, "state_bytes_per_patient": state_bytes / patients,
        "jvm_rss_before": before[0], "jvm_rss_peak": peak[0],
        "python_workers_rss_before": before[1], "python_workers_rss_peak": peak[1],
    }


def _measure_in_this_process(settings: Settings, patients: int, readings: int, work: Path, master: str) -> dict:
    import os

    from vitalwatch.pipeline.gold import load_model
    from vitalwatch.spark import build_session

    # Under spark-submit the parent's environment points PySpark at the parent's JVM: start our own.
    for k in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "VITALWATCH_SPARK_SUBMIT"):
        os.environ.pop(k, None)

    spark = build_session(settings, app_name="vitalwatch-benchmark-memory", master=master)
    try:
        return measure(spark, settings, load_model(settings), patients, readings, work)
    finally:
        spark.stop()


def measure_fresh(settings: Settings, patients: int, readings: int, work: Path, master: str) -> dict:
    """:func:`measure` in a new Python process with its own Spark JVM (``master``, local), so the
    JVM holds that size's state alone: a stopped SparkContext leaves its JVM running in the
    process that started it, and under spark-submit that JVM is the launcher's."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(_measure_in_this_process, settings, patients, readings, work, master).result()
        except Exception as e:  # e.g. the JVM ran out of heap: a result of its own
            return {"patients": patients, "readings_per_patient": readings,
                    "state_buckets": settings.gold.state_buckets, "error": f"{type(e).__name__}: {e}"[:500]}
