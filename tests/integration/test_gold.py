"""Simulator → Kafka → bronze → silver, gold and the serving queries on the real servers: scores
equal batch scoring of silver (parity), alerts reach the topic, MongoDB, Elasticsearch and a
webhook (through the notifier) with the right level and routing; a SIGKILLed pipeline (all stages, bronze to the
stores) and a MongoDB outage lose and duplicate nothing, and alerts keep flowing while MongoDB
is down."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pymongo
import pytest
import requests
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from tests.helpers import ARTIFACTS, ROOT, TEST_STAGE_TRIGGERS
from tests.integration.expect import expected_values, silver_values
from vitalwatch.alerts.feed import follow
from vitalwatch.config import Settings, TopicsConfig, WebhookConfig
from vitalwatch.features.build import silver_rows
from vitalwatch.infra.endpoints import Endpoints
from vitalwatch.infra.kafka import provision
from vitalwatch.pipeline import STAGES
from vitalwatch.pipeline.gold import load_model
from vitalwatch.pipeline.gold.checkpoint import checkpoint_name
from vitalwatch.pipeline.lake import (
    BRONZE,
    GOLD_ALERTS,
    GOLD_SCORES,
    GOLD_STATUS,
    SILVER_QUARANTINE,
    SILVER_VITALS,
    read_table,
)
from vitalwatch.pipeline.runner import run_available_now
from vitalwatch.producers.kafka_out import send
from vitalwatch.producers.simulator import SimulationPlan, registry_entries, simulate
from vitalwatch.scoring.engine import score_batch
from vitalwatch.sinks import mongo
from vitalwatch.sinks.search import base_url, index_name

pytestmark = pytest.mark.integration
RISKS = ["risk_1h", "risk_6h", "risk_24h"]


class Receiver:
    """A local HTTP endpoint standing in for a pager's webhook: records what it is sent."""

    def __init__(self) -> None:
        received = self.received = []

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.headers["Idempotency-Key"], json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_a) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"


def notify_until(s: Settings, endpoints: Endpoints, done, timeout_s: float = 120) -> None:
    """Run the notifier (``vitalwatch notify``) until ``done()`` or the timeout."""
    import time

    from vitalwatch.alerts.notifier import run_notifier

    deadline = time.monotonic() + timeout_s
    run_notifier(s, endpoints, should_stop=lambda: done() or time.monotonic() > deadline, log_line=lambda _m: None)


def gold_settings(trained: Settings, endpoints: Endpoints, name: str, **alerts: object) -> Settings:
    """Own topics, lake, MongoDB database and Elasticsearch indices for one test."""
    tag = uuid.uuid4().hex[:8]
    topics = {k: f"test.{k}.{tag}" for k in TopicsConfig.model_fields}
    d = ROOT / ".work" / f"test-{os.getpid()}" / "gold" / f"{name}-{tag}"
    s = trained.with_updates(kafka={"topics": topics},
                     lake={"root": str(d / "lake"), "checkpoint_root": str(d / "chk")},
                     mongo={"database": f"vw_{name}_{tag}"}, elasticsearch={"index_prefix": f"vw-{name}-{tag}"},
                     alerts=alerts)
    provision(endpoints.kafka("admin"), s.with_updates(kafka={"partitions": 2}))
    mongo.init(s, endpoints.mongo_uri or "")
    return s


def plan(patients: int = 8, hours: float = 12, **faults: float) -> SimulationPlan:
    cfg = Settings().simulator.model_copy(update={
        "patients": patients, "seed": 5, "bundle_fraction": 0.3,
        "profile_mix": {"crisis_prone": 0.5, "hypertensive": 0.25, "normotensive": 0.25}, **faults})
    return SimulationPlan(datetime(2026, 6, 1, tzinfo=UTC), hours, cfg)


def register(s: Settings, endpoints: Endpoints, p: SimulationPlan, skip: str) -> dict[str, dict]:
    """Register every simulated patient but ``skip`` (it must be routed to the fallback team)."""
    docs = [d for d in registry_entries(p) if d["_id"] != skip]
    db = pymongo.MongoClient(mongo.pipeline_uri(s, endpoints.mongo_uri or ""))[s.mongo.database]
    mongo.register_patients(db, docs)
    return {d["_id"]: d for d in docs}


