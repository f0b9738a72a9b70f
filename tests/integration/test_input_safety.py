"""No message can silence, stall or crash alerting, on the real servers: the adversarial corpus
(tests/adversarial/) interleaved with a crisis-prone patient's readings, through Kafka and the
whole running pipeline (every stage). The patient's CRITICAL alert arrives on ``vitals.alerts``,
every query is still active afterwards, and bronze, silver, quarantine and the counted
non-vital resources add up to what was sent."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter

import pytest
from confluent_kafka import Producer
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.adversarial.corpus import load_cases
from tests.helpers import ROOT
from tests.integration.expect import expected_values
from vitalwatch.alerts.feed import follow
from vitalwatch.config import Settings, TopicsConfig
from vitalwatch.fhir.parse import IGNORED, ParseRules, dedupe_key, parse_observations
from vitalwatch.infra.endpoints import Endpoints
from vitalwatch.infra.kafka import ensure_topics, provision
from vitalwatch.pipeline import STAGES
from vitalwatch.pipeline.lake import (
    BRONZE,
    SILVER_IGNORED,
    SILVER_QUARANTINE,
    SILVER_VITALS,
    read_table,
)
from vitalwatch.pipeline.runner import run_continuous
from vitalwatch.producers.simulator import SimulationPlan, simulate
from vitalwatch.sinks import mongo

pytestmark = pytest.mark.integration


def isolated(trained: Settings, endpoints: Endpoints) -> Settings:
    """Own topics (created as the pipeline creates them), lake, database and indices."""
    tag = uuid.uuid4().hex[:8]
    topics = trained.kafka.topics.model_copy(update={k: f"test.{k}.{tag}" for k in TopicsConfig.model_fields})
    d = ROOT / ".work" / f"test-{os.getpid()}" / "safety" / tag
    s = trained.with_updates(kafka={"topics": topics}, lake={"root": str(d / "lake"), "checkpoint_root": str(d / "chk")},
                     mongo={"database": f"vw_safety_{tag}"}, elasticsearch={"index_prefix": f"vw-safety-{tag}"})
    provision(endpoints.kafka("admin"), s.with_updates(kafka={"partitions": 2}))
    mongo.init(s, endpoints.mongo_uri or "")
    return s


def crisis_patient_messages() -> list:
    """One crisis-prone patient's monitor over the last 8 hours (a crisis episode among them)."""
    cfg = Settings().simulator.model_copy(update={"patients": 1, "seed": 3, "patient_prefix": "safety-",
                                                  "bundle_fraction": 0.3, "profile_mix": {"crisis_prone": 1.0}})
    msgs = list(simulate(SimulationPlan.until_now(8, cfg)))
    crisis = [m for m in msgs if '"8480-6"' in m.value.decode() and _systolic(m) >= 180]
    assert crisis, "the simulated patient has a crisis reading"
    return msgs


def assert_forgeries_refused(s: Settings, endpoints: Endpoints, patient: list) -> None:
    """A device that predicts the alert ids of the patient's crisis readings and publishes them
    first, as gold alert records (so the scoring query would drop the genuine alert as a
    duplicate) or as alerts, is refused by the broker: nothing reaches either topic."""
    import json

    from vitalwatch.producers.simulator import gateway_alert

    forged = [ev for m in patient if (ev := gateway_alert(m, s.clinical))]
    assert forged, "the crisis readings have predictable alert ids"
    p = Producer(endpoints.kafka("device").conf(**{"message.timeout.ms": 20_000, "retries": 0}))
    errors: list = []
    for topic in (s.kafka.topics.gold_alerts, s.kafka.topics.alerts):
        for ev in forged:
            p.produce(topic, key=ev["patient_id"].encode(), value=json.dumps(ev).encode(),
                      on_delivery=lambda err, _m: errors.append(err))
    p.flush(60)
    assert len(errors) == 2 * len(forged) and all(e is not None and e.name() == "TOPIC_AUTHORIZATION_FAILED"
                                                  for e in errors), errors[:3]


