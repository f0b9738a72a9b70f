"""Stages degrade, never stop: the supervisor's back-off, recovery and health, on real
streaming queries of the shared local SparkSession (a rate source; a sink that fails on
demand stands for a store that is down)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from vitalwatch.pipeline.health import lines, read_all, write_file
from vitalwatch.pipeline.supervisor import StageHealth, Supervisor, backoff_s


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def settings(base_settings, tmp_path: Path):
    return base_settings.with_updates(streaming={"restart_backoff_s": 5, "restart_backoff_max_s": 60},
                        infra={"work_dir": str(tmp_path / "infra")},
                        lake={"root": str(tmp_path / "lake"), "checkpoint_root": str(tmp_path / "chk")})


def test_backoff_doubles_and_is_capped(settings) -> None:
    assert [backoff_s(settings, n) for n in range(1, 8)] == [5, 10, 20, 40, 60, 60, 60]


def _rate_query(spark, settings, name: str, broken: threading.Event):
    """A streaming query whose sink raises while ``broken`` is set."""
    def write(df, batch_id):
        if broken.is_set():
            raise ConnectionError(f"{name}: store unreachable")
        df.count()

    return (spark.readStream.format("rate").option("rowsPerSecond", 5).load()
            .writeStream.queryName(name).option("checkpointLocation", settings.checkpoint_path(name))
            .trigger(processingTime="300 milliseconds").foreachBatch(write).start())


def _until(cond, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.3)


def test_failing_start_is_retried_on_its_own_timer(spark, settings) -> None:
    """A stage whose start raises (a store down at start-up) is degraded and retried after
    its back-off; the other stage starts and runs meanwhile; no exception leaves check()."""
    clock, healthy, down = Clock(), threading.Event(), {"n": 0}
    seen: list[list[dict]] = []

    def start(stage: str):
        if stage == "flaky" and down["n"] < 2:
            down["n"] += 1
            raise OSError("elasticsearch: connection refused")
        return _rate_query(spark, settings, stage, healthy)

    sup = Supervisor(spark, settings, ["flaky", "steady"], start, on_change=lambda hs: seen.append([x.record() for x in hs]),
                     clock=clock)
    try:
        sup.start_all()
        h = sup.health["flaky"]
        assert h.degraded and h.failures == 1 and "connection refused" in h.error
        assert h.next_try == clock.t + 5
        assert sup.queries["steady"] is not None and sup.queries["steady"].isActive
        sup.check()  # back-off not over: not retried
        assert down["n"] == 1
        clock.t += 5
        sup.check()  # retried, fails again: the wait doubles
        assert down["n"] == 2 and h.failures == 2 and h.next_try == clock.t + 10
        clock.t += 10
        sup.check()  # third start succeeds
        assert sup.queries["flaky"].isActive and h.degraded  # degraded until a batch completes
        _until(lambda: (sup.check(), not h.degraded)[1])
        assert h.failures == 0 and h.restarts == 1
        assert [x["state"] for x in seen[0]] == ["degraded", "ok"]
        assert [x["state"] for x in seen[-1]] == ["ok", "ok"]
    finally:
        sup.stop()


def test_failed_query_restarts_and_recovers(spark, settings) -> None:
    """A query whose sink fails ends; it is restarted from its checkpoint after the back-off,
    the other stage keeps completing batches, and one good batch resets the count."""
    clock, broken, fine = Clock(), threading.Event(), threading.Event()
    broken.set()
    events = {"broken": broken, "fine": fine}
    sup = Supervisor(spark, settings, ["broken", "fine"], lambda st: _rate_query(spark, settings, st, events[st]),
                     clock=clock)
    try:
        sup.start_all()
        _until(lambda: (sup.check(), sup.health["broken"].failures >= 1)[1])
        h = sup.health["broken"]
        assert h.degraded and "store unreachable" in h.error and sup.queries["broken"] is None
        batches = len(sup.queries["fine"].recentProgress)
        clock.t = h.next_try
        sup.check()  # restarted while still broken: fails again, longer wait
        _until(lambda: (sup.check(), h.failures >= 2)[1])
        assert h.next_try - clock.t == backoff_s(settings, 2)
        _until(lambda: len(sup.queries["fine"].recentProgress) > batches)  # the other stage kept running
        assert sup.queries["fine"].isActive and not sup.health["fine"].degraded
        broken.clear()  # the store is back
        clock.t = h.next_try
        sup.check()
        _until(lambda: (sup.check(), not h.degraded)[1])
        assert h.failures == 0 and h.restarts == 2 and sup.queries["broken"].isActive
    finally:
        sup.stop()


def test_health_is_written_and_read_back(settings) -> None:
    from datetime import UTC, datetime

    h = StageHealth("serve_alerts", failures=3, failing_since=datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
                    error="MongoTimeoutError: no servers")
    write_file(settings, "serving", [h, StageHealth("es_vitals")])
    (doc,) = read_all(settings)
    assert doc["app"] == "serving" and doc["running"]  # this process wrote it
    assert lines(settings) == ["serving: degraded: serve_alerts failing since 2026-12-01 10:00:00 UTC: "
                               "MongoTimeoutError: no servers"]
    write_file(settings, "serving", [StageHealth("serve_alerts"), StageHealth("es_vitals")])
    assert lines(settings) == ["serving: ok (2 stages)"]


def test_fault_latency_windows_leave_out_another_faults_time() -> None:
    """The lake's stop overlaps the alert-app kills: their delay is counted as theirs, and a
    fault's "after" ends before the next fault begins."""
    from vitalwatch.bench.fault_tools import AlertLog
    from vitalwatch.bench.faults import FaultResult

    log = AlertLog("127.0.0.1:1", "t", "p")  # not started: filled by hand
    log.first = {f"a{i}": {"patient_id": f"p{i}", "level": "CRITICAL", "event_ms": t, "alert_ms": t + lat}
                 for i, (t, lat) in enumerate([(1_000, 2_000), (5_000, 100_000), (9_000, 3_000), (20_000, 90_000)])}
    f = FaultResult("f", start_ms=0, end_ms=12_000, next_ms=50_000, exclude=[(4_000, 6_000)])
    row = f.row(log, guard_s=30)
    assert row["during"]["n"] == 2 and row["during"]["max"] == 3.0  # the 100 s one was the kills'
    assert row["after"] == {}  # [12 s, 50 s - 30 s): nothing but the next fault's
    assert row["excluded_s"] == [2]