def split_at_instants(msgs, parts: int):
    """Cut the message list only between simulated instants (a reading's messages stay together)."""
    cuts = sorted({round(len(msgs) * k / parts) for k in range(1, parts)})
    out, start = [], 0
    for c in cuts:
        while 0 < c < len(msgs) and msgs[c].sim_time == msgs[c - 1].sim_time:
            c += 1
        out.append(msgs[start:c])
        start = c
    out.append(msgs[start:])
    return out


def expected(spark: SparkSession, s: Settings) -> pd.DataFrame:
    """Batch scoring of everything in silver: what the stream must have produced."""
    rows = silver_rows(read_table(spark, s, SILVER_VITALS)).toPandas()
    return score_batch(rows, load_model(s), s.clinical, s.alerts)


def es_count(endpoints: Endpoints, index: str) -> int:
    base = base_url(endpoints.es_nodes or "")
    requests.post(f"{base}/{index}/_refresh", timeout=30)
    return requests.get(f"{base}/{index}/_count", timeout=30).json()["count"]


def es_ids(endpoints: Endpoints, index: str) -> set[str]:
    base = base_url(endpoints.es_nodes or "")
    r = requests.get(f"{base}/{index}/_search", json={"size": 10000, "_source": False}, timeout=30).json()
    return {h["_id"] for h in r["hits"]["hits"]}


def check_every_sink_once(spark: SparkSession, s: Settings, endpoints: Endpoints, want: pd.DataFrame,
                          *, alerts_of_the_stream: bool = False) -> pd.DataFrame:
    """Delta gold, MongoDB, Elasticsearch and the alerts topic's consumers hold every reading
    and every alert exactly once; returns the gold alerts.

    The alerts are batch scoring's, or with ``alerts_of_the_stream`` the ones the stream's own
    scored readings carry: where micro-batches cut through an instant (a companion vital in the
    next batch), the stream scores that reading without it, as documented ("Late readings"), so
    its levels and alert ids may differ from batch scoring's there."""
    gold = read_table(spark, s, GOLD_SCORES).toPandas()
    assert len(gold) == gold.observation_id.nunique() == len(want), "each reading scored exactly once"
    assert set(gold.observation_id) == set(want.observation_id)
    alerts = read_table(spark, s, GOLD_ALERTS).toPandas()
    want_alerts = set((gold if alerts_of_the_stream else want).alert_id.dropna())
    assert len(alerts) == alerts.alert_id.nunique() == len(want_alerts) and set(alerts.alert_id) == want_alerts
    db = pymongo.MongoClient(endpoints.mongo_uri)[s.mongo.database]
    assert {d["_id"] for d in db.alerts.find({}, {"_id": 1})} == want_alerts
    keep = s.gold.mongo_latest_scores
    latest = want.sort_values("effective_time").groupby("patient_id").tail(keep)
    # keyed by patient + observation (lib/vitalwatch/pipeline/keys.py): the same id of two patients is two readings
    assert {d["_id"] for d in db.risk_scores.find({}, {"_id": 1})} == {
        json.dumps([p, o], separators=(",", ":")) for p, o in zip(latest.patient_id, latest.observation_id, strict=True)}
    assert es_count(endpoints, index_name(s, "risk")) == len(want)
    assert es_ids(endpoints, index_name(s, "alerts")) == want_alerts
    feed = list(follow(endpoints.kafka("watch"), s.kafka.topics.alerts, from_beginning=True, idle_timeout_s=8))
    assert sorted(e["alert_id"] for e in feed if e["source"] == "server") == sorted(want_alerts)
    return alerts


SHADOW_ALIAS = "shadow-parity"


def register_shadow(s: Settings) -> str:
    """The champion's files registered again as a new version, sealed, under ``SHADOW_ALIAS``:
    a shadow whose risks must equal the champion's."""
    from vitalwatch.models.integrity import move_alias, seal
    from vitalwatch.models.registry import client

    name = s.models.risk_model_name
    c = client(s)
    champ = c.get_model_version_by_alias(name, s.models.champion_alias)
    mv = c.create_model_version(name, champ.source, champ.run_id)
    seal(s, name, str(mv.version))
    move_alias(s, name, SHADOW_ALIAS, str(mv.version), "test: shadow scoring")
    return str(mv.version)


