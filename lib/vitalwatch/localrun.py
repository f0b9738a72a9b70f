"""The local run as a library: what ``vitalwatch run`` orchestrates and the end-to-end benchmark
reuses — wait until every query is up, decide when everything is drained (every query read
nothing for a whole trigger), count what reached the stores, and the run itself (applications,
simulator, summary). No typer and no rich here: progress goes to a ``say(str)`` callback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from vitalwatch.config import Settings

Say = Callable[[str], None]


class RunFailed(RuntimeError):
    """The applications or the simulator failed; the message says what and where to look."""


def queries_up(spark, expected: int) -> bool:
    """This process's ``expected`` streaming queries are active and each has run a trigger."""
    qs = spark.streams.active
    return len(qs) == expected and all(q.lastProgress for q in qs)


def queries_idle(spark) -> bool:
    """Every active query's last trigger read nothing (a query without progress is not idle)."""
    qs = spark.streams.active
    return bool(qs) and all((q.lastProgress or {}).get("numInputRows", 1) == 0 for q in qs)


class Drain:
    """Drained = idle without a break for longer than ``quiet_s`` (the slowest trigger plus a
    margin, so that every query has run a whole trigger that read nothing)."""

    def __init__(self, quiet_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet_s, self.clock = quiet_s, clock
        self.since: float | None = None  # when the idle stretch began

    def update(self, idle: bool) -> bool:
        """Feed one observation; True once drained."""
        if not idle:
            self.since = None
            return False
        self.since = self.since or self.clock()
        return self.clock() - self.since > self.quiet_s


def _ts_mask(column, since: datetime):
    """Rows of an Arrow timestamp column at or after ``since`` (naive UTC, as the lake writes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t0 = since.replace(tzinfo=UTC) if column.type.tz else since.replace(tzinfo=None)
    return pc.greater_equal(column, pa.scalar(t0, type=column.type))


def _delta_counts(s: Settings, since: datetime | None) -> tuple[int, int, dict[str, int]]:
    """Scored readings and alerts in Delta gold (since ``since``), and the alerts per level."""
    from collections import Counter

    import pyarrow.compute as pc
    from deltalake import DeltaTable

    from vitalwatch.pipeline.lake import GOLD_ALERTS, GOLD_SCORES

    scores = DeltaTable(s.table_path(*GOLD_SCORES)).to_pyarrow_table(columns=["observation_id", "scored_time"])
    keep = pc.is_valid(scores.column("observation_id"))
    if since is not None:
        keep = pc.and_(keep, _ts_mask(scores.column("scored_time"), since))
    alerts = DeltaTable(s.table_path(*GOLD_ALERTS)).to_pyarrow_table(columns=["level", "raised_time"])
    if since is not None:
        alerts = alerts.filter(_ts_mask(alerts.column("raised_time"), since))
    levels = Counter(alerts.column("level").to_pylist())
    return int(pc.sum(keep).as_py() or 0), alerts.num_rows, dict(sorted(levels.items()))


def count_stores(s: Settings, ep, since: datetime | None = None) -> dict[str, Any]:
    """Scored readings (with an observation) and alerts in each store — Delta gold, MongoDB,
    Elasticsearch — since ``since`` (UTC; None: all), and Delta's alerts per level."""
    import pymongo
    import requests

    from vitalwatch.sinks.search import base_url, index_name

    delta_scores, delta_alerts, levels = _delta_counts(s, since)
    t0 = None if since is None else since.replace(tzinfo=None)
    db = pymongo.MongoClient(ep.mongo_uri)[s.mongo.database]
    scored = {"observation_id": {"$ne": None}, **({} if t0 is None else {"scored_time": {"$gte": t0}})}
    raised = {} if t0 is None else {"raised_time": {"$gte": t0}}
    base = base_url(ep.es_nodes or "")
    requests.post(f"{base}/{index_name(s, 'risk')},{index_name(s, 'alerts')}/_refresh", timeout=30)

    def es_count(kind: str, extra: dict[str, Any] | None, field: str) -> int:
        must = [q for q in (extra, None if t0 is None else {"range": {field: {"gte": t0.isoformat()}}}) if q]
        body = {"query": {"bool": {"must": must}}} if must else None
        return int(requests.get(f"{base}/{index_name(s, kind)}/_count", timeout=30, json=body).json().get("count", 0))

    return {
        "delta": {"scores": delta_scores, "alerts": delta_alerts},
        "mongo": {"scores": db.risk_scores.count_documents(scored), "alerts": db.alerts.count_documents(raised)},
        "elasticsearch": {"scores": es_count("risk", {"exists": {"field": "observation_id"}}, "scored_time"),
                          "alerts": es_count("alerts", None, "raised_time")},
        "alerts_by_level": levels,
    }


def simulation_plan(spark, s: Settings, hours: float, cfg, say: Say):
    """The ``hours`` ending now (no reading dated after it is sent, at any speed-up). If the lake
    already holds readings of these patients in that window (an earlier run), their later
    readings would all be late for the scoring state; the simulated ward then admits a new
    cohort of patients instead (ids ``r<MMDDHHMM>-p00000``…)."""
    from pyspark.sql import functions as F

    from vitalwatch.pipeline.lake import SILVER_VITALS, read_table
    from vitalwatch.producers.simulator import SimulationPlan

    plan = SimulationPlan.until_now(hours, cfg)
    try:
        newest = (read_table(spark, s, SILVER_VITALS).where(F.col("patient_id").startswith(cfg.patient_prefix))
                  .agg(F.max("effective_time").cast("long")).first()[0])
    except Exception:
        return plan
    if newest is None or datetime.fromtimestamp(int(newest), UTC) < plan.start:
        return plan
    cohort = f"r{datetime.now(UTC):%m%d%H%M}-{cfg.patient_prefix}"
    say(f"the lake has readings of patients {cfg.patient_prefix}… in the last {hours:g} h: "
        f"simulating a new cohort {cohort}…")
    return SimulationPlan(plan.start, hours, cfg.model_copy(update={"patient_prefix": cohort}))


def _app_stages(s: Settings, apps: set[str]) -> list[dict]:
    """The stages of the running applications, from their health files."""
    from vitalwatch.pipeline.health import read_all

    return [st for d in read_all(s) if d["app"] in apps and d["running"] for st in d["stages"]]


def apps_up(s: Settings, apps: Iterable[str]) -> bool:
    """Every application runs and each of its stages has run its first trigger."""
    from vitalwatch.pipeline.health import read_all

    want = set(apps)
    return {d["app"] for d in read_all(s) if d["running"]} >= want and all(
        st["progressed"] for st in _app_stages(s, want))


def apps_idle(s: Settings, apps: Iterable[str]) -> bool:
    """Every stage of the running applications read nothing in its last trigger."""
    return all(st.get("last_input_rows") == 0 for st in _app_stages(s, set(apps)))


class Producer:
    """The simulator on a thread, sending ``plan`` as the device principal until done or stopped."""

    def __init__(self, s: Settings, ep, plan, speedup: float) -> None:
        self.stop, self.done = threading.Event(), threading.Event()
        self.report: Any = None
        self.error: BaseException | None = None
        self._args = (s, ep, plan, speedup)
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)

    def _run(self) -> None:
        from vitalwatch.producers.kafka_out import send
        from vitalwatch.producers.simulator import simulate

        s, ep, plan, speedup = self._args
        try:
            self.report = send(simulate(plan), ep.kafka("device"), s.kafka.topics.observations,
                               speedup=speedup, should_stop=self.stop.is_set)
        except Exception as e:
            self.error = e
        finally:
            self.done.set()

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self.stop.set()
        self._thread.join(timeout=30)