def _systolic(m) -> float:
    import json

    o = json.loads(m.value)
    res = [e["resource"] for e in o["entry"]] if o["resourceType"] == "Bundle" else [o]
    return max((c["valueQuantity"]["value"] for r in res for c in r.get("component", [])
                if c["code"]["coding"][0]["code"] == "8480-6"), default=0.0)


def test_the_adversarial_corpus_never_silences_a_patient_s_crisis(
        spark: SparkSession, trained: Settings, endpoints: Endpoints) -> None:
    s = isolated(trained, endpoints)
    cases = load_cases()
    patient = crisis_patient_messages()
    # interleave: after each of the patient's messages, the next adversarial message
    sent: list[tuple[bytes | None, bytes | None]] = []
    for i, m in enumerate(patient):
        sent.append((m.key.encode(), m.value))
        if i < len(cases):
            sent.append((cases[i].key, cases[i].value))
    sent += [(c.key, c.value) for c in cases[len(patient):]]

    stop, failures, inactive = threading.Event(), [], []
    warm = threading.Event()

    def watch(queries) -> None:
        if all(q.lastProgress for q in queries):
            warm.set()
        inactive[:] = [q.name for q in queries if not q.isActive]

    def pipeline() -> None:
        try:
            run_continuous(spark, s, endpoints, STAGES, tick_s=1, should_stop=stop.is_set, on_tick=watch)
        except BaseException as e:  # reported below
            failures.append(e)

    runner = threading.Thread(target=pipeline, daemon=True)
    runner.start()
    try:
        assert warm.wait(400), f"the queries did not start: {failures}"
        assert_forgeries_refused(s, endpoints, patient)
        p = Producer(endpoints.kafka("device").conf(**{"enable.idempotence": True, "acks": "all",
                                                       "message.max.bytes": s.kafka.observations_max_message_bytes}))
        for key, value in sent:
            p.produce(s.kafka.topics.observations, key=key, value=value)
            p.poll(0)
        assert p.flush(120) == 0
        t0 = time.monotonic()
        critical = []
        for ev in follow(endpoints.kafka("watch"), s.kafka.topics.alerts, from_beginning=True,
                         should_stop=lambda: bool(critical) or time.monotonic() - t0 > 300 or bool(failures)):
            if ev["patient_id"].startswith("safety-") and ev["level"] == "CRITICAL" and ev["source"] == "server":
                critical.append(ev)
        assert critical, f"the crisis-prone patient's CRITICAL alert reached {s.kafka.topics.alerts} ({failures})"
        _wait_for_silver(spark, s, len(sent), failures)
        assert not failures, failures
        assert not inactive, f"queries stopped: {inactive}"
        assert not [q.name for q in spark.streams.active if not q.isActive]
    finally:
        stop.set()
        runner.join(180)

    # everything sent is in bronze once, and silver, quarantine and the counted resources are
    # exactly the parse of bronze with first-wins deduplication (ids repeat across cases: a
    # later case with an id and version already accepted is a re-send or a conflict)
    bronze = read_table(spark, s, BRONZE)
    assert bronze.count() == len(sent)
    assert sorted(bytes(r["value"] or b"") for r in bronze.select("value").collect()) == sorted(v or b"" for _, v in sent)
    want_silver, want_q, want_ignored = reference(spark, s, bronze)
    silver = read_table(spark, s, SILVER_VITALS)
    got_silver = Counter((r.patient_id, r.observation_id, r.version_id, r.loinc, r.value) for r in silver.collect())
    assert got_silver == want_silver
    mine = {(r.observation_id, r.loinc) for r in silver.where(F.col("patient_id").startswith("safety-")).collect()}
    assert mine == set(expected_values(patient)), "every value of the patient's readings reached silver"
    got_q = Counter({r["reason"]: r["count"] for r in read_table(spark, s, SILVER_QUARANTINE).groupBy("reason").count().collect()})
    assert got_q == want_q
    corpus_q = Counter()
    for c in cases:
        corpus_q.update(c.quarantine)
    assert got_q - Counter({"conflicting_duplicate": got_q["conflicting_duplicate"]}) == \
        corpus_q - Counter({"conflicting_duplicate": corpus_q["conflicting_duplicate"]}), "each case's reasons, as the corpus says"
    got_ignored = Counter({r["resource_type"]: r["n"] for r in read_table(spark, s, SILVER_IGNORED)
                           .groupBy("resource_type").agg(F.sum("resources").alias("n")).collect()})
    assert got_ignored == want_ignored