def test_stream_equals_batch_and_alerts_reach_every_sink_routed(
        spark: SparkSession, trained: Settings, endpoints: Endpoints) -> None:
    hook = Receiver()
    s = gold_settings(trained, endpoints, "parity",
                      webhooks=[WebhookConfig(name="pager", url=hook.url, levels=["CRITICAL", "HIGH"],
                                              secret=uuid.uuid4().hex)])
    shadow = register_shadow(s)
    s = s.with_updates(gold={"shadow_alias": SHADOW_ALIAS})
    p = plan()
    msgs = list(simulate(p))
    unregistered = "p00001"
    registry = register(s, endpoints, p, skip=unregistered)
    for part in split_at_instants(msgs, 2):  # two arrivals: the state carries across batches
        send(part, endpoints.kafka("device"), s.kafka.topics.observations)
        run_available_now(spark, s, endpoints, STAGES)

    want = expected(spark, s)
    assert (want.level == "CRITICAL").sum() > 0 and want.alert_id.notna().sum() >= 5, "crisis-prone patients alert"
    gold = read_table(spark, s, GOLD_SCORES)
    # parity: the streaming vectors, scores, levels and alerts are the batch builder's
    cols = ["observation_id", "patient_id", "level", "alert_id", "alert_kind", "score_status", "model_version"]
    got_pdf = gold.toPandas().set_index("observation_id").loc[want.observation_id].reset_index()
    np.testing.assert_array_equal(np.stack(got_pdf.features), np.stack(want.features))
    np.testing.assert_allclose(got_pdf[RISKS].to_numpy(float), want[RISKS].to_numpy(float), rtol=1e-6)
    assertDataFrameEqual(gold.select(*cols), spark.createDataFrame(want[cols].astype(object).where(want[cols].notna(), None),
                                                                   gold.select(*cols).schema))
    assert set(want.model_version) == {"1"} and set(want.model_name) == {s.models.risk_model_name}
    # the shadow: scored by the stream on the same vectors, stored beside the champion's, never alerting
    scored = got_pdf[got_pdf.score_status == "scored"]
    assert set(scored.shadow_model_version) == {shadow} and len(scored) > 0
    shadow_cols = [c.replace("risk_", "shadow_risk_") for c in RISKS]
    np.testing.assert_allclose(scored[shadow_cols].to_numpy(float), scored[RISKS].to_numpy(float), rtol=1e-6)
    from vitalwatch.models.compare import compare

    cmp = compare(gold.toPandas(), s).set_index(["model", "horizon_h"])
    for col in ("auroc", "readings", "burden_ph_medium", "warned_medium"):
        np.testing.assert_allclose(cmp.xs("champion")[col].to_numpy(float), cmp.xs("shadow")[col].to_numpy(float))
    # live monitoring (the lake app's model_outcomes stage, run incrementally over both arrivals):
    # exactly the outcomes the batch function gives on the final gold table, and a day's quality
    from vitalwatch.models.monitoring import outcome_rows
    from vitalwatch.pipeline.lake import MODEL_MONITORING, MODEL_OUTCOMES

    key = ["patient_id", "observation_id", "horizon_h", "outcome"]
    got_out = read_table(spark, s, MODEL_OUTCOMES).toPandas()
    want_out = outcome_rows(gold.toPandas(), list(s.clinical.horizons_hours))
    assert len(want_out) > 0 and len(got_out) == len(want_out)
    assert sorted(map(tuple, got_out[key].to_numpy().tolist())) == sorted(map(tuple, want_out[key].to_numpy().tolist()))
    mon = read_table(spark, s, MODEL_MONITORING).toPandas()
    assert set(mon.role) == {"champion", "shadow"} and set(mon.reference_version) == {"1"}
    assert mon.psi.map(len).eq(12).all() and (mon.drift_readings > 0).all()
    by_role = mon.groupby("role")["readings"].sum()
    assert by_role["champion"] == by_role["shadow"] == int((want_out.risk.notna() & want_out.shadow_risk.notna()).sum())

    alerts = check_every_sink_once(spark, s, endpoints, want)
    # routing: the registered care team by level; the unregistered patient gets the fallback team
    for a in alerts.itertuples():
        team = registry.get(a.patient_id, {}).get("care_team")
        roles = {"CRITICAL": ["physician_on_call", "nurse"], "HIGH": ["nurse"], "MEDIUM": ["dashboard"],
                 "LOW": ["dashboard"]}[a.level]
        want_ids = [team[r] if team else s.alerts.fallback_care_team[r] for r in roles]
        assert [r["id"] for r in a.recipients] == want_ids, a
        assert a.ward == (registry[a.patient_id]["ward"] if team else "unassigned")
        assert a.source == "server" and a.alert_id == (a.alert_id or "")
    crisis = alerts[alerts.reasons.apply(lambda r: "crisis_now" in list(r))]
    assert (crisis.level == "CRITICAL").all() and len(crisis) > 0
    assert ((crisis.systolic >= 180) | (crisis.diastolic >= 120)).all()
    # the status table and MongoDB's registry show each patient's latest reading
    last = want.sort_values("effective_time").groupby("patient_id").tail(1).set_index("patient_id")
    status = read_table(spark, s, GOLD_STATUS).toPandas().set_index("patient_id")
    assert (status.loc[last.index, "observation_id"] == last.observation_id).all()
    db = pymongo.MongoClient(endpoints.mongo_uri)[s.mongo.database]
    doc = db.patients.find_one({"_id": "p00000"})
    assert doc["name"].startswith("Simulated") and doc["status"]["observation_id"] == last.loc["p00000", "observation_id"]
    # webhook: every CRITICAL/HIGH alert, keyed by alert id, delivered by the notifier from the topic
    urgent = set(alerts.alert_id[alerts.level.isin(["CRITICAL", "HIGH"])])
    notify_until(s, endpoints, lambda: {k for k, _ in hook.received} >= urgent)
    assert {k for k, _ in hook.received} == urgent and all(k == b["alert_id"] for k, b in hook.received)
    assert len(hook.received) == len(urgent)  # each once
    # normal topic: the below-threshold assessments
    normal = int(((want.level == "LOW") & want.alert_id.isna() & (want.score_status == "scored")).sum())
    assert normal > 0 and _topic_size(endpoints, s.kafka.topics.normal) == normal
    # Elasticsearch vitals: one document per silver value
    assert es_count(endpoints, index_name(s, "vitals")) == read_table(spark, s, SILVER_VITALS).count()


