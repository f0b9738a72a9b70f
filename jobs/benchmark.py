"""Benchmark job (PRODUCT §7): prints a table per measurement and writes them all as JSON.

    .venv/bin/python jobs/benchmark.py                    # everything, sizes from conf (benchmark:)
    .venv/bin/python jobs/benchmark.py --only parse       # one measurement
    ./spark-submit.sh jobs/benchmark.py --smoke           # tiny sizes: that it runs (CI)

Measurements:
- parse: the silver parser vs Pathling's encoder vs fhir.resources on the same messages;
- scoring: the streaming scorer and engine vs native xgboost ``inplace_predict``;
- memory: the scoring state and process memory per number of patients;
- e2e: readings/s through bronze → silver → gold and every sink on the real local servers
  (started if they are not), event → alert latency at fixed offered loads, and the maximum;
- soak: one load (5,000/s) held for minutes, with the scoring query's backlog sampled throughout:
  sustained, not just absorbed as a burst;
- api: p50/p95/p99 of the REST API's ``GET /api/v1/patients`` over a ward of 10,000 patients and
  of a patient's 24 h observations, as a signed-in clinician over HTTPS with a real HTTP client
  (httpx), the API as ``vitalwatch api`` runs it (:mod:`vitalwatch.bench.api`);
- faults (only with ``--only faults``, about 15 minutes): the applications as separate processes
  while Elasticsearch, mongod, the broker, the webhook receiver, the alert app and the lake app
  fail in turn — event → alert p50/p99 before, during and after each, and the time each store
  took to converge (:mod:`vitalwatch.bench.faults`).
The figures are for the machine it runs on (printed with them); nothing is asserted."""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

MEASUREMENTS = ("parse", "scoring", "memory", "e2e", "soak", "api", "faults")
console = Console() if sys.stdout.isatty() else Console(width=170)  # a log keeps the tables whole