def test_a_query_running_degraded_is_shown_and_restarted_once_it_can_recover(spark, settings) -> None:
    """A stage that runs in a degraded mode (the alert app scoring without a model) is shown
    degraded with its reason while it runs; its recovery probe is asked only every
    ``models.reload_check_s``, and once it says yes the query is restarted in its normal mode."""
    clock, fine, recovered = Clock(), threading.Event(), threading.Event()
    probes: list[float] = []
    starts = {"n": 0}

    def start(stage: str):
        q = _rate_query(spark, settings, f"{stage}{starts['n']}", fine)
        starts["n"] += 1
        if not recovered.is_set():
            q.degraded_reason = "scoring without a model: no champion"
            q.recovered = lambda: (probes.append(clock.t), recovered.is_set())[1]
        return q

    s = settings.with_updates(models={"reload_check_s": 30})
    sup = Supervisor(spark, s, ["gold"], start, clock=clock)
    try:
        sup.start_all()
        _until(lambda: bool(sup.queries["gold"].recentProgress))  # it runs and completes batches ...
        sup.check()
        h = sup.health["gold"]
        assert h.degraded and "without a model" in h.line() and sup.queries["gold"].isActive  # ... yet is degraded
        assert probes == [clock.t]
        clock.t += 10
        sup.check()
        assert len(probes) == 1 and h.degraded  # not asked again before reload_check_s
        first = sup.queries["gold"]
        recovered.set()
        clock.t += 20
        sup.check()
        assert len(probes) == 2 and not first.isActive and starts["n"] == 2
        assert not h.degraded and sup.queries["gold"].isActive
        assert not getattr(sup.queries["gold"], "degraded_reason", None)
    finally:
        sup.stop()