def _topic_size(endpoints: Endpoints, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(endpoints.kafka("admin").conf(**{"group.id": "size"}))
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    n = 0
    for p in parts:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        n += hi - lo
    c.close()
    return n


def _env(s: Settings, endpoints: Endpoints) -> dict[str, str]:
    return {**os.environ,
            "VITALWATCH__LAKE__ROOT": s.lake.root, "VITALWATCH__LAKE__CHECKPOINT_ROOT": s.lake.checkpoint_root,
            "VITALWATCH__KAFKA__BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
            **{f"VITALWATCH__KAFKA__TOPICS__{k.upper()}": v for k, v in s.kafka.topics.model_dump().items()},
            "VITALWATCH__KAFKA__MAX_OFFSETS_PER_TRIGGER": "60",
            "VITALWATCH__STREAMING__TRIGGER_INTERVAL": "1 second",
            "VITALWATCH__STREAMING__STAGE_TRIGGERS": json.dumps(TEST_STAGE_TRIGGERS),
            "VITALWATCH__STREAMING__RESTART_BACKOFF_S": "2",
            "VITALWATCH__STREAMING__MAX_FILES_PER_TRIGGER": "2",
            "VITALWATCH__MONGO__DATABASE": s.mongo.database,
            "VITALWATCH__ELASTICSEARCH__INDEX_PREFIX": s.elasticsearch.index_prefix,
            "VITALWATCH__MODELS__MLFLOW_DIR": s.models.mlflow_dir,
            "VITALWATCH__SPARK__MASTER": "local[2]", "VITALWATCH__SPARK__SHUFFLE_PARTITIONS": "2",
            "VITALWATCH__INFRA__WORK_DIR": s.infra.work_dir}


def _gold_commits(s: Settings) -> int:
    """Micro-batches the scoring query has committed (its checkpoint's commit log): the alert
    path's progress, which the kills interrupt and which must go on while MongoDB is down."""
    log = Path(s.checkpoint_path(checkpoint_name(s, "gold_risk_scores"))) / "commits"
    return len(list(log.glob("[0-9]*"))) if log.exists() else 0


def test_sigkill_restarts_and_a_mongodb_outage_lose_and_duplicate_nothing(
        spark: SparkSession, trained: Settings, base_settings: Settings, endpoints: Endpoints) -> None:
    from vitalwatch.infra.manager import InfraManager
    from vitalwatch.pipeline.health import read_all as read_health

    s = gold_settings(trained, endpoints, "sigkill")
    p = plan(patients=10, hours=10, malformed_fraction=0.05, duplicate_fraction=0.03)
    msgs = list(simulate(p))
    register(s, endpoints, p, skip="")
    # the second part arrives while the first run is going, the third during the MongoDB outage,
    # the fourth once it is back, the last for the final restart to drain
    first, rest, during_outage, after_outage, last = split_at_instants(msgs, 5)
    send(first, endpoints.kafka("device"), s.kafka.topics.observations)
    rng = random.Random(4)
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "sigkill-gold.log"
    log = open(log_path, "wb")  # noqa: SIM115
    argv = [sys.executable, str(ROOT / "jobs" / "pipeline.py"), "--stages", ",".join(STAGES)]
    kills, outage_seen = 0, False
    for run in range(2):  # kill, restart, MongoDB outage, kill; the drain below is the last restart
        proc = subprocess.Popen(argv, env=_env(s, endpoints), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        target = _gold_commits(s) + rng.randint(1, 2)
        deadline = time.monotonic() + 300
        try:
            while _gold_commits(s) < target:
                assert proc.poll() is None, f"pipeline exited early; see {log_path}"
                assert time.monotonic() < deadline, "pipeline made no progress"
                time.sleep(0.3)
            if run == 0:
                send(rest, endpoints.kafka("device"), s.kafka.topics.observations)
            if run == 1:  # MongoDB goes away mid-stream: the serving query fails and is restarted
                # once every stage has started (the supervisor's heartbeat names this process; on a
                # loaded machine starting nine queries can take minutes, and failures are watched
                # from then on)
                up_t0 = time.monotonic()
                while not any(h.get("app") == "pipeline" and h.get("pid") == proc.pid for h in read_health(s)):
                    assert proc.poll() is None and time.monotonic() - up_t0 < 420, f"stages never all started; see {log_path}"
                    time.sleep(1)
                mgr = InfraManager(base_settings)   # while scoring and alerts go on without it
                mgr.down(["mongo"])
                try:
                    t0, during = time.monotonic(), _gold_commits(s)
                    # new readings during the outage: scored and alerted; their copies fail to reach MongoDB
                    send(during_outage, endpoints.kafka("device"), s.kafka.topics.observations)
                    # the supervisor reports the stage degraded (and retries it on its back-off)
                    while not re.search(rb"degraded: serve_(scores|alerts) failing since", log_path.read_bytes()):
                        assert time.monotonic() - t0 < 180, "the outage was not noticed"
                        time.sleep(1)
                    outage_seen = True
                    while _gold_commits(s) < during + 2:
                        assert proc.poll() is None and time.monotonic() - t0 < 240, "scoring stopped with MongoDB"
                        time.sleep(0.3)
                finally:  # never leave the session's mongod down for the tests after this one
                    mgr.up(["mongo"])
                send(after_outage, endpoints.kafka("device"), s.kafka.topics.observations)
                target = _gold_commits(s) + 1
                while _gold_commits(s) < target:
                    assert proc.poll() is None and time.monotonic() - t0 < 300, f"no recovery; see {log_path}"
                    time.sleep(0.3)
            time.sleep(rng.uniform(0, 1.5))  # kill at a random point of the next batch
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            kills += 1
    assert kills == 2 and outage_seen
    send(last, endpoints.kafka("device"), s.kafka.topics.observations)
    partial = _gold_commits(s)
    run_available_now(spark, s, endpoints, STAGES)  # the last restart drains
    want = expected(spark, s)
    assert 0 < partial < _gold_commits(s), "the kills should interrupt the run mid-way"
    # micro-batches of 60 offsets cut through instants here (unlike the parity test's arrivals)
    alerts = check_every_sink_once(spark, s, endpoints, want, alerts_of_the_stream=True)
    assert len(alerts) >= 0.8 * want.alert_id.notna().sum() > 0, "about as many alerts as batch scoring raises"
    # bronze keeps every message once, silver every value once, the quarantine every bad message once
    bronze = read_table(spark, s, BRONZE)
    assert bronze.count() == bronze.select("partition", "offset").distinct().count() == len(msgs)
    got = silver_values(spark, s)
    assert len(got) == len(expected_values(msgs)) and {(o, c) for o, c, _ in got} == set(expected_values(msgs))
    bad = sum(1 for m in msgs if m.kind.startswith("malformed:"))
    assert bad > 0 and read_table(spark, s, SILVER_QUARANTINE).count() == bad


def test_live_alerts_reach_the_topic_once_each(
        spark: SparkSession, trained: Settings, endpoints: Endpoints) -> None:
    """The README's main flow, live: a paced simulator (as the `device` principal), the three
    streaming stages running together, alerts followed on the topic. Prints the latency seen."""
    from vitalwatch.alerts.feed import AlertFilter
    from vitalwatch.pipeline.runner import run_continuous
    from vitalwatch.producers.simulator import gateway_alert

    s = gold_settings(trained, endpoints, "live")
    s = s.with_updates(gold={"sinks": ["kafka"]})  # the stores are covered above; this is about the topic
    p = plan(patients=6, hours=6)
    msgs = list(simulate(p))
    registry = register(s, endpoints, p, skip="")
    span_s = 40.0
    speedup = (msgs[-1].sim_time - msgs[0].sim_time).total_seconds() / span_s
    stop = threading.Event()
    sent_at: list[float] = []
    warm = threading.Event()  # every query has run a batch: latency is measured on a running pipeline

    def produce() -> None:
        assert warm.wait(300), "the queries did not start"
        send(msgs, endpoints.kafka("device"), s.kafka.topics.observations, speedup=speedup)
        sent_at.append(time.monotonic())

    def pipeline() -> None:
        run_continuous(spark, s, endpoints, ("bronze", "silver", "gold"), tick_s=1, should_stop=stop.is_set,
                       on_tick=lambda qs: all(q.lastProgress for q in qs) and warm.set())

    threads = [threading.Thread(target=f, daemon=True) for f in (produce, pipeline)]
    for t in threads:
        t.start()
    feed = []
    ward = registry["p00000"]["ward"]
    try:
        done = lambda: bool(sent_at) and time.monotonic() - sent_at[0] > 45  # noqa: E731 - drained by then
        feed = list(follow(endpoints.kafka("watch"), s.kafka.topics.alerts, from_beginning=True, should_stop=done))
    finally:
        stop.set()
        threads[1].join(120)
    server = [e for e in feed if e["source"] == "server"]
    assert server, "alerts should arrive for crisis-prone patients"
    assert len(server) == len(feed), "only the pipeline writes the alert topic"
    ids = [e["alert_id"] for e in feed]
    assert len(ids) == len(set(ids)), "the feed yields each alert once"
    # every crisis reading's CRITICAL alert carries the id computable from the reading alone
    # (unless suppressed within the window), and arrives
    predicted = {gateway_alert(m, s.clinical)["alert_id"] for m in msgs if gateway_alert(m, s.clinical)}
    want = expected(spark, s)
    crisis_ids = set(want.alert_id[want.alert_level.eq("CRITICAL") & want.crisis_now.astype(bool)].dropna())
    assert crisis_ids and crisis_ids <= predicted
    assert crisis_ids <= set(ids)
    assert set(ids) >= set(want.alert_id.dropna())
    # ward filter
    mine = [e for e in server if AlertFilter(ward=ward)(e)]
    assert all(e["ward"] == ward for e in mine)
    lat = sorted((e["_kafka_timestamp_ms"] - pd.Timestamp(e["source_kafka_time"]).timestamp() * 1000) / 1000
                 for e in server)
    q = {k: lat[min(len(lat) - 1, int(k / 100 * len(lat)))] for k in (50, 95)}
    print(f"\nevent → alert latency (reading's Kafka time → alert's Kafka time), {len(lat)} alerts, "
          f"local[2]: p50 {q[50]:.1f}s p95 {q[95]:.1f}s max {lat[-1]:.1f}s")
    assert lat[0] >= 0

