"""Simulator → real Kafka → bronze → silver on real Delta: counts, values, quarantine reasons;
a replay of the same messages adds nothing to silver; a SIGKILLed pipeline restarted from its
checkpoints loses and duplicates nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.conftest import ARTIFACTS, ROOT, TEST_STAGE_TRIGGERS, with_updates
from vitalwatch.config import Settings
from vitalwatch.infra.endpoints import Endpoints
from vitalwatch.infra.kafka import ensure_topics
from vitalwatch.pipeline.lake import BRONZE, SILVER_QUARANTINE, SILVER_VITALS, read_table
from vitalwatch.pipeline.runner import run_available_now
from vitalwatch.producers.fhir import Message
from vitalwatch.producers.kafka_out import send
from vitalwatch.producers.simulator import SimulationPlan, simulate

pytestmark = pytest.mark.integration


def own_topic(settings: Settings, endpoints: Endpoints) -> Settings:
    topic = f"test.obs.{uuid.uuid4().hex[:8]}"
    ensure_topics(endpoints.kafka_bootstrap, [topic], settings.kafka.partitions, 1)
    topics = settings.kafka.topics.model_copy(update={"observations": topic})
    return with_updates(settings, kafka={"topics": topics})


def messages(settings: Settings, **upd: object) -> list[Message]:
    cfg = settings.simulator.model_copy(update={"patients": 10, "seed": 11, "duplicate_fraction": 0.05,
                                                "late_fraction": 0.05, "malformed_fraction": 0.1,
                                                "bundle_fraction": 0.3, **upd})
    return list(simulate(SimulationPlan(datetime(2026, 5, 1, tzinfo=UTC), 6, cfg)))


def expected_values(msgs: list[Message]) -> dict[tuple[str, str], float]:
    """(observation id, LOINC) → canonical value, from the JSON the simulator sent."""
    out: dict[tuple[str, str], float] = {}
    for m in msgs:
        if m.kind in ("malformed:out_of_physiological_range", "malformed:unit_not_convertible"):
            r = json.loads(m.value)  # a bad systolic; the panel's diastolic is still a good value
            out[(r["id"], "8462-4")] = r["component"][1]["valueQuantity"]["value"]
        if m.kind.startswith("malformed:"):
            continue
        o = json.loads(m.value)
        for r in [e["resource"] for e in o["entry"]] if o["resourceType"] == "Bundle" else [o]:
            parts = r.get("component") or [r]
            for c in parts:
                out[(r["id"], c["code"]["coding"][0]["code"])] = c["valueQuantity"]["value"]
    return out


def silver_values(spark: SparkSession, settings: Settings) -> list[tuple[str, str, float]]:
    df = read_table(spark, settings, SILVER_VITALS)
    return [(r["observation_id"], r["loinc"], r["value"]) for r in df.select("observation_id", "loinc", "value").collect()]


def test_simulator_to_silver_counts_values_reasons_and_replay(
        spark: SparkSession, lake_settings: Settings, endpoints: Endpoints) -> None:
    s = own_topic(lake_settings, endpoints)
    msgs = messages(s)
    rep = send(msgs, endpoints.kafka_bootstrap, s.kafka.topics.observations)
    assert rep.sent == len(msgs)

    counts = run_available_now(spark, s, endpoints, ("bronze", "silver"))
    assert counts["bronze"] == len(msgs)

    bronze = read_table(spark, s, BRONZE)
    assert bronze.count() == len(msgs)
    assert bronze.select("partition", "offset").distinct().count() == len(msgs)
    assert sorted(r["value"] for r in bronze.select("value").collect()) == sorted(m.value for m in msgs)

    want = expected_values(msgs)
    got = silver_values(spark, s)
    assert len(got) == len(want), "one row per measured value, duplicates dropped"
    assert {(o, c): v for o, c, v in got} == pytest.approx(want)

    q = read_table(spark, s, SILVER_QUARANTINE)
    want_reasons = Counter(m.kind.split(":", 1)[1] for m in msgs if m.kind.startswith("malformed:"))
    assert Counter(r["reason"] for r in q.select("reason").collect()) == want_reasons
    assert q.where(F.col("raw").isNull() | F.col("detail").isNull()).count() == 0

    # The same messages again (a producer replay): bronze keeps everything, silver adds nothing.
    send(msgs, endpoints.kafka_bootstrap, s.kafka.topics.observations)
    run_available_now(spark, s, endpoints, ("bronze", "silver"))
    assert read_table(spark, s, BRONZE).count() == 2 * len(msgs)
    got2 = silver_values(spark, s)
    assert sorted(got2) == sorted(got)
    # Rejections are per Kafka message: each replayed bad message is quarantined again, once.
    q2 = Counter(r["reason"] for r in read_table(spark, s, SILVER_QUARANTINE).select("reason").collect())
    assert q2 == Counter({k: 2 * v for k, v in want_reasons.items()})


def _delta_commits(path: str) -> int:
    log = Path(path) / "_delta_log"
    return len(list(log.glob("*.json"))) if log.exists() else 0


def test_sigkill_and_restart_lose_and_duplicate_nothing(
        spark: SparkSession, lake_settings: Settings, endpoints: Endpoints) -> None:
    s = own_topic(lake_settings, endpoints)
    s = with_updates(s, kafka={"max_offsets_per_trigger": 40})
    msgs = messages(s, patients=12, malformed_fraction=0.05)
    half = len(msgs) // 2
    send(msgs[:half], endpoints.kafka_bootstrap, s.kafka.topics.observations)

    env = {**os.environ,
           "VITALWATCH__LAKE__ROOT": s.lake.root, "VITALWATCH__LAKE__CHECKPOINT_ROOT": s.lake.checkpoint_root,
           "VITALWATCH__KAFKA__BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
           "VITALWATCH__KAFKA__TOPICS__OBSERVATIONS": s.kafka.topics.observations,
           "VITALWATCH__KAFKA__MAX_OFFSETS_PER_TRIGGER": "40",
           "VITALWATCH__STREAMING__TRIGGER_INTERVAL": "1 second",
           "VITALWATCH__STREAMING__STAGE_TRIGGERS": json.dumps(TEST_STAGE_TRIGGERS),
           "VITALWATCH__STREAMING__MAX_FILES_PER_TRIGGER": "1",  # many small silver batches to kill between
           "VITALWATCH__SPARK__MASTER": "local[2]", "VITALWATCH__SPARK__SHUFFLE_PARTITIONS": "2",
           "VITALWATCH__INFRA__WORK_DIR": s.infra.work_dir}
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "sigkill-pipeline.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, str(ROOT / "jobs" / "pipeline.py"), "--stages", "bronze,silver"], env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    silver_path = s.table_path(*SILVER_VITALS)
    deadline = time.monotonic() + 240
    try:
        # Kill mid-stream: after silver has committed a few batches, while bronze still has input.
        while _delta_commits(silver_path) < 4:
            assert proc.poll() is None, f"pipeline exited early; see {log.name}"
            assert time.monotonic() < deadline, "pipeline made no progress"
            time.sleep(0.5)
        send(msgs[half:], endpoints.kafka_bootstrap, s.kafka.topics.observations)
        time.sleep(2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    partial = read_table(spark, s, BRONZE).count()
    assert 0 < partial < len(msgs), "the kill should interrupt the run mid-way"

    run_available_now(spark, s, endpoints, ("bronze", "silver"))  # restart from the same checkpoints

    bronze = read_table(spark, s, BRONZE)
    assert bronze.count() == len(msgs)
    assert bronze.select("partition", "offset").distinct().count() == len(msgs)
    want = expected_values(msgs)
    got = silver_values(spark, s)
    assert len(got) == len(want)
    assert {(o, c) for o, c, _ in got} == set(want)
    q = read_table(spark, s, SILVER_QUARANTINE)
    assert q.count() == sum(1 for m in msgs if m.kind.startswith("malformed:"))


def test_spark_submit_script_runs_a_job_with_the_pinned_packages(
        spark: SparkSession, lake_settings: Settings, endpoints: Endpoints) -> None:
    s = own_topic(lake_settings, endpoints)
    msgs = messages(s, patients=3, malformed_fraction=0.0)
    send(msgs, endpoints.kafka_bootstrap, s.kafka.topics.observations)
    env = {**os.environ, "VITALWATCH__LAKE__ROOT": s.lake.root,
           "VITALWATCH__LAKE__CHECKPOINT_ROOT": s.lake.checkpoint_root,
           "VITALWATCH__KAFKA__BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
           "VITALWATCH__KAFKA__TOPICS__OBSERVATIONS": s.kafka.topics.observations,
           "VITALWATCH__SPARK__SHUFFLE_PARTITIONS": "2"}
    out = subprocess.run([str(ROOT / "spark-submit.sh"), "--master", "local[2]", "jobs/bronze.py",
                          "--available-now"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "spark-sql-kafka-0-10_2.12;3.5.7" in out.stderr  # resolved from conf/spark-packages.txt
    assert read_table(spark, s, BRONZE).count() == len(msgs)
