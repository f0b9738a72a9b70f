"""End-to-end load: simulator → Kafka → bronze → silver → gold → every sink, on the real local
servers, at a fixed offered load of FHIR Observations per second (a reading = one Observation
message; the simulator's Bundles are switched off so the two counts agree).

Each load runs on fresh topics, a fresh lake, MongoDB database and index prefix, with the
pipeline of ``vitalwatch run`` (all stages, the same profile and triggers) started first and
warmed up. Measured:
- event → alert latency: each server alert's Kafka time on the alerts topic minus the Kafka time
  of the reading that raised it (``source_kafka_time``), p50/p95/p99 (as ``vitalwatch run``);
- whether the load was **sustained**: every query caught up (read nothing) within
  ``drain_limit_s`` after the last reading was sent, and the scores in Delta, MongoDB and
  Elasticsearch agree;
- the **completed rate**: readings ÷ (first send → everything drained). With ``rate`` 0 the
  producer sends as fast as it can, and that rate is the maximum the pipeline sustains."""

from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from vitalwatch.config import Settings
from vitalwatch.infra.endpoints import Endpoints

READINGS_PER_STEP = 4.25  # per patient and cadence: BP, HR, SpO2, RR, and temperature one time in four


@dataclass
class LoadRun:
    offered_per_s: float            # 0: as fast as the producer can
    readings: int
    send_seconds: float
    sent_per_s: float
    drained_seconds: float | None   # last send → every query idle (None: not within the limit)
    completed_per_s: float | None   # readings ÷ (first send → drained)
    sustained: bool
    bp_readings_scored: int
    stores: dict[str, int]          # scored readings in Delta, MongoDB, Elasticsearch
    alerts: int
    latency_s: dict[str, float] = field(default_factory=dict)
    stage_rows_per_s: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fresh(settings: Settings, work: Path, tag: str) -> Settings:
    """Settings with topics, lake, database and index prefix of this load's own."""
    t = settings.kafka.topics
    topics = t.model_copy(update={k: f"{v}.{tag}" for k, v in t.model_dump().items()})
    sim = settings.simulator.model_copy(update={"bundle_fraction": 0.0, "duplicate_fraction": 0.0,
                                                "late_fraction": 0.0, "malformed_fraction": 0.0})
    return settings.model_copy(update={
        "kafka": settings.kafka.model_copy(update={"topics": topics}),
        "lake": settings.lake.model_copy(update={"root": str(work / tag / "lake"),
                                                 "checkpoint_root": str(work / tag / "chk")}),
        "mongo": settings.mongo.model_copy(update={"database": f"bench_{tag}"}),
        "elasticsearch": settings.elasticsearch.model_copy(update={"index_prefix": f"bench-{tag}"}),
        "simulator": sim,
    })


