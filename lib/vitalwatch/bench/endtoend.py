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
  producer sends as fast as it can: a burst the pipeline absorbed, not a rate it sustains;
- a **timeline** sampled every ``sample_s``: readings sent, and per query its Kafka backlog (the
  topic's end offsets minus the offsets its last batch reached) and its share of wall time spent
  in triggers. For a load held for minutes (``growth_limit``, the soak) sustained also needs the
  scoring backlog to have stopped growing (``backlog_growth``); its end, peak and growth are
  reported, with the latency of the second half of the send's alerts beside the whole run's."""

from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from vitalwatch.config import Settings
from vitalwatch.infra.endpoints import Endpoints
from vitalwatch.pipeline.gold import QUERY as SCORING_QUERY

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
    patients: int = 0
    latency_second_half_s: dict[str, float] = field(default_factory=dict)
    gold_backlog_end: int | None = None  # the scoring query's unread readings when the last was sent
    gold_backlog_max: int | None = None  # ... and the most while sending
    gold_backlog_growth: float | None = None  # peak over the send's last third ÷ middle third
    busy: dict[str, float] = field(default_factory=dict)  # per query: batch time ÷ wall time while sending
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fresh(settings: Settings, work: Path, tag: str) -> Settings:
    """Settings with topics, lake, database and index prefix of this load's own."""
    topics = {k: f"{v}.{tag}" for k, v in settings.kafka.topics.model_dump().items()}
    return settings.with_updates(
        kafka={"topics": topics},
        lake={"root": str(work / tag / "lake"), "checkpoint_root": str(work / tag / "chk")},
        mongo={"database": f"bench_{tag}"},
        elasticsearch={"index_prefix": f"bench-{tag}"},
        simulator={"bundle_fraction": 0.0, "duplicate_fraction": 0.0, "late_fraction": 0.0,
                   "malformed_fraction": 0.0},
    )


def run_load(spark, settings: Settings, ep: Endpoints, rate: float, readings: int, patients: int,
             work: Path, drain_limit_s: float, progress=None, sample_s: float = 5.0,
             growth_limit: float | None = None) -> LoadRun:
    """Send ``readings`` at ``rate`` through all the pipeline's queries on fresh names and measure
    them. Sustained: every query drained within ``drain_limit_s`` and the stores agree; with
    ``growth_limit`` (the soak) also the scoring query's backlog stopped growing
    (``backlog_growth``), so a rate merely absorbed by a backlog does not count."""
    say = progress or (lambda _m: None)
    tag = f"{int(rate) if rate else 'max'}-{uuid.uuid4().hex[:6]}"
    s, plan = _prepare(settings, ep, work, tag, readings, patients)
    pipe = _Pipeline(spark, s, ep, tag)
    say(f"{tag}: starting the {pipe.queries} queries")
    pipe.start()
    say(f"{tag}: sending {readings:,} readings at {rate:,.0f}/s" if rate else f"{tag}: sending {readings:,} readings as fast as possible")
    sent = _send(spark, s, ep, plan, readings, rate, sample_s)
    drained_at = _drained_at(spark, s, sent.t_sent, drain_limit_s, pipe.failed)
    rates = _stage_rates(spark)
    pipe.stop()
    say(f"{tag}: counting what reached the stores")
    return _measure(s, ep, rate, sent, drained_at, rates, patients, growth_limit)


def _prepare(settings: Settings, ep: Endpoints, work: Path, tag: str, readings: int, patients: int):
    """This load's own settings, topics, database and registered patients, and its simulation
    plan: enough cadence steps for ``readings``, none dated after it is sent."""
    import pymongo

    from vitalwatch.infra.kafka import provision
    from vitalwatch.producers.simulator import SimulationPlan, registry_entries
    from vitalwatch.sinks import mongo

    s = fresh(settings, work, tag)
    provision(ep.kafka("admin"), s)  # its own topics, and the principals' grants on them
    mongo.init(s, ep.mongo_uri or "")
    steps = math.ceil(readings / (patients * READINGS_PER_STEP)) + 1
    cfg = s.simulator.model_copy(update={"patients": patients, "profile_mix": {"crisis_prone": 0.3,
                                                                                "hypertensive": 0.35,
                                                                                "normotensive": 0.35}})
    plan = SimulationPlan.until_now(steps * cfg.cadence_minutes / 60, cfg)
    mongo.register_patients(pymongo.MongoClient(ep.mongo_uri)[s.mongo.database], registry_entries(plan))
    return s, plan


class _Pipeline:
    """All the pipeline's queries in this process, on a thread, as ``vitalwatch run`` runs them."""

    def __init__(self, spark, s: Settings, ep: Endpoints, tag: str) -> None:
        from vitalwatch.pipeline import STAGES

        self.spark, self.s, self.ep, self.queries = spark, s, ep, len(STAGES)
        self._stop = threading.Event()
        self.failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name=f"pipeline-{tag}", daemon=True)

    def _run(self) -> None:
        from vitalwatch.pipeline import STAGES
        from vitalwatch.pipeline.runner import run_continuous

        try:
            run_continuous(self.spark, self.s, self.ep, STAGES, should_stop=self._stop.is_set, tick_s=1.0)
        except BaseException as e:  # reported by stop()
            self.failure.append(e)

    def failed(self) -> bool:
        return bool(self.failure)

    def start(self, timeout_s: float = 300) -> None:
        """Start, and wait until every query is up (has run its first trigger)."""
        from vitalwatch.localrun import queries_up
        from vitalwatch.pipeline.apps import wait_until

        self._thread.start()
        if not wait_until(lambda: queries_up(self.spark, self.queries), timeout_s, failed=self.failed):
            self._stop.set()
            raise RuntimeError(f"the pipeline did not start: {self.failure[0] if self.failure else 'timeout'}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
        if self.failure:
            raise RuntimeError(f"the pipeline failed under load: {self.failure[0]}")


@dataclass
class _Sent:
    report: Any
    sampler: Sampler
    t0: float          # monotonic, first send
    t_sent: float      # monotonic, last send
    half_ms: float     # wall ms halfway through the send (the second half's alerts)


def _send(spark, s: Settings, ep: Endpoints, plan, readings: int, rate: float, sample_s: float) -> _Sent:
    """Send the readings while a :class:`Sampler` records the timeline."""
    from vitalwatch.producers.kafka_out import send
    from vitalwatch.producers.simulator import simulate

    sent = [0]
    sampler = Sampler(spark, ep.kafka("admin"), lambda: sent[0])
    sending = threading.Event()
    sampling = threading.Thread(target=sampler.every, args=(sample_s, sending.is_set), daemon=True)
    t0, t0_ms = time.monotonic(), time.time() * 1000
    sending.set()
    sampling.start()
    report = send(islice(simulate(plan), readings), ep.kafka("device"), s.kafka.topics.observations, rate=rate,
                  on_sent=lambda _m: sent.__setitem__(0, sent[0] + 1))
    t_sent = time.monotonic()
    sending.clear()
    sampling.join(timeout=60)
    return _Sent(report, sampler, t0, t_sent, t0_ms + (t_sent - t0) * 500)


def _drained_at(spark, s: Settings, t_sent: float, limit_s: float, failed) -> float | None:
    """When every query went idle for good (a whole slowest trigger read nothing), or None if not
    within ``limit_s`` of the last send."""
    from vitalwatch.localrun import Drain, queries_idle
    from vitalwatch.pipeline.triggers import slowest_trigger_s

    drain = Drain(slowest_trigger_s(s) + 2)
    while time.monotonic() - t_sent < limit_s and not failed():
        time.sleep(1)
        if drain.update(queries_idle(spark)):
            return drain.since
    return None


def _measure(s: Settings, ep: Endpoints, rate: float, sent: _Sent, drained_at: float | None, rates: dict[str, float],
             patients: int, growth_limit: float | None) -> LoadRun:
    """Stores, latencies and backlog of a load that has been sent (and drained or not)."""
    from vitalwatch.alerts.feed import alert_latencies, percentiles

    stores, bp, mongo_expected = _stored(s, ep)
    lat = alert_latencies(ep.kafka("watch"), s.kafka.topics.alerts)
    late = alert_latencies(ep.kafka("watch"), s.kafka.topics.alerts, since_ms=sent.half_ms)
    send_s, n = sent.t_sent - sent.t0, sent.report.sent
    drained = None if drained_at is None else max(0.0, drained_at - sent.t_sent)
    agree = stores.get("delta") == stores.get("elasticsearch") == bp and stores.get("mongo") == mongo_expected
    samples = [(p["t"], p["queries"].get(SCORING_QUERY, {}).get("backlog")) for p in sent.sampler.timeline]
    samples = [(t, b) for t, b in samples if b is not None]
    gold = [b for _t, b in samples]
    growth = backlog_growth(samples, send_s)
    return LoadRun(rate, n, send_s,
                   n / max(send_s, 1e-9), drained,
                   None if drained_at is None else n / (drained_at - sent.t0),
                   is_sustained(drained, agree, growth, growth_limit), bp, stores, len(lat), percentiles(lat), rates,
                   patients=patients, latency_second_half_s=percentiles(late),
                   gold_backlog_end=gold[-1] if gold else None, gold_backlog_max=max(gold) if gold else None,
                   gold_backlog_growth=None if growth is None else round(growth, 2),
                   busy=sent.sampler.busy(send_s), timeline=sent.sampler.timeline)


def backlog_growth(samples: list[tuple[float, int]], send_s: float) -> float | None:
    """The scoring backlog's peak over the send's last third ÷ its peak over the middle third.

    A micro-batch query's backlog is a saw tooth (it grows while a batch runs, drops when the
    next one reads it), so peaks are compared, not single samples. About 1 when the query keeps
    up (however far behind it settled), well above 1 when the rate is only absorbed; None when
    either third has no sample."""
    middle = [b for t, b in samples if send_s / 3 <= t < 2 * send_s / 3]
    last = [b for t, b in samples if t >= 2 * send_s / 3]
    if not middle or not last:
        return None
    return max(last) / max(max(middle), 1)


def is_sustained(drained_s: float | None, stores_agree: bool, growth: float | None,
                 growth_limit: float | None) -> bool:
    """Drained, complete and, with a growth limit (the soak), a scoring backlog that stopped
    growing (an unknown growth does not pass)."""
    if drained_s is None or not stores_agree:
        return False
    if growth_limit is None:
        return True
    return growth is not None and growth <= growth_limit


class Sampler:
    """While a load is sent: readings sent, and per query its Kafka backlog and batch time, every
    few seconds. Batch time is summed over every trigger that ended while sending (read from
    ``recentProgress``, which holds the last 100, so none is missed between samples). Triggers are
    told apart by their start time, not their batch id: an idle trigger reports the id of the
    batch that has not run yet, which the next real batch then carries."""

    def __init__(self, spark, access, sent) -> None:
        from confluent_kafka import Consumer

        self.spark, self.sent = spark, sent
        self.consumer = Consumer(access.conf(**{"group.id": f"vitalwatch-bench-{uuid.uuid4().hex[:8]}",
                                                "enable.auto.commit": False}))
        self.timeline: list[dict[str, Any]] = []
        # query → start time of the last trigger counted: those before the load (start-up,
        # warm-up) are not; ISO-8601 UTC strings of one format compare as times
        self._seen = {q.name: (q.lastProgress or {}).get("timestamp", "") for q in spark.streams.active}
        self._batch_ms: dict[str, float] = {}
        self._t0 = time.monotonic()

    def every(self, period_s: float, while_true) -> None:
        try:
            while while_true():
                self.sample()
                time.sleep(period_s)
            self.sample()
        finally:
            self.consumer.close()

    def sample(self) -> None:
        queries: dict[str, dict[str, Any]] = {}
        for q in self.spark.streams.active:
            last = q.lastProgress or {}
            for p in q.recentProgress:
                if p["timestamp"] > self._seen.get(q.name, ""):
                    self._seen[q.name] = p["timestamp"]
                    self._batch_ms[q.name] = self._batch_ms.get(q.name, 0.0) + _batch_ms(p)
            queries[q.name] = {"batch": last.get("batchId"), "rows": last.get("numInputRows"),
                               "batch_ms": _batch_ms(last) if last else None, "backlog": self._backlog(last)}
        self.timeline.append({"t": round(time.monotonic() - self._t0, 1), "sent": self.sent(), "queries": queries})

    def busy(self, seconds: float) -> dict[str, float]:
        return {q: round(ms / 1000 / max(seconds, 1e-9), 3) for q, ms in self._batch_ms.items()}

    def _backlog(self, progress: dict[str, Any]) -> int | None:
        """Readings on the query's Kafka topics past the offsets its last batch reached (None: not
        a Kafka source)."""
        import json

        from confluent_kafka import TopicPartition

        total, kafka = 0, False
        for src in progress.get("sources", []):
            if not str(src.get("description", "")).startswith("KafkaV2"):
                continue
            end = src.get("endOffset")
            end = json.loads(end) if isinstance(end, str) else end
            for topic, parts in (end or {}).items():
                for part, offset in parts.items():
                    _low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, int(part)), timeout=5)
                    total += max(0, high - int(offset))
                    kafka = True
        return total if kafka else None


