"""The benchmark job's run (``jobs/benchmark.py``, docs/requirements.md §7): each measurement timed by its
module, its table printed (:mod:`vitalwatch.bench.report`) and all results written as one JSON.
The figures are for the machine it runs on (printed with them); nothing is asserted."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vitalwatch.bench import report
from vitalwatch.config import BenchmarkConfig, Settings

MEASUREMENTS = ("parse", "scoring", "memory", "e2e", "soak", "api", "faults")
console = report.console_for()
SMOKE = {"parse_patients": 5, "parse_hours": 2, "score_vectors": 2000, "repeat": 1, "memory_patients": [200],
         "memory_readings": 31, "memory_state_buckets": 16, "e2e_loads": [100], "e2e_seconds": 25,
         "e2e_readings_per_patient": 50, "api_patients": 200, "api_requests": 20}


def run_benchmarks(s: Settings, only: list[str] | None, smoke: bool, out: Path | None, master: str) -> dict:
    """Run ``only`` (names of :data:`MEASUREMENTS`, checked by the job; default: every
    measurement but the faults; the smoke also leaves out the soak, its e2e runs the same code),
    print each table, write the JSON; returns it."""
    from vitalwatch.bench.machine import describe

    b = s.benchmark.model_copy(update=SMOKE) if smoke else s.benchmark
    todo = only or [m for m in MEASUREMENTS if m != "faults" and not (smoke and m == "soak")]
    machine = describe()
    console.print(f"machine: {machine['cpus']} CPUs ({machine['cpu']}), {machine['memory_gib']} GiB; "
                  f"Spark master {master}")
    result: dict[str, Any] = {"started": datetime.now(UTC).isoformat(), "machine": machine, "master": master,
                              "smoke": smoke, "config": b.model_dump()}
    if "parse" in todo:
        result["parse"] = _parse(s, b, master)
    if "scoring" in todo:
        result["scoring"] = _scoring(s, b)
    if "memory" in todo:
        result["memory"] = _memory(s, b, master)
    if "e2e" in todo:
        loads = [(rate, int(rate * b.e2e_seconds) if rate else b.e2e_max_readings) for rate in b.e2e_loads]
        result["e2e"] = _e2e(s, b, master, loads, "end to end: bronze → silver → gold → Delta, MongoDB, "
                             "Elasticsearch, alerts topic")
    if "soak" in todo:
        result["soak"] = _e2e(s, b, master, [(b.soak_rate, int(b.soak_rate * b.soak_seconds))],
                              f"soak: {b.soak_rate:,.0f} readings/s held for {b.soak_seconds:,.0f} s",
                              growth_limit=b.soak_backlog_growth)
    if "api" in todo:
        result["api"] = _api(s, b, master)
    if "faults" in todo:
        result["faults"] = _faults(s, b)
    path = out or s.path(b.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    console.print(f"wrote {path}")
    return result


def _parse(s: Settings, b: BenchmarkConfig, master: str) -> dict:
    from vitalwatch.bench.parsers import compare_parsers

    with console.status("parse") as st:
        runs = compare_parsers(s, b.parse_patients, b.parse_hours, b.repeat, master, progress=st.update)
    console.print(report.parse_table(runs, b.repeat))
    for r in runs:
        console.print(f"  {r.engine}: {r.work}")
    return {"runs": [r.as_dict() for r in runs],
            "silver_vs": {r.engine: runs[0].messages_per_s / r.messages_per_s for r in runs[1:]}}


def _scoring(s: Settings, b: BenchmarkConfig) -> dict:
    from vitalwatch.bench.scoring import engine_vs_native, scorer_vs_native
    from vitalwatch.pipeline.gold import load_model

    with console.status("scoring") as st:
        st.update("loading the champion model")
        model = load_model(s)
        st.update(f"RiskScorer vs inplace_predict on {b.score_vectors:,} vectors")
        runs = [scorer_vs_native(s.clinical, s.models.synthetic, model.scorer, b.score_vectors, b.repeat)]
        st.update("the streaming engine vs inplace_predict")
        runs.append(engine_vs_native(s, model, max(50, min(1000, b.score_vectors // 100)), b.repeat))
    console.print(report.scoring_table(f"{model.name} v{model.version}", runs, b.repeat))
    for i, r in enumerate(runs, 1):
        console.print(f"  ({i}) {r.what}")
    return {"model": f"{model.name} v{model.version}", "runs": [r.as_dict() for r in runs]}


def _memory(s: Settings, b: BenchmarkConfig, master: str) -> list[dict]:
    from vitalwatch.bench.memory import measure_fresh

    runs = []
    keyed = s.with_updates(gold={"state_buckets": b.memory_state_buckets})
    with tempfile.TemporaryDirectory(prefix="vw-bench-mem-", dir=s.path(".work")) as tmp, \
            console.status("memory") as st:
        for n in b.memory_patients:
            st.update(f"scoring state of {n:,} patients × {b.memory_readings} readings (a fresh Spark JVM)")
            runs.append(measure_fresh(keyed, n, b.memory_readings, Path(tmp) / str(n), master))
    console.print(report.memory_table(runs, b.memory_readings))
    return runs


def _api(s: Settings, b: BenchmarkConfig, master: str) -> dict:
    """The REST API on a ward of its own (a fresh lake and MongoDB database, dropped after)."""
    from vitalwatch.bench.api import fresh, measure
    from vitalwatch.infra.endpoints import admin_mongo_uri
    from vitalwatch.infra.manager import InfraManager
    from vitalwatch.spark import build_session

    work = s.path(b.out).parent
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vw-bench-api-", dir=work) as tmp, console.status("api") as st:
        if not s.mongo.uri:
            InfraManager(s).up(only=["mongo"], progress=st.update)  # the local server (idempotent)
        fs = fresh(s, Path(tmp))
        spark = build_session(fs, app_name="vitalwatch-benchmark-api", master=master)
        log = work / "api-uvicorn.log"  # this run's (the server appends)
        log.unlink(missing_ok=True)
        run = measure(spark, fs, admin_mongo_uri(fs), b.api_patients, b.api_requests, log=log, stop_spark=True,
                      progress=st.update)
    console.print(report.api_table(run))
    console.print(f"  items = one page (api.page_size {s.api.page_size}), total = all pages; first = the first "
                  f"request after the API started (its cold reads), not among the timed ones;\n  observations: the "
                  f"default {s.api.default_hours:g} h window over {run.featured_hours:g} h of a featured patient's "
                  f"vitals; ward built in {run.build_s:.0f} s, API up in {run.start_s:.1f} s; load average (1 min) "
                  f"{' → '.join(f'{x:.1f}' for x in run.load_avg)} while timed (log: {log})")
    return run.as_dict()


def _faults(s: Settings, b: BenchmarkConfig) -> dict:
    """The fault-injection run on a fresh lake under the benchmark's work directory."""
    import os
    import secrets
    import shutil

    import pymongo

    from vitalwatch.bench.faults import Run, run_faults
    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.infra.manager import InfraManager

    work = s.path(b.out).parent / "faults"
    shutil.rmtree(work, ignore_errors=True)
    s = s.with_updates(lake={"root": str(work / "lake"), "checkpoint_root": str(work / "chk")})
    InfraManager(s).up(progress=console.log)
    ep = resolve(s, ("kafka", "mongo", "elasticsearch"))
    secret = secrets.token_hex(24)
    run = Run(s, ep, pymongo.MongoClient(ep.mongo_uri)[s.mongo.database], secret,
              prefix=f"bf{datetime.now(UTC):%m%d%H%M}-", say=console.log)
    hook = {"name": "faults", "url": run.receiver.url, "levels": ["CRITICAL", "HIGH"], "timeout_s": 3}
    env = {**os.environ, "VITALWATCH__ALERTS__WEBHOOKS": json.dumps([hook]), "VITALWATCH_WEBHOOK_FAULTS_SECRET": secret}
    out = run_faults(run, env)
    console.print(report.faults_table(out))
    console.print(report.faults_final(out))
    return out