def run_load(spark, settings: Settings, ep: Endpoints, rate: float, readings: int, patients: int,
             work: Path, drain_limit_s: float, progress=None) -> LoadRun:
    import pymongo

    from vitalwatch.alerts.feed import alert_latencies, percentiles
    from vitalwatch.infra.kafka import ensure_topics
    from vitalwatch.pipeline import STAGES
    from vitalwatch.pipeline.runner import run_continuous
    from vitalwatch.pipeline.triggers import slowest_trigger_s
    from vitalwatch.producers.kafka_out import send
    from vitalwatch.producers.simulator import SimulationPlan, registry_entries, simulate
    from vitalwatch.sinks import mongo

    say = progress or (lambda _m: None)
    tag = f"{int(rate) if rate else 'max'}-{uuid.uuid4().hex[:6]}"
    s = fresh(settings, work, tag)
    ensure_topics(ep.kafka_bootstrap, list(s.kafka.topics.model_dump().values()), s.kafka.partitions,
                  s.kafka.replication_factor)
    mongo.init(s, ep.mongo_uri or "")
    steps = math.ceil(readings / (patients * READINGS_PER_STEP)) + 1
    cfg = s.simulator.model_copy(update={"patients": patients, "profile_mix": {"crisis_prone": 0.3,
                                                                                "hypertensive": 0.35,
                                                                                "normotensive": 0.35}})
    plan = SimulationPlan(datetime.now(UTC), steps * cfg.cadence_minutes / 60, cfg)
    admin = pymongo.MongoClient(ep.mongo_uri)[s.mongo.database]
    mongo.register_patients(admin, registry_entries(plan))

    stop = threading.Event()
    failure: list[BaseException] = []

    def pipeline() -> None:
        try:
            run_continuous(spark, s, ep, STAGES, should_stop=stop.is_set, tick_s=1.0)
        except BaseException as e:  # reported below
            failure.append(e)

    runner = threading.Thread(target=pipeline, name=f"pipeline-{tag}", daemon=True)
    runner.start()
    say(f"{tag}: starting the {len(STAGES)} queries")
    deadline = time.monotonic() + 300
    while not (len(spark.streams.active) == len(STAGES) and all(q.lastProgress for q in spark.streams.active)):
        if failure or time.monotonic() > deadline:
            stop.set()
            raise RuntimeError(f"the pipeline did not start: {failure[0] if failure else 'timeout'}")
        time.sleep(1)
    say(f"{tag}: sending {readings:,} readings at {rate:,.0f}/s" if rate else f"{tag}: sending {readings:,} readings as fast as possible")
    t0 = time.monotonic()
    report = send(islice(simulate(plan), readings), ep.kafka_bootstrap, s.kafka.topics.observations, rate=rate)
    t_sent = time.monotonic()
    slowest = slowest_trigger_s(s)
    quiet_since = None
    drained_at = None
    while time.monotonic() - t_sent < drain_limit_s and not failure:
        time.sleep(1)
        qs = spark.streams.active
        idle = bool(qs) and all((q.lastProgress or {}).get("numInputRows", 1) == 0 for q in qs)
        if not idle:
            quiet_since = None
            continue
        quiet_since = quiet_since or time.monotonic()
        if time.monotonic() - quiet_since > slowest + 2:  # a whole trigger of every query read nothing
            drained_at = quiet_since
            break
    rates = _stage_rates(spark)
    stop.set()
    runner.join(timeout=120)
    if failure:
        raise RuntimeError(f"the pipeline failed under load: {failure[0]}")
    say(f"{tag}: counting what reached the stores")
    stores, bp = _stored(s, ep)
    lat = alert_latencies(ep.kafka_bootstrap, s.kafka.topics.alerts)
    drained = None if drained_at is None else max(0.0, drained_at - t_sent)
    agree = len(set(stores.values())) == 1 and bp == stores.get("delta")
    return LoadRun(rate, report.sent, t_sent - t0, report.sent / max(t_sent - t0, 1e-9), drained,
                   None if drained_at is None else report.sent / (drained_at - t0),
                   drained is not None and agree, bp, stores, len(lat), percentiles(lat), rates)


def _stage_rates(spark) -> dict[str, float]:
    """Per query: rows processed per second of batch time over its recent batches."""
    out = {}
    for q in spark.streams.active:
        ps = [p for p in q.recentProgress if p.get("numInputRows")]
        rows = sum(p["numInputRows"] for p in ps)
        ms = sum(p.get("batchDuration") or p["durationMs"].get("triggerExecution", 0) for p in ps)
        if rows and ms:
            out[q.name] = rows / (ms / 1000)
    return out


def _stored(s: Settings, ep: Endpoints) -> tuple[dict[str, int], int]:
    """Scored readings in each store, and blood-pressure readings in silver (each is scored once)."""
    import pymongo
    import requests
    from deltalake import DeltaTable

    from vitalwatch.pipeline.gold import GOLD_SCORES
    from vitalwatch.pipeline.lake import SILVER_VITALS
    from vitalwatch.sinks.search import base_url, index_name

    scores = DeltaTable(s.table_path(*GOLD_SCORES)).to_pyarrow_table(columns=["observation_id"])
    delta = scores.num_rows - scores.column("observation_id").null_count
    silver = DeltaTable(s.table_path(*SILVER_VITALS)).to_pyarrow_table(columns=["vital", "observation_id"])
    bp = len({o for v, o in zip(silver.column("vital").to_pylist(), silver.column("observation_id").to_pylist(),
                                strict=True) if v == "systolic_bp"})
    db = pymongo.MongoClient(ep.mongo_uri)[s.mongo.database]
    mongo_n = db.risk_scores.count_documents({"observation_id": {"$ne": None}})
    base = base_url(ep.es_nodes or "")
    requests.post(f"{base}/{index_name(s, 'risk')}/_refresh", timeout=30)
    es = requests.get(f"{base}/{index_name(s, 'risk')}/_count", timeout=30,
                      json={"query": {"exists": {"field": "observation_id"}}}).json().get("count", 0)
    return {"delta": int(delta), "mongo": int(mongo_n), "elasticsearch": int(es)}, bp