def main(
    only: Annotated[list[str] | None, typer.Option(help=f"run only these: {', '.join(MEASUREMENTS)}")] = None,
    smoke: Annotated[bool, typer.Option(help="tiny sizes, one timed run: checks that it runs, not speed")] = False,
    out: Annotated[Path | None, typer.Option(help="JSON to write (default: conf benchmark.out)")] = None,
    master: Annotated[str, typer.Option(help="Spark master for the Spark engines")] = "local[*]",
) -> None:
    from vitalwatch.bench.machine import describe
    from vitalwatch.config import get_settings

    s = get_settings()
    b = s.benchmark
    if smoke:
        b = b.model_copy(update={"parse_patients": 5, "parse_hours": 2, "score_vectors": 2000, "repeat": 1,
                                 "memory_patients": [200], "memory_readings": 31, "memory_state_buckets": 16,
                                 "e2e_loads": [100], "e2e_seconds": 25, "e2e_readings_per_patient": 50,
                                 "api_patients": 200, "api_requests": 20})
    todo = only or [m for m in MEASUREMENTS if m != "faults" and not (smoke and m == "soak")]  # the smoke's e2e runs its code
    unknown = set(todo) - set(MEASUREMENTS)
    if unknown:
        raise typer.BadParameter(f"unknown measurement(s): {', '.join(sorted(unknown))}")
    machine = describe()
    console.print(f"machine: {machine['cpus']} CPUs ({machine['cpu']}), {machine['memory_gib']} GiB; "
                  f"Spark master {master}")
    result: dict = {"started": datetime.now(UTC).isoformat(), "machine": machine, "master": master,
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


def _parse(s, b, master: str) -> dict:
    from vitalwatch.bench.parsers import (
        fhir_resources_rate,
        pathling_rate,
        silver_rate,
        write_ndjson,
    )
    from vitalwatch.spark import build_session

    with tempfile.TemporaryDirectory(prefix="vw-bench-") as tmp, console.status("parse") as st:
        st.update(f"simulating {b.parse_patients} patients for {b.parse_hours} h")
        singles, bundles = write_ndjson(s, b.parse_patients, b.parse_hours, Path(tmp))
        st.update("timing the silver parser")
        spark = build_session(s, app_name="vitalwatch-benchmark", master=master)
        runs = [silver_rate(spark, s, singles, bundles, b.repeat)]
        used = spark.sparkContext.master  # spark-submit's --master, if it set one
        spark.stop()  # its JVM's cores go to the next engine
        # Pathling's Spark 4 cannot join a Spark 3.5 cluster: off a local master it runs local[*]
        runs.append(pathling_rate(s, singles, bundles, b.repeat, used if used.startswith("local") else "local[*]",
                                  progress=st.update))
        st.update("timing fhir.resources")
        runs.append(fhir_resources_rate(singles, bundles, b.repeat))
    silver = runs[0]
    t = Table(title=f"FHIR parsing, {silver.messages:,} messages (best of {b.repeat})")
    for c in ("engine", "observations", "seconds", "messages/s", "silver ÷ this"):
        t.add_column(c, justify="left" if c == "engine" else "right")
    for r in runs:
        t.add_row(f"{r.engine} ({r.version})", f"{r.observations:,}", f"{r.best:.2f}",
                  f"{r.messages_per_s:,.0f}", f"{silver.messages_per_s / r.messages_per_s:.2f}×")
    console.print(t)
    for r in runs:
        console.print(f"  {r.engine}: {r.work}")
    return {"runs": [r.as_dict() for r in runs],
            "silver_vs": {r.engine: silver.messages_per_s / r.messages_per_s for r in runs[1:]}}


def _scoring(s, b) -> dict:
    from vitalwatch.bench.scoring import engine_vs_native, scorer_vs_native
    from vitalwatch.pipeline.gold import load_model

    with console.status("scoring") as st:
        st.update("loading the champion model")
        model = load_model(s)
        st.update(f"RiskScorer vs inplace_predict on {b.score_vectors:,} vectors")
        runs = [scorer_vs_native(s, model.scorer, b.score_vectors, b.repeat)]
        st.update("the streaming engine vs inplace_predict")
        runs.append(engine_vs_native(s, model, max(50, min(1000, b.score_vectors // 100)), b.repeat))
    t = Table(title=f"scoring, model {model.name} v{model.version} (best of {b.repeat})")
    for c in ("", "vectors", "seconds", "vectors/s", "native seconds", "÷ native"):
        t.add_column(c, justify="left" if c == "" else "right")
    for i, r in enumerate(runs, 1):
        t.add_row(f"({i})", f"{r.vectors:,}", f"{r.seconds:.4f}", f"{r.vectors / r.seconds:,.0f}",
                  f"{r.native_seconds:.4f}", f"{r.ratio:.2f}×")
    console.print(t)
    for i, r in enumerate(runs, 1):
        console.print(f"  ({i}) {r.what}")
    return {"model": f"{model.name} v{model.version}", "runs": [r.as_dict() for r in runs]}


def _memory(s, b, master: str) -> list[dict]:
    from vitalwatch.bench.memory import measure_fresh

    runs = []
    keyed = s.model_copy(update={"gold": s.gold.model_copy(update={"state_buckets": b.memory_state_buckets})})
    with tempfile.TemporaryDirectory(prefix="vw-bench-mem-", dir=s.path(".work")) as tmp, \
            console.status("memory") as st:
        for n in b.memory_patients:
            st.update(f"scoring state of {n:,} patients × {b.memory_readings} readings (a fresh Spark JVM)")
            runs.append(measure_fresh(keyed, n, b.memory_readings, Path(tmp) / str(n), master))
    mib = 2**20
    t = Table(title=f"scoring state, {runs[0]['state_buckets']} buckets, {b.memory_readings} readings a patient")
    for c in ("patients", "seconds", "state on disk", "a patient", "state memory", "JVM RSS (MiB)",
              "Python peak"):
        t.add_column(c, justify="right")
    for r in runs:
        if "error" in r:
            t.add_row(f"{r['patients']:,}", "failed", r["error"][:60], "", "", "", "")
            continue
        t.add_row(f"{r['patients']:,}", f"{r['seconds']:.1f}", f"{r['checkpoint_state_bytes'] / mib:,.1f} MiB",
                  f"{r['state_bytes_per_patient'] / 1024:,.1f} KiB", f"{(r['state_memory_bytes'] or 0) / mib:,.1f} MiB",
                  f"{r['jvm_rss_before'] / mib:,.0f} → {r['jvm_rss_peak'] / mib:,.0f}",
                  f"{r['python_workers_rss_peak'] / mib:,.0f} MiB")
    console.print(t)
    return runs


def _api(s, b, master: str) -> dict:
    """The REST API on a ward of its own (a fresh lake and MongoDB database, dropped after)."""
    from vitalwatch.bench.api import admin_uri, fresh, measure
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
        run = measure(spark, fs, admin_uri(fs), b.api_patients, b.api_requests, log=log, stop_spark=True,
                      progress=st.update)
    t = Table(title=f"REST API over {'HTTPS' if run.tls else 'HTTP'}, a ward of {run.patients:,} patients, "
                    f"one client, one request at a time (after {run.warmup} warm-up requests)")
    for c in ("endpoint", "requests", "p50 ms", "p95 ms", "p99 ms", "mean ms", "first ms", "items", "total"):
        t.add_column(c, justify="left" if c == "endpoint" else "right")
    for e in run.endpoints:
        t.add_row(e.endpoint, f"{e.requests:,}", f"{e.p50_ms:.1f}", f"{e.p95_ms:.1f}", f"{e.p99_ms:.1f}",
                  f"{e.mean_ms:.1f}", f"{e.cold_ms:.0f}", f"{e.items:,}", f"{e.total:,}")
    console.print(t)
    console.print(f"  items = one page (api.page_size {s.api.page_size}), total = all pages; first = the first "
                  f"request after the API started (its cold reads), not among the timed ones;\n  observations: the "
                  f"default {s.api.default_hours:g} h window over {run.featured_hours:g} h of a featured patient's "
                  f"vitals; ward built in {run.build_s:.0f} s, API up in {run.start_s:.1f} s; load average (1 min) "
                  f"{' → '.join(f'{x:.1f}' for x in run.load_avg)} while timed (log: {log})")
    return run.as_dict()


def _faults(s, b) -> dict:
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
    s = s.model_copy(update={"lake": s.lake.model_copy(update={"root": str(work / "lake"),
                                                              "checkpoint_root": str(work / "chk")})})
    InfraManager(s).up(progress=console.log)
    ep = resolve(s, ("kafka", "mongo", "elasticsearch"))
    secret = secrets.token_hex(24)
    run = Run(s, ep, pymongo.MongoClient(ep.mongo_uri)[s.mongo.database], secret,
              prefix=f"bf{datetime.now(UTC):%m%d%H%M}-", say=console.log)
    hook = {"name": "faults", "url": run.receiver.url, "levels": ["CRITICAL", "HIGH"], "timeout_s": 3}
    env = {**os.environ, "VITALWATCH__ALERTS__WEBHOOKS": json.dumps([hook]), "VITALWATCH_WEBHOOK_FAULTS_SECRET": secret}
    out = run_faults(run, env)
    t = Table(title="faults: event → alert on the alert topic (s), and seconds until each store held every "
                    "alert raised before the fault ended")
    for c in ("fault", "before p50/p99", "during p50/p99", "after p50/p99", "alerts during",
              "Delta", "MongoDB", "Elasticsearch", "webhook"):
        t.add_column(c, justify="left" if c == "fault" else "right")

    def pq(q: dict) -> str:
        return f"{q['p50']:.1f} / {q['p99']:.1f}" if q else "–"

    for r in out["faults"]:
        cv = r["converge_s"]
        t.add_row(r["fault"], pq(r["before"]), pq(r["during"]), pq(r["after"]), str(r["alerts_during"]),
                  *[("–" if st not in cv else "never" if cv[st] is None else f"{cv[st]:.0f}")
                    for st in ("delta", "mongo", "elasticsearch", "webhook")])
    console.print(t)
    console.print(f"final: {json.dumps(out['final'], default=str)}")
    return out


def _e2e(s, b, master: str, loads: list[tuple[float, int]], title: str,
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
            console.log(f"offered {rate or 'max'}: sent {r.sent_per_s:,.0f}/s, drained "
                        f"{'never' if r.drained_seconds is None else f'{r.drained_seconds:.0f} s'} after, "
                        f"scoring backlog end/max {r.gold_backlog_end}/{r.gold_backlog_max} "
                        f"(growth {r.gold_backlog_growth}), latency {r.latency_s}")
        spark.stop()
    t = Table(title=title)
    for c in ("offered/s", "readings", "patients", "sent/s", "drained after", "sustained", "BP scored",
              "Delta/Mongo/ES", "scoring backlog end / max (growth)", "alerts", "p50 s", "p95 s", "p99 s", "2nd half p99 s"):
        t.add_column(c, justify="right")
    for r in runs:
        lat, late = r.latency_s, r.latency_second_half_s
        t.add_row("max" if not r.offered_per_s else f"{r.offered_per_s:,.0f}", f"{r.readings:,}", f"{r.patients:,}",
                  f"{r.sent_per_s:,.0f}", "—" if r.drained_seconds is None else f"{r.drained_seconds:.0f} s",
                  "yes" if r.sustained else "no", f"{r.bp_readings_scored:,}",
                  "/".join(f"{v:,}" for v in r.stores.values()),
                  f"{r.gold_backlog_end if r.gold_backlog_end is not None else '—'} / "
                  f"{r.gold_backlog_max if r.gold_backlog_max is not None else '—'}"
                  f"{'' if r.gold_backlog_growth is None else f' (×{r.gold_backlog_growth:.2f})'}", f"{r.alerts}",
                  *(f"{lat[k]:.1f}" if k in lat else "—" for k in ("p50", "p95", "p99")),
                  f"{late['p99']:.1f}" if "p99" in late else "—")
    console.print(t)
    busy = Table(title="share of wall time each query spent in batches while the load was sent")
    busy.add_column("offered/s", justify="right")
    names = sorted({q for r in runs for q in r.busy})
    for q in names:
        busy.add_column(q, justify="right")
    for r in runs:
        busy.add_row("max" if not r.offered_per_s else f"{r.offered_per_s:,.0f}",
                     *(f"{r.busy[q]:.0%}" if q in r.busy else "—" for q in names))
    console.print(busy)
    console.print("  a reading = one FHIR Observation message; latency = alert's Kafka time − its reading's; "
                  "drained = every query read nothing for a whole trigger; backlog = readings on the "
                  "observations topic the scoring query has not read, growth = its peak over the send's last third ÷ "
                  "the middle third's; MongoDB keeps each patient's latest "
                  f"{s.gold.mongo_latest_scores} scores")
    return {"runs": [r.as_dict() for r in runs]}


if __name__ == "__main__":
    typer.run(main)
