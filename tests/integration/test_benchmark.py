"""The benchmark job's smoke run (``./spark-submit.sh jobs/benchmark.py --smoke``): every engine runs on the same
messages and vectors, on the real components (Spark 3.5 with its Maven jars, Pathling's own
Spark 4.0 environment from PyPI and Maven Central, fhir.resources, the registered champion), and the
REST API is timed over HTTPS on a ward of its own. Speed is printed, never asserted; what is asserted is that the comparison compares like with
like."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ARTIFACTS, ROOT, TEST_STAGE_TRIGGERS
from vitalwatch.config import Settings

pytestmark = pytest.mark.integration


@pytest.mark.timeout(1200)  # the job's own limit below, and the session fixtures' setup
def test_the_smoke_benchmark_compares_every_engine_on_the_same_input(trained: Settings, endpoints, tmp_path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "VITALWATCH__MODELS__MLFLOW_DIR": trained.models.mlflow_dir,
           "VITALWATCH__SPARK__SHUFFLE_PARTITIONS": "2",
           # end to end on this session's servers, with the tests' short triggers (the local
           # profile's 60 s lake triggers are for the main command's alert latency on 2 cores)
           "VITALWATCH__KAFKA__BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
           "VITALWATCH__MONGO__URI": endpoints.mongo_uri, "VITALWATCH__ELASTICSEARCH__NODES": endpoints.es_nodes,
           "VITALWATCH__INFRA__WORK_DIR": trained.infra.work_dir,
           "VITALWATCH__STREAMING__STAGE_TRIGGERS": json.dumps(TEST_STAGE_TRIGGERS),
           "VITALWATCH__BENCHMARK__OUT": str(tmp_path / "latest.json")}
    # as docs/benchmarks.md runs it: through spark-submit.sh, so the library is the shipped zip and Pathling's
    # subprocess must leave this Spark's environment behind
    proc = subprocess.run([str(ROOT / "spark-submit.sh"), "--master", "local[2]", "jobs/benchmark.py", "--smoke",
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1080)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "benchmark-smoke.txt").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["smoke"] and res["machine"]["cpus"] >= 1

    runs = {r["engine"].split()[0]: r for r in res["parse"]["runs"]}
    assert set(runs) == {"silver", "Pathling", "fhir.resources"}
    # the same messages, and every engine found the same Observations in them
    assert len({r["messages"] for r in runs.values()}) == 1 and runs["silver"]["messages"] > 0
    assert len({r["observations"] for r in runs.values()}) == 1, {k: r["observations"] for k, r in runs.items()}
    assert runs["silver"]["values"] > runs["silver"]["observations"]  # panels give two values
    assert runs["Pathling"]["version"].startswith("Spark 4.") and runs["silver"]["version"].startswith("Spark 3.5")
    for r in runs.values():
        assert r["seconds"] and all(t > 0 for t in r["seconds"])
        assert r["messages_per_s"] == pytest.approx(r["messages"] / min(r["seconds"]))
    assert set(res["parse"]["silver_vs"]) == {runs["Pathling"]["engine"], runs["fhir.resources"]["engine"]}

    scorer, engine = res["scoring"]["runs"]
    assert scorer["vectors"] == res["config"]["score_vectors"]
    assert engine["vectors"] > 0 and engine["what"].startswith("streaming engine")
    for r in (scorer, engine):
        assert r["ratio"] == pytest.approx(r["seconds"] / r["native_seconds"])
    assert "FHIR parsing" in proc.stdout and "÷ native" in proc.stdout and "scoring state" in proc.stdout

    (mem,) = res["memory"]
    assert mem["patients"] == 200 and mem["rows_read"] == mem["silver_rows"] == 200 * 31 * 6
    assert mem["state_buckets"] == 16 and 0 < mem["buckets_used"] <= 16
    assert mem["state_rows"] == mem["buckets_used"]  # one state row per bucket that holds patients
    assert mem["checkpoint_state_bytes"] > 0 and mem["jvm_rss_peak"] >= mem["jvm_rss_before"] > 0
    assert mem["python_workers_rss_peak"] > 0  # the state function ran in Python workers

    # 100 readings/s for 25 s through every stage and sink: longer than the scoring query's first
    # batch with data (its Python workers load the model), so the send sees it run
    (e2e,) = res["e2e"]["runs"]
    assert e2e["offered_per_s"] == 100 and e2e["readings"] == 2500
    assert e2e["sustained"] and e2e["drained_seconds"] is not None
    stores = e2e["stores"]
    assert stores["delta"] == stores["mongo"] == stores["elasticsearch"] == e2e["bp_readings_scored"] > 0
    assert e2e["alerts"] > 0 and 0 < e2e["latency_s"]["p50"] <= e2e["latency_s"]["p99"]
    assert e2e["patients"] == 50  # 2,500 readings at 50 a patient
    # the timeline sampled while sending: readings sent grow to the total, and the scoring query's
    # backlog was read from Kafka (it cannot exceed what was sent)
    line = e2e["timeline"]
    assert len(line) >= 2 and [p["sent"] for p in line] == sorted(p["sent"] for p in line)
    assert line[-1]["sent"] == e2e["readings"] and set(line[-1]["queries"]) >= {"gold_risk_scores", "bronze_observations",
                                                                        "silver_vital_signs"}
    assert 0 <= e2e["gold_backlog_end"] <= e2e["gold_backlog_max"] <= e2e["readings"]
    assert line[-1]["queries"]["silver_vital_signs"]["backlog"] is None  # a Delta source has no Kafka backlog
    assert 0 < e2e["busy"]["gold_risk_scores"] <= 1.5  # batch time ÷ wall time (a batch may start before the send)
    assert "end to end" in proc.stdout and "soak" not in res  # the smoke leaves the minutes-long soak out

    api = res["api"]  # the REST API over HTTPS on a ward of 200 patients, 20 timed requests of each endpoint
    assert api["patients"] == 200 and api["tls"] and api["start_s"] > 0
    patients, observations = api["endpoints"]
    assert patients["endpoint"] == "GET /api/v1/patients" and patients["total"] == 200 and patients["items"] == 100
    assert observations["endpoint"].endswith("/observations") and observations["total"] > observations["items"] == 100
    for e in (patients, observations):
        assert e["requests"] == 20 and 0 < e["p50_ms"] <= e["p95_ms"] <= e["p99_ms"] <= e["max_ms"]
    assert "REST API over HTTPS" in proc.stdout and "faults" not in res


@pytest.mark.spark  # a Spark of its own, in the job's process
@pytest.mark.timeout(600)
def test_the_parse_benchmark_times_the_silver_parser_into_noop_and_delta() -> None:
    """``jobs/benchmark_parse.py`` (:func:`vitalwatch.bench.parsers.silver_sinks`) at a tiny size."""
    env = {**os.environ, "VITALWATCH__SPARK__SHUFFLE_PARTITIONS": "2"}
    proc = subprocess.run([sys.executable, "jobs/benchmark_parse.py", "--patients", "3", "--hours", "1",
                           "--repeat", "1", "--master", "local[2]"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=540)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "benchmark-parse.txt").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = re.search(r"silver parser, (\d+) messages → (\d+) values, master local\[2\], best of 1",
                       " ".join(proc.stdout.split()))
    assert counts and int(counts[1]) > 0 and int(counts[2]) > 0, proc.stdout
    for sink in ("noop (parse only)", "Delta (parse + write)"):
        (line,) = [x for x in proc.stdout.splitlines() if sink in x]
        seconds, per_message, per_value = re.findall(r"[\d,.]+", line.split(sink)[1])[:3]
        assert float(seconds) > 0 and int(per_message.replace(",", "")) >= 0 and int(per_value.replace(",", "")) >= 0


def test_the_benchmark_job_refuses_an_unknown_measurement() -> None:
    proc = subprocess.run([sys.executable, "jobs/benchmark.py", "--only", "parse", "--only", "nope"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown measurement(s): nope" in proc.stderr
