"""Simulator → real Kafka → bronze → silver on real Delta: counts, values, quarantine reasons;
a replay of the same messages adds nothing to silver. (SIGKILL and restart of the whole pipeline,
bronze and silver included: ``test_gold.py``.)"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.helpers import ROOT
from tests.integration.expect import expected_values, silver_values
from vitalwatch.config import Settings
from vitalwatch.infra.endpoints import Endpoints
from vitalwatch.infra.kafka import provision
from vitalwatch.pipeline.lake import BRONZE, SILVER_QUARANTINE, read_table
from vitalwatch.pipeline.runner import run_available_now
from vitalwatch.producers.fhir import Message
from vitalwatch.producers.kafka_out import send
from vitalwatch.producers.simulator import SimulationPlan, simulate

pytestmark = pytest.mark.integration


def own_topic(settings: Settings, endpoints: Endpoints) -> Settings:
    topic = f"test.obs.{uuid.uuid4().hex[:8]}"
    topics = settings.kafka.topics.model_copy(update={"observations": topic})
    s = settings.with_updates(kafka={"topics": topics})
    provision(endpoints.kafka("admin"), s)
    return s


def messages(settings: Settings, **upd: object) -> list[Message]:
    cfg = settings.simulator.model_copy(update={"patients": 10, "seed": 11, "duplicate_fraction": 0.05,
                                                "late_fraction": 0.05, "malformed_fraction": 0.1,
                                                "bundle_fraction": 0.3, **upd})
    return list(simulate(SimulationPlan(datetime(2026, 5, 1, tzinfo=UTC), 6, cfg)))


def test_simulator_to_silver_counts_values_reasons_and_replay(
        spark: SparkSession, lake_settings: Settings, endpoints: Endpoints) -> None:
    s = own_topic(lake_settings, endpoints)
    msgs = messages(s)
    rep = send(msgs, endpoints.kafka("device"), s.kafka.topics.observations)
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
    send(msgs, endpoints.kafka("device"), s.kafka.topics.observations)
    run_available_now(spark, s, endpoints, ("bronze", "silver"))
    assert read_table(spark, s, BRONZE).count() == 2 * len(msgs)
    got2 = silver_values(spark, s)
    assert sorted(got2) == sorted(got)
    # Rejections are per Kafka message: each replayed bad message is quarantined again, once.
    q2 = Counter(r["reason"] for r in read_table(spark, s, SILVER_QUARANTINE).select("reason").collect())
    assert q2 == Counter({k: 2 * v for k, v in want_reasons.items()})


def test_spark_submit_script_runs_a_job_with_the_pinned_packages(
        spark: SparkSession, lake_settings: Settings, endpoints: Endpoints) -> None:
    s = own_topic(lake_settings, endpoints)
    msgs = messages(s, patients=3, malformed_fraction=0.0)
    send(msgs, endpoints.kafka("device"), s.kafka.topics.observations)
    env = {**os.environ, "VITALWATCH__LAKE__ROOT": s.lake.root,
           "VITALWATCH__LAKE__CHECKPOINT_ROOT": s.lake.checkpoint_root,
           "VITALWATCH__KAFKA__BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
           "VITALWATCH__INFRA__WORK_DIR": s.infra.work_dir,  # the broker's CA and credentials
           "VITALWATCH__KAFKA__TOPICS__OBSERVATIONS": s.kafka.topics.observations,
           "VITALWATCH__SPARK__SHUFFLE_PARTITIONS": "2"}
    out = subprocess.run([str(ROOT / "spark-submit.sh"), "--master", "local[2]", "jobs/bronze.py",
                          "--available-now"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "spark-sql-kafka-0-10_2.12;3.5.7" in out.stderr  # resolved from conf/spark-packages.txt
    assert read_table(spark, s, BRONZE).count() == len(msgs)