def reference(spark: SparkSession, s: Settings, bronze) -> tuple[Counter, Counter, Counter]:
    """What silver, quarantine and the ignored counts must hold: the parser on bronze as a
    batch, then first wins per value key in arrival order (the rule, restated plainly)."""
    rows = dedupe_key(parse_observations(bronze, ParseRules.from_settings(s))).drop("raw").toPandas()
    rows = rows.sort_values(["kafka_timestamp", "partition", "offset", "entry_index", "source_path"],
                            na_position="first", kind="mergesort")
    silver, quarantine, ignored_ = Counter(), Counter(), Counter()
    first: dict[str, str] = {}
    for r in rows.itertuples(index=False):
        if r.reason == IGNORED:
            ignored_[r.resource_type] += 1
        elif isinstance(r.reason, str):
            quarantine[r.reason] += 1
        elif r.dedupe_key not in first:
            first[r.dedupe_key] = r.dedupe_content
            silver[(r.patient_id, r.observation_id, r.version_id, r.loinc, r.value)] += 1
        elif first[r.dedupe_key] != r.dedupe_content:
            quarantine["conflicting_duplicate"] += 1
    return silver, quarantine, ignored_


def _wait_for_silver(spark: SparkSession, s: Settings, messages: int, failures: list, timeout_s: float = 240) -> None:
    """Until bronze holds every message and silver has caught up with it (two quiet checks)."""
    deadline, last, quiet = time.monotonic() + timeout_s, None, 0
    while time.monotonic() < deadline and not failures:
        n = read_table(spark, s, BRONZE).count()
        now = (n, read_table(spark, s, SILVER_VITALS).count(), read_table(spark, s, SILVER_QUARANTINE).count())
        quiet = quiet + 1 if (n == messages and now == last) else 0
        if quiet >= 2:
            return
        last = now
        time.sleep(10)
    raise AssertionError(f"the lake did not catch up: {last} for {messages} messages ({failures})")


def test_topics_stamp_records_with_the_broker_s_clock(endpoints: Endpoints) -> None:
    """Every topic is created with LogAppendTime, and one created without it gets it: a producer
    that sets a record's time (a device's wrong clock) cannot move the pipeline's arrival time."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    tag = uuid.uuid4().hex[:8]
    fresh, old = f"test.stamp.new.{tag}", f"test.stamp.old.{tag}"
    admin = AdminClient(endpoints.kafka("admin").conf())
    for fut in admin.create_topics([NewTopic(old, 1, 1)]).values():  # as another tool would create it
        fut.result(30)
    ensure_topics(endpoints.kafka("admin"), [fresh, old], 1, 1)
    for res, fut in admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t) for t in (fresh, old)]).items():
        assert fut.result(30)["message.timestamp.type"].value == "LogAppendTime", res.name
    p = Producer(endpoints.kafka("admin").conf())
    p.produce(old, key=b"k", value=b"v", timestamp=946_684_800_000)  # 2000-01-01, claimed by the producer
    assert p.flush(30) == 0
    c = Consumer(endpoints.kafka("admin").conf(**{"group.id": f"stamp-{tag}", "auto.offset.reset": "earliest"}))
    c.assign([TopicPartition(old, 0, 0)])
    msg = c.poll(30)
    c.close()
    kind, ms = msg.timestamp()
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME

    assert kind == TIMESTAMP_LOG_APPEND_TIME and abs(ms / 1000 - time.time()) < 120