def _e2e(s: Settings, b: BenchmarkConfig, master: str, loads: list[tuple[float, int]], title: str,
         growth_limit: float | None = None) -> dict:
    """Each (offered rate, readings) on fresh topics, lake, database and index (``run_load``)."""
    from vitalwatch.bench.endtoend import run_load
    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.infra.manager import InfraManager
    from vitalwatch.spark import build_session

    work = s.path(b.out).parent / "e2e"
    runs = []
    with console.status(title.split(":")[0]) as st:
        if not all((s.kafka.bootstrap_servers, s.mongo.uri, s.elasticsearch.nodes)):
            InfraManager(s).up(progress=st.update)  # the local servers (idempotent)
        ep = resolve(s, ("kafka", "mongo", "elasticsearch"))
        spark = build_session(s, app_name="vitalwatch-benchmark-e2e", master=master)
        for rate, readings in loads:
            patients = min(b.e2e_max_patients, max(20, readings // b.e2e_readings_per_patient))
            r = run_load(spark, s, ep, rate, readings, patients, work, b.e2e_drain_limit_s, progress=st.update,
                         sample_s=b.e2e_sample_s, growth_limit=growth_limit)
            runs.append(r)
            console.log(report.e2e_log_line(rate, r))
        spark.stop()
    for t in report.e2e_tables(title, runs):
        console.print(t)
    console.print("  a reading = one FHIR Observation message; latency = alert's Kafka time − its reading's; "
                  "drained = every query read nothing for a whole trigger; backlog = readings on the "
                  "observations topic the scoring query has not read, growth = its peak over the send's last third ÷ "
                  "the middle third's; MongoDB keeps each patient's latest "
                  f"{s.gold.mongo_latest_scores} scores")
    return {"runs": [r.as_dict() for r in runs]}