def run_apps(s: Settings, ep, procs, plan, speedup: float, duration: float, say: Say) -> datetime:
    """Start the applications, the simulator once every stage has run its first trigger (so
    the latency reported at the end is the running pipeline's, not its start-up's), and run
    until the duration passes or everything sent has been processed. Returns when the
    simulation started; raises :class:`RunFailed`."""
    from vitalwatch.pipeline import APPS
    from vitalwatch.pipeline.apps import wait_until

    t0 = time.monotonic()
    procs.start_all()
    if not wait_until(lambda: apps_up(s, APPS), s.infra.start_timeout_s * 3):
        raise RunFailed(f"the applications did not all start; see their logs in {procs.dir}")
    producer = Producer(s, ep, plan, speedup)
    started = datetime.now(UTC)
    producer.start()
    say(f"applications up in {time.monotonic() - t0:.0f} s; simulating {plan.cfg.patients} patients over "
        f"{plan.hours:g} simulated hours at x{speedup:g}; follow alerts with `vitalwatch alerts watch`; "
        f"Ctrl-C stops")
    try:
        _watch(s, procs, producer, started, duration, say)
    finally:
        producer.join()
    if producer.error is not None:
        raise RunFailed(f"simulator failed: {producer.error}")
    return started


def _watch(s: Settings, procs, producer: Producer, started: datetime, duration: float, say: Say) -> None:
    """Every 5 s: the applications still run (``procs.check``), their health lines when they
    change; until ``duration`` or the simulation is sent and every stage is drained."""
    from vitalwatch.pipeline import APPS
    from vitalwatch.pipeline.health import lines
    from vitalwatch.pipeline.triggers import slowest_trigger_s

    said: list[str] = []
    drain = Drain(slowest_trigger_s(s) + 10)
    while True:
        time.sleep(5)
        procs.check()
        now_lines = lines(s)
        if now_lines != said:  # one line per change
            said = now_lines
            for line in now_lines:
                say(line)
        if duration and (datetime.now(UTC) - started).total_seconds() >= duration:
            return
        if drain.update(producer.done.is_set() and apps_idle(s, APPS)):
            return


def latency(ep, s: Settings, since: datetime) -> dict[str, float]:
    """Event → alert latency percentiles on the alerts topic for alerts since ``since``."""
    from vitalwatch.alerts.feed import alert_latencies, percentiles

    return percentiles(alert_latencies(ep.kafka("watch"), s.kafka.topics.alerts, since.timestamp() * 1000))