def _batch_ms(progress: dict[str, Any]) -> float:
    """A trigger's wall time (PySpark's progress JSON has ``durationMs``, not ``batchDuration``)."""
    return float(progress.get("durationMs", {}).get("triggerExecution", 0))


def _stage_rates(spark) -> dict[str, float]:
    """Per query: rows processed per second of batch time over its recent batches."""
    out = {}
    for q in spark.streams.active:
        ps = [p for p in q.recentProgress if p.get("numInputRows")]
        rows = sum(p["numInputRows"] for p in ps)
        ms = sum(_batch_ms(p) for p in ps)
        if rows and ms:
            out[q.name] = rows / (ms / 1000)
    return out


def _stored(s: Settings, ep: Endpoints) -> tuple[dict[str, int], int, int]:
    """Scored readings in each store (:func:`vitalwatch.localrun.count_stores`, as ``vitalwatch
    run`` counts them); blood-pressure readings in silver (each is scored once, and Delta and
    Elasticsearch keep all); and how many MongoDB should hold, which keeps each patient's latest
    ``gold.mongo_latest_scores``."""
    from collections import Counter

    from deltalake import DeltaTable

    from vitalwatch.localrun import count_stores
    from vitalwatch.pipeline.lake import SILVER_VITALS

    counts = count_stores(s, ep)
    silver = DeltaTable(s.table_path(*SILVER_VITALS)).to_pyarrow_table(columns=["vital", "observation_id",
                                                                                "patient_id"])
    bp_obs = {(o, p) for v, o, p in zip(silver.column("vital").to_pylist(), silver.column("observation_id").to_pylist(),
                                        silver.column("patient_id").to_pylist(), strict=True) if v == "systolic_bp"}
    per_patient = Counter(p for _o, p in bp_obs)
    mongo_expected = sum(min(n, s.gold.mongo_latest_scores) for n in per_patient.values())
    stores = {k: int(counts[k]["scores"]) for k in ("delta", "mongo", "elasticsearch")}
    return stores, len(bp_obs), mongo_expected
